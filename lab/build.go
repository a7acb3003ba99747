package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/etcdops/etcd/internal/pki"
	"golang.org/x/crypto/ssh"
)

// build makes every host's tree, boots them all and waits until sshd and etcd answer.
func (l *Lab) build(base string) error {
	l.Base = base
	ca, err := l.writeControllerFiles()
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(l.SSHKey + ".pub")
	if err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := mountOverlay(base, h); err != nil {
			return err
		}
		if err := l.configure(h, ca, pub); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	l.logf("booting %d hosts on 127.0.%d.0/24", len(l.Hosts), l.Net)
	for _, h := range l.Hosts {
		if err := l.boot(h); err != nil {
			return err
		}
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := l.writeInventory(); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(l.Hosts))
	for i, h := range l.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = l.waitSSH(h) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return l.WaitHealthy()
}

// writeControllerFiles creates the lab CA, the controller's client certificate and the SSH key.
func (l *Lab) writeControllerFiles() (*pki.CA, error) {
	dir := filepath.Join(l.Dir, "pki")
	ca, err := pki.NewCA("etcdops-lab-ca")
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return nil, err
	}
	client, err := ca.Issue("etcdops-lab-client")
	if err != nil {
		return nil, err
	}
	if l.ClientCert, l.ClientKey, err = client.Write(dir, "client"); err != nil {
		return nil, err
	}
	l.CACert = filepath.Join(dir, "ca.crt")
	l.SSHKey = filepath.Join(l.Dir, "ssh", "id_ed25519")
	priv, pub, err := sshKey("root@" + l.Spec.Name)
	if err != nil {
		return nil, err
	}
	if err := writeFile(l.SSHKey, priv, 0o600, -1); err != nil {
		return nil, err
	}
	return ca, writeFile(l.SSHKey+".pub", pub, 0o644, -1)
}

// sshKey makes an ed25519 key pair in OpenSSH formats.
func sshKey(comment string) (priv, pub []byte, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return nil, nil, err
	}
	spk, err := ssh.NewPublicKey(pk)
	if err != nil {
		return nil, nil, err
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spk))) + " " + comment + "\n"
	return pem.EncodeToMemory(block), []byte(authorized), nil
}

// configure writes the host's own files into its tree before it boots: names, sshd bound to its
// address, etcd certificates and configuration as on an OpenShift 3.x host, consumer units on masters.
func (l *Lab) configure(h *Host, ca *pki.CA, authorized []byte) error {
	root := h.Root()
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, o := range l.Hosts {
		fmt.Fprintf(&hosts, "%s\t%s\n", o.Addr, o.Name)
	}
	hostKey, _, err := sshKey("host@" + h.Name)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{"etc/hostname", h.Name + "\n", 0o644},
		{"etc/hosts", hosts.String(), 0o644},
		{"etc/ssh/sshd_config.d/lab.conf", fmt.Sprintf("# lab: every host shares the machine's network; sshd listens on this host's address only\n"+
			"ListenAddress %s\nHostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nUseDNS no\n", h.Addr), 0o644},
		{"etc/ssh/ssh_host_ed25519_key", string(hostKey), 0o600},
		{"root/.ssh/authorized_keys", string(authorized), 0o600},
	}
	if l.Spec.Flavour != FlavourUnit {
		files = append(files, struct {
			path string
			data string
			mode os.FileMode
		}{"etc/systemd/system/etcd.service", etcdUnit(l.etcdBin()), 0o644})
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(root, f.path), []byte(f.data), f.mode, -1); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "root/.ssh"), 0o700); err != nil {
		return err
	}
	if err := enable(root, "ssh.service", "/lib/systemd/system/ssh.service"); err != nil {
		return err
	}
	if err := setEtcdUID(root, h.EtcdUID); err != nil {
		return err
	}
	if err := l.writeEtcdCerts(h, ca); err != nil {
		return err
	}
	if _, ok := builtEtcd[l.Spec.Etcd]; ok {
		if err := l.installBuilt(root); err != nil {
			return err
		}
	}
	if h.Member {
		path, conf := "etc/etcd/etcd.conf", l.etcdConf(h)
		switch l.Spec.Flavour {
		case FlavourDropIn:
			path, conf = strings.TrimPrefix(DropInFile, "/"), etcdDropIn(l.etcdBin(), conf)
		case FlavourUnit:
			unit, nodes := l.storageOSUnit(h, conf)
			path, conf = strings.TrimPrefix(UnitFile, "/"), unit
			if err := writeFile(filepath.Join(root, strings.TrimPrefix(NodeEnvFile, "/")), []byte(nodes), 0o644, -1); err != nil {
				return err
			}
		}
		if err := writeFile(filepath.Join(root, path), []byte(conf), 0o644, -1); err != nil {
			return err
		}
		if err := enable(root, "etcd.service", "/etc/systemd/system/etcd.service"); err != nil {
			return err
		}
	}
	if contains(h.Groups, "masters") {
		return l.writeMaster(h, ca)
	}
	return nil
}

// writeEtcdCerts issues the host's server, peer and tool client certificates into /etc/etcd, owned
// by its etcd user. Server and peer certificates carry 127.0.0.1 besides the host's address: all
// hosts share one network namespace, so peer connections arrive from 127.0.0.1 and etcd checks the
// peer's remote address against its certificate.
func (l *Lab) writeEtcdCerts(h *Host, ca *pki.CA) error {
	dir := filepath.Join(h.Root(), "etc/etcd")
	if err := writeFile(filepath.Join(dir, "ca.crt"), ca.PEM, 0o644, h.EtcdUID); err != nil {
		return err
	}
	for _, c := range []struct{ name, cn string }{{"server", h.Name}, {"peer", h.Name}, {"client", "etcd-client-" + h.Name}} {
		sans := []string{h.Addr, "127.0.0.1", h.Name, "localhost"}
		if c.name == "client" {
			sans = nil
		}
		p, err := ca.Issue(c.cn, sans...)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, c.name+".crt"), p.CertPEM, 0o644, h.EtcdUID); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, c.name+".key"), p.KeyPEM, 0o600, h.EtcdUID); err != nil {
			return err
		}
	}
	return os.Chown(dir, h.EtcdUID, -1)
}

// etcdConf is /etc/etcd/etcd.conf as openshift-ansible wrote it for a 3.x cluster (v2 enabled on 3.4).
func (l *Lab) etcdConf(h *Host) string {
	var ic []string
	for _, m := range l.Members() {
		ic = append(ic, m.Name+"="+m.PeerURL())
	}
	v2 := "ETCD_ENABLE_V2=true\n"
	if l.Spec.Etcd == "3.6" {
		v2 = "" // 3.6 has no v2 API and refuses the variable
	}
	if l.Spec.SnapshotCount > 0 {
		v2 += fmt.Sprintf("ETCD_SNAPSHOT_COUNT=%d\n", l.Spec.SnapshotCount)
	}
	return fmt.Sprintf(`# etcd configuration written by the etcdops lab (OpenShift 3.x layout)
ETCD_NAME=%[1]s
ETCD_LISTEN_PEER_URLS=%[2]s
ETCD_DATA_DIR=/var/lib/etcd/
ETCD_HEARTBEAT_INTERVAL=500
ETCD_ELECTION_TIMEOUT=2500
ETCD_LISTEN_CLIENT_URLS=%[3]s
ETCD_INITIAL_ADVERTISE_PEER_URLS=%[2]s
ETCD_INITIAL_CLUSTER=%[4]s
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=%[5]s
ETCD_ADVERTISE_CLIENT_URLS=%[3]s
%[6]s
ETCD_TRUSTED_CA_FILE=/etc/etcd/ca.crt
ETCD_CLIENT_CERT_AUTH=true
ETCD_CERT_FILE=/etc/etcd/server.crt
ETCD_KEY_FILE=/etc/etcd/server.key
ETCD_PEER_TRUSTED_CA_FILE=/etc/etcd/ca.crt
ETCD_PEER_CLIENT_CERT_AUTH=true
ETCD_PEER_CERT_FILE=/etc/etcd/peer.crt
ETCD_PEER_KEY_FILE=/etc/etcd/peer.key
`, h.Name, h.PeerURL(), h.ClientURL(), strings.Join(ic, ","), l.Token, strings.TrimSuffix(v2, "\n"))
}

// Configuration flavours (Spec.Flavour) and where the drop-in and unit flavours keep the flags.
const (
	FlavourEnvFile = "env_file"
	FlavourDropIn  = "dropin"
	FlavourUnit    = "unit"
	DropInFile     = "/etc/systemd/system/etcd.service.d/20-clct-etcd-member.conf"
	UnitFile       = "/etc/systemd/system/etcd.service"
	NodeEnvFile    = "/etc/etcd.conf"
)

// storageOSUnit is etcd.conf's settings as the flags of the unit's ExecStart, laid out as StorageOS's
// etcd3.service (seed 003): "--flag value" words naming ${NODE_IP}, ${NODEn_IP} (the members in order),
// ${CLIENT_PORT} and ${PEERS_PORT} of the EnvironmentFile NodeEnvFile, which it returns too. Booleans
// are "--flag=value" (etcd's flag parser takes no separate value for them).
func (l *Lab) storageOSUnit(h *Host, envConf string) (unit, nodes string) {
	names := []string{"NODE_IP"}
	addrs := []string{h.Addr}
	nodes = "# NODE_IP is the IP of the node where this file resides.\nNODE_IP=" + h.Addr + "\n"
	for i, m := range l.Members() {
		names, addrs = append(names, fmt.Sprintf("NODE%d_IP", i+1)), append(addrs, m.Addr)
		nodes += fmt.Sprintf("NODE%d_IP=%s\n", i+1, m.Addr)
	}
	nodes += "CLIENT_PORT=2379\nPEERS_PORT=2380\n"
	var b strings.Builder
	fmt.Fprintf(&b, `[Unit]
Description=etcd3
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
User=etcd
WorkingDirectory=/var/lib/etcd/
EnvironmentFile=%s
ExecStart=%s`, NodeEnvFile, l.etcdBin())
	for _, line := range strings.Split(envConf, "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, "ETCD_") {
			continue
		}
		for i, a := range addrs {
			// In the initial cluster each member is its NODEn_IP; elsewhere this host is NODE_IP.
			if (name == "ETCD_INITIAL_CLUSTER") == (i > 0) {
				value = strings.ReplaceAll(value, "//"+a+":", "//${"+names[i]+"}:")
			}
		}
		value = strings.NewReplacer(":2379", ":${CLIENT_PORT}", ":2380", ":${PEERS_PORT}").Replace(value)
		flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "ETCD_")), "_", "-")
		if value == "true" || value == "false" {
			fmt.Fprintf(&b, " \\\n    %s=%s", flag, value)
		} else {
			fmt.Fprintf(&b, " \\\n    %s %s", flag, value)
		}
	}
	return b.String() + "\nRestart=on-failure\nLimitNOFILE=65536\n\n[Install]\nWantedBy=multi-user.target\n", nodes
}

// etcdDropIn is etcd.conf's settings as the flags of a drop-in's ExecStart, laid out as CoreOS's
// Container Linux Config writes 20-clct-etcd-member.conf (seed 004): quoted values, one per line.
func etcdDropIn(bin, envConf string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Service]\nExecStart=\nExecStart=%s", bin)
	for _, line := range strings.Split(envConf, "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, "ETCD_") {
			continue
		}
		fmt.Fprintf(&b, " \\\n  --%s=%q", strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "ETCD_")), "_", "-"), value)
	}
	return b.String() + "\n"
}

// etcdUnit runs etcd with everything from etcd.conf: etcd 3.4 exits when an ETCD_* variable
// duplicates a command-line flag, so the unit passes none.
func etcdUnit(bin string) string {
	return fmt.Sprintf(`[Unit]
Description=Etcd Server
After=network.target
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
WorkingDirectory=/var/lib/etcd/
EnvironmentFile=-/etc/etcd/etcd.conf
User=etcd
ExecStart=%s
Restart=on-failure
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, bin)
}

func (l *Lab) etcdBin() string {
	if _, ok := builtEtcd[l.Spec.Etcd]; ok {
		return "/usr/local/bin/etcd"
	}
	return "/usr/bin/etcd"
}

// installBuilt copies the binaries built from the Go module proxy into /usr/local/bin (etcdctl and
// etcdutl too when present, ahead of Debian's 3.4 etcdctl on PATH, as a host of that version has them).
func (l *Lab) installBuilt(root string) error {
	dir := l.Spec.EtcdDir
	if dir == "" {
		dir = filepath.Join(repoRoot(), "build", "etcd-"+l.Spec.Etcd)
	}
	for _, b := range []string{"etcd", "etcdctl", "etcdutl"} {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			if b == "etcd" {
				return fmt.Errorf("etcd %s: %v; build it with `make %s` or choose etcd 3.4", l.Spec.Etcd, err, builtEtcd[l.Spec.Etcd])
			}
			continue
		}
		if err := writeFile(filepath.Join(root, "usr/local/bin", b), data, 0o755, -1); err != nil {
			return err
		}
	}
	return nil
}

// writeMaster installs the OpenShift master's etcd client files, master-config.yaml (etcd2 storage,
// as before a migration) and two long-running consumer units that log the storage backend they
// started with, so stop/reconfigure/start steps act on real units.
func (l *Lab) writeMaster(h *Host, ca *pki.CA) error {
	root := h.Root()
	dir := filepath.Join(root, "etc/origin/master")
	if err := writeFile(filepath.Join(dir, "master.etcd-ca.crt"), ca.PEM, 0o644, -1); err != nil {
		return err
	}
	p, err := ca.Issue("system:master-" + h.Name)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "master.etcd-client.crt"), p.CertPEM, 0o644, -1); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "master.etcd-client.key"), p.KeyPEM, 0o600, -1); err != nil {
		return err
	}
	var urls strings.Builder
	for _, m := range l.Members() {
		fmt.Fprintf(&urls, "  - %s\n", m.ClientURL())
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: MasterConfig
etcdClientInfo:
  ca: master.etcd-ca.crt
  certFile: master.etcd-client.crt
  keyFile: master.etcd-client.key
  urls:
%skubernetesMasterConfig:
  apiServerArguments:
    storage-backend:
    - etcd2
    storage-media-type:
    - application/json
masterPublicURL: https://%s:8443
`, urls.String(), h.Addr)
	if err := writeFile(filepath.Join(dir, "master-config.yaml"), []byte(cfg), 0o644, -1); err != nil {
		return err
	}
	for _, svc := range MasterServices {
		unit := fmt.Sprintf(`[Unit]
Description=%s (lab stand-in: logs its storage backend and stays up)
After=network.target

[Service]
ExecStart=/bin/sh -c 'echo "%s started, storage-backend $(grep -A1 storage-backend: /etc/origin/master/master-config.yaml | tail -n1 | tr -d " -")"; exec sleep infinity'
Restart=on-failure

[Install]
WantedBy=multi-user.target
`, svc, svc)
		path := "/etc/systemd/system/" + svc + ".service"
		if err := writeFile(filepath.Join(root, path), []byte(unit), 0o644, -1); err != nil {
			return err
		}
		if err := enable(root, svc+".service", path); err != nil {
			return err
		}
	}
	return nil
}

// MasterServices are the consumer units on masters hosts.
var MasterServices = []string{"atomic-openshift-master-api", "atomic-openshift-master-controllers"}

// setEtcdUID gives the host's etcd user its own uid (iptables' owner match then separates hosts'
// etcd traffic, all of which comes from 127.0.0.1) and hands it the data dir.
func setEtcdUID(root string, uid int) error {
	path := filepath.Join(root, "etc/passwd")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, ln := range lines {
		f := strings.Split(ln, ":")
		if len(f) == 7 && f[0] == "etcd" {
			f[2] = fmt.Sprint(uid)
			lines[i] = strings.Join(f, ":")
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no etcd user in the base tree: remove %s to rebuild it", filepath.Dir(root))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return err
	}
	return filepath.Walk(filepath.Join(root, "var/lib/etcd"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, -1)
	})
}

// enable links a unit into multi-user.target.wants, as `systemctl enable` would.
func enable(root, unit, target string) error {
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, unit)
	_ = os.Remove(link)
	return os.Symlink(target, link)
}

// writeFile writes data with mode, creating parents, and chowns it to uid unless uid < 0.
func writeFile(path string, data []byte, mode os.FileMode, uid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if uid >= 0 {
		return os.Chown(path, uid, -1)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// repoRoot is the checkout holding go.mod above the working directory ("" when not in one).
func repoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "galaxy.yml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
