package k8s

import (
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/etcdops/etcd/internal/pki"
	"github.com/etcdops/etcd/pkg/etcdconn"
)

// The hosted control plane's names (seed 002).
const (
	ClusterNamespace      = "clusters"
	ClusterName           = "lab"
	ControlPlaneNamespace = "clusters-lab"
	EtcdClientIP          = "10.235.0.20" // the etcd-client Service's fixed ClusterIP
)

var (
	//go:embed manifests/hosted.yaml
	hostedManifest string
	//go:embed manifests/hostedcluster-crd.yaml
	hostedClusterCRD string
)

// DeployHosted creates the hosted control plane (manifests/hosted.yaml) with its etcd TLS secrets and
// waits until the etcd StatefulSet's three members are ready. The controller's etcd client
// certificate, signed by the same CA, is written under the lab's pki/etcd.
func (l *Lab) DeployHosted() error {
	start := time.Now()
	if _, err := l.Apply(hostedClusterCRD); err != nil {
		return err
	}
	// The secrets exist before the pods that mount them (kubelet retries a missing secret with backoff).
	if _, err := l.Kubectl("create", "namespace", ControlPlaneNamespace); err != nil {
		return err
	}
	if err := l.etcdSecrets(); err != nil {
		return err
	}
	if _, err := l.Kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/hostedclusters.hypershift.openshift.io"); err != nil {
		return err
	}
	if _, err := l.Apply(hostedManifest); err != nil {
		return err
	}
	if err := l.WaitEtcdReady(3, 3*time.Minute); err != nil {
		return err
	}
	l.logf("hosted etcd StatefulSet ready in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// etcdSecrets issues the etcd CA and certificates as HyperShift lays them out: etcd-ca (ca.crt),
// etcd-server-tls, etcd-peer-tls and etcd-client-tls.
func (l *Lab) etcdSecrets() error {
	dir := l.path("pki", "etcd")
	ca, err := pki.NewCA("etcd-signer")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return err
	}
	ns := ControlPlaneNamespace
	discovery := "etcd-discovery." + ns + ".svc"
	// Peer certificates name each member (etcd checks a peer's address against the names its
	// certificate carries by resolving them) and no IP: pod IPs change.
	peers := []string{"*." + discovery, "*." + discovery + ".cluster.local"}
	for i := 0; i < 3; i++ {
		peers = append(peers, fmt.Sprintf("etcd-%d.%s", i, discovery))
	}
	for _, c := range []struct {
		secret, file string
		sans         []string
	}{
		{"etcd-server-tls", "server", []string{"etcd-client", "etcd-client." + ns + ".svc", "*." + discovery, "localhost", "127.0.0.1", EtcdClientIP}},
		{"etcd-peer-tls", "peer", peers},
		{"etcd-client-tls", "etcd-client", nil},
	} {
		p, err := ca.Issue(c.file, c.sans...)
		if err != nil {
			return err
		}
		crt, key, err := p.Write(dir, c.file)
		if err != nil {
			return err
		}
		if _, err := l.Kubectl("-n", ns, "create", "secret", "generic", c.secret,
			"--from-file="+c.file+".crt="+crt, "--from-file="+c.file+".key="+key); err != nil {
			return err
		}
	}
	_, err = l.Kubectl("-n", ns, "create", "secret", "generic", "etcd-ca", "--from-file=ca.crt="+l.path("pki", "etcd", "ca.crt"))
	return err
}

// EtcdConn connects through the etcd-client Service with the client certificate of etcd-client-tls.
func (l *Lab) EtcdConn() etcdconn.Options {
	return etcdconn.Options{Endpoints: []string{"https://" + EtcdClientIP + ":2379"}, CACert: l.path("pki", "etcd", "ca.crt"),
		ClientCert: l.path("pki", "etcd", "etcd-client.crt"), ClientKey: l.path("pki", "etcd", "etcd-client.key"),
		DialTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second}
}

// WaitEtcdReady waits until the StatefulSet reports n ready replicas.
func (l *Lab) WaitEtcdReady(n int, d time.Duration) error {
	err := WaitUntil(d, "etcd StatefulSet ready", func() error {
		out, err := l.Kubectl("-n", ControlPlaneNamespace, "get", "statefulset", "etcd", "-o", "jsonpath={.status.readyReplicas}")
		if err == nil && strings.TrimSpace(string(out)) != fmt.Sprint(n) {
			err = fmt.Errorf("%w: %q of %d ready", errNotYet, out, n)
		}
		return err
	})
	if err != nil {
		pods, _ := l.Kubectl("-n", ControlPlaneNamespace, "get", "pods,pvc", "-o", "wide")
		return fmt.Errorf("%w\n%s", err, pods)
	}
	return nil
}
