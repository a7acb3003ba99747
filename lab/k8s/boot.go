package k8s

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcdops/etcd/internal/pki"
)

// boot builds the namespace, writes certificates and configuration, then starts the processes in
// dependency order, each waited for before the next needs it.
func (l *Lab) boot() error {
	start := time.Now()
	if err := l.network(); err != nil {
		return err
	}
	if err := l.writeFiles(); err != nil {
		return err
	}
	sock := l.path("containerd", "containerd.sock")
	steps := []struct {
		name  string
		args  []string
		ready func() error
	}{
		{"etcd", []string{"/usr/bin/etcd", "--data-dir", l.path("etcd"), "--listen-client-urls", "http://127.0.0.1:2379",
			"--advertise-client-urls", "http://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:2380"}, nil},
		{"containerd", []string{"/usr/bin/containerd", "--config", l.path("containerd", "config.toml")}, func() error {
			_, err := os.Stat(sock)
			return err
		}},
		{"kube-apiserver", append([]string{l.bin("kube-apiserver")}, l.apiserverArgs()...), func() error {
			_, err := l.Kubectl("get", "--raw", "/readyz")
			return err
		}},
		{"kube-controller-manager", []string{l.bin("kube-controller-manager"), "--kubeconfig", l.Kubeconfig,
			"--root-ca-file", l.path("pki", "ca.crt"), "--service-account-private-key-file", l.path("pki", "sa.key"),
			"--use-service-account-credentials=false", "--leader-elect=false", "--bind-address=127.0.0.1",
			"--enable-hostpath-provisioner", "--controllers=*,-nodeipam"}, nil},
		{"kube-scheduler", []string{l.bin("kube-scheduler"), "--kubeconfig", l.Kubeconfig, "--leader-elect=false",
			"--bind-address=127.0.0.1"}, nil},
		{"kubelet", []string{l.bin("kubelet"), "--config", l.path("kubelet", "config.yaml"), "--kubeconfig", l.Kubeconfig,
			"--root-dir", l.path("kubelet", "root"), "--node-ip", NodeAddr, "--hostname-override", NodeName}, func() error {
			out, err := l.Kubectl("get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if err == nil && strings.TrimSpace(string(out)) != "True" {
				err = errNotYet
			}
			return err
		}},
		{"kube-proxy", []string{l.bin("kube-proxy"), "--kubeconfig", l.Kubeconfig, "--cluster-cidr", PodCIDR,
			"--hostname-override", NodeName, "--proxy-mode", "iptables", "--conntrack-max-per-core=0",
			"--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0", "--bind-address", NodeAddr}, nil},
		{"coredns", []string{l.bin("coredns"), "-conf", l.path("coredns", "Corefile")}, nil},
	}
	for _, s := range steps {
		if err := l.start(s.name, s.args...); err != nil {
			return err
		}
		if s.ready != nil {
			if err := WaitUntil(90*time.Second, s.name+" ready", s.ready); err != nil {
				return fmt.Errorf("%w\n%s", err, l.logTail(s.name))
			}
		}
	}
	l.logf("k8s processes up in %s; importing images, cluster objects", time.Since(start).Round(100*time.Millisecond))
	for _, img := range []string{"pause.tar", "etcd.tar"} {
		if out, err := exec.Command("ctr", "-a", sock, "-n", "k8s.io", "images", "import",
			filepath.Join(l.Spec.ImageDir(), img)).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr images import %s: %v\n%s", img, err, out)
		}
	}
	if _, err := l.Apply(clusterManifest); err != nil {
		return err
	}
	l.logf("k8s lab up in %s (node %s Ready, API %s, kubeconfig %s)", time.Since(start).Round(100*time.Millisecond),
		NodeName, APIServer, l.Kubeconfig)
	return nil
}

// network makes the namespace with its loopback up, forwarding on (pods and Services are reached
// through it) and a veth pair to the host, which routes the pod and Service ranges to the node.
func (l *Lab) network() error {
	cmds := [][]string{
		{"ip", "netns", "add", NetNS},
		{"ip", "link", "add", HostVeth, "type", "veth", "peer", "name", NodeVeth, "netns", NetNS},
		{"ip", "addr", "add", HostAddr + linkPrefix, "dev", HostVeth},
		{"ip", "link", "set", HostVeth, "up"},
		{"ip", "-n", NetNS, "link", "set", "lo", "up"},
		{"ip", "-n", NetNS, "addr", "add", NodeAddr + linkPrefix, "dev", NodeVeth},
		{"ip", "-n", NetNS, "link", "set", NodeVeth, "up"},
		{"ip", "netns", "exec", NetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"},
		{"ip", "route", "add", PodCIDR, "via", NodeAddr},
		{"ip", "route", "add", ServiceCIDR, "via", NodeAddr},
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func (l *Lab) logTail(name string) string {
	b, _ := os.ReadFile(l.path("logs", name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// Kubectl runs the built kubectl against the lab with the admin kubeconfig.
func (l *Lab) Kubectl(args ...string) ([]byte, error) {
	return l.kubectlIn(nil, args...)
}

// Apply applies YAML (kubectl apply -f -).
func (l *Lab) Apply(yaml string) ([]byte, error) {
	return l.kubectlIn([]byte(yaml), "apply", "-f", "-")
}

func (l *Lab) kubectlIn(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(l.bin("kubectl"), append([]string{"--kubeconfig", l.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// writeFiles writes the cluster PKI, the admin kubeconfig and every process's configuration.
func (l *Lab) writeFiles() error {
	for _, d := range []string{"logs", "pki", "etcd", "containerd", "cni/net.d", "cni/ipam", "kubelet/root", "pod-logs", "coredns"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return err
		}
	}
	ca, err := pki.NewCA("etcdops-k8s-lab-ca")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(l.path("pki")); err != nil {
		return err
	}
	// One admin certificate for every component: the API server authorizes everything (AlwaysAllow),
	// a lab needs no RBAC between its own processes.
	for _, c := range []struct {
		name string
		sans []string
	}{
		{"apiserver", []string{NodeAddr, apiService, "127.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}},
		{"admin", nil},
		{"sa", nil},
	} {
		p, err := ca.Issue(c.name, c.sans...)
		if err != nil {
			return err
		}
		if _, _, err := p.Write(l.path("pki"), c.name); err != nil {
			return err
		}
	}
	l.Kubeconfig = l.path("admin.kubeconfig")
	files := map[string]string{
		l.Kubeconfig: fmt.Sprintf(kubeconfig, APIServer, l.path("pki", "ca.crt"), l.path("pki", "admin.crt"), l.path("pki", "admin.key")),
		l.path("containerd", "config.toml"): fmt.Sprintf(containerdConfig, l.path("containerd", "root"), l.path("containerd", "state"),
			l.path("containerd", "containerd.sock"), l.path("cni", "net.d")),
		l.path("cni", "net.d", "10-lab.conflist"): fmt.Sprintf(cniConfig, PodCIDR, l.path("cni", "ipam")),
		l.path("kubelet", "config.yaml"): fmt.Sprintf(kubeletConfig, l.path("pki", "ca.crt"), DNSService, l.path("pod-logs"),
			l.path("kubelet", "resolv.conf"), "unix://"+l.path("containerd", "containerd.sock"), NodeAddr),
		l.path("kubelet", "resolv.conf"): "nameserver " + NodeAddr + "\n",
		l.path("coredns", "Corefile"):    fmt.Sprintf(corefile, l.Kubeconfig),
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return l.save()
}

func (l *Lab) apiserverArgs() []string {
	p := func(f string) string { return l.path("pki", f) }
	return []string{"--etcd-servers=http://127.0.0.1:2379", "--bind-address=0.0.0.0", "--advertise-address=" + NodeAddr,
		"--secure-port=6443", "--service-cluster-ip-range=" + ServiceCIDR, "--client-ca-file=" + p("ca.crt"),
		"--tls-cert-file=" + p("apiserver.crt"), "--tls-private-key-file=" + p("apiserver.key"),
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file=" + p("sa.key"),
		"--service-account-signing-key-file=" + p("sa.key"), "--authorization-mode=AlwaysAllow",
		"--kubelet-client-certificate=" + p("admin.crt"), "--kubelet-client-key=" + p("admin.key"),
		"--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true"}
}
