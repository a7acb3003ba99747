// Package tempmember runs a temporary single-member etcd on a host as a transient systemd unit,
// started through systemd's D-Bus API (never a process of the module or of the SSH session): its own
// data dir, name, cluster token and ports, the member's TLS files, the v2 API on and the host's own
// etcd binary, run as the host etcd unit's user. The failed-migration clean-up (issue 14) copies the
// v2 keyspace into such an instance. It backs the etcd_temp_member module.
package tempmember

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Params are etcd_temp_member's options.
type Params struct {
	State             string        `arg:"state" default:"started" choices:"started,stopped"`
	Unit              string        `arg:"unit" default:"etcdops-temp-etcd.service"`
	Name              string        `arg:"name" default:"etcdops-temp"`
	ClusterToken      string        `arg:"cluster_token" default:"etcdops-temp"`
	DataDir           string        `arg:"data_dir" type:"path" required:"true"`
	ClientURL         string        `arg:"client_url" required:"true"`
	PeerURL           string        `arg:"peer_url" required:"true"`
	CertFile          string        `arg:"cert_file" type:"path"`
	KeyFile           string        `arg:"key_file" type:"path"`
	TrustedCAFile     string        `arg:"trusted_ca_file" type:"path"`
	PeerCertFile      string        `arg:"peer_cert_file" type:"path"`
	PeerKeyFile       string        `arg:"peer_key_file" type:"path"`
	PeerTrustedCAFile string        `arg:"peer_trusted_ca_file" type:"path"`
	ClientCertAuth    bool          `arg:"client_cert_auth" default:"true"`
	EnableV2          bool          `arg:"enable_v2" default:"true"`
	Service           string        `arg:"service" default:"etcd"`
	Binary            string        `arg:"binary" type:"path"`
	CACert            string        `arg:"ca_cert" type:"path"`
	ClientCert        string        `arg:"client_cert" type:"path"`
	ClientKey         string        `arg:"client_key" type:"path"`
	Timeout           time.Duration `arg:"timeout" default:"60s"`

	unit, service string // validated unit names
}

func perr(param, format string, args ...any) error {
	return &module.ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Validate rejects input that cannot work, naming the option and the fix. It reads only the files
// named (that they exist); the ports are checked when starting.
func (p *Params) Validate() error {
	var err error
	if p.unit, err = systemd.UnitName(p.Unit); err != nil {
		return perr("unit", "%v", err)
	}
	if !strings.HasSuffix(p.unit, ".service") {
		return perr("unit", "%q is not a service; name a .service unit such as etcdops-temp-etcd.service", p.Unit)
	}
	if p.service, err = systemd.UnitName(p.Service); err != nil {
		return perr("service", "%v", err)
	}
	if p.unit == p.service {
		return perr("unit", "%s is the host's etcd unit (service); give the temporary member its own unit, "+
			"e.g. etcdops-temp-etcd.service", p.unit)
	}
	if p.Name == "" || strings.ContainsAny(p.Name, "=, \t\n") {
		return perr("name", "%q cannot be a member name (it goes into --initial-cluster NAME=URL); use e.g. etcdops-temp", p.Name)
	}
	if p.ClusterToken == "" || strings.ContainsAny(p.ClusterToken, " \t\n") {
		return perr("cluster_token", "%q cannot be a cluster token; use a word such as etcdops-temp", p.ClusterToken)
	}
	if !filepath.IsAbs(p.DataDir) || filepath.Clean(p.DataDir) == "/" {
		return perr("data_dir", "must be an absolute directory path other than /, got %q; e.g. /var/lib/etcd-migration", p.DataDir)
	}
	p.DataDir = filepath.Clean(p.DataDir)
	client, err := listenURL("client_url", p.ClientURL, "3000")
	if err != nil {
		return err
	}
	peer, err := listenURL("peer_url", p.PeerURL, "2999")
	if err != nil {
		return err
	}
	if client.Port() == peer.Port() && (client.Hostname() == peer.Hostname() || isAny(client.Hostname()) || isAny(peer.Hostname())) {
		return perr("peer_url", "uses port %s, as client_url does; give the peer URL its own port (e.g. 2999 beside client port 3000)", peer.Port())
	}
	p.ClientURL, p.PeerURL = client.String(), peer.String()
	files := map[string]*string{"cert_file": &p.CertFile, "key_file": &p.KeyFile, "trusted_ca_file": &p.TrustedCAFile,
		"peer_cert_file": &p.PeerCertFile, "peer_key_file": &p.PeerKeyFile, "peer_trusted_ca_file": &p.PeerTrustedCAFile,
		"ca_cert": &p.CACert, "client_cert": &p.ClientCert, "client_key": &p.ClientKey, "binary": &p.Binary}
	for _, name := range []string{"cert_file", "key_file", "trusted_ca_file", "peer_cert_file", "peer_key_file",
		"peer_trusted_ca_file", "ca_cert", "client_cert", "client_key", "binary"} {
		path := *files[name]
		if path == "" {
			continue
		}
		if !filepath.IsAbs(path) {
			return perr(name, "must be an absolute path on the host, got %q", path)
		}
		if _, err := os.Stat(path); err != nil {
			return perr(name, "cannot read %s: %v; check the path on the host the task runs on", path, errors.Unwrap(err))
		}
	}
	if err := tlsPair("", client, p.CertFile, p.KeyFile, p.TrustedCAFile); err != nil {
		return err
	}
	if err := tlsPair("peer_", peer, p.PeerCertFile, p.PeerKeyFile, p.PeerTrustedCAFile); err != nil {
		return err
	}
	if client.Scheme == "https" && p.ClientCertAuth && p.TrustedCAFile == "" {
		return perr("trusted_ca_file", "is required with client_cert_auth=true: etcd checks client certificates "+
			"against it (e.g. /etc/etcd/ca.crt), or set client_cert_auth=false")
	}
	if (p.ClientCert == "") != (p.ClientKey == "") {
		return perr("client_cert", "client_cert and client_key go together; set both or neither")
	}
	if client.Scheme == "https" {
		if p.CACert == "" {
			p.CACert = p.TrustedCAFile
		}
		if p.CACert == "" {
			return perr("ca_cert", "is required to check the instance over https; give the CA that signed cert_file (e.g. /etc/etcd/ca.crt)")
		}
		if p.ClientCertAuth && p.ClientCert == "" {
			return perr("client_cert", "is required with client_cert_auth=true so the module can check the instance "+
				"answers; give a client certificate and key the etcd CA signed (e.g. /etc/etcd/peer.crt and peer.key)")
		}
	} else if p.CACert != "" || p.ClientCert != "" {
		return perr("client_url", "%q uses http:// while ca_cert/client_cert are set; use https:// or drop them", p.ClientURL)
	}
	if p.Binary != "" {
		if st, err := os.Stat(p.Binary); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return perr("binary", "%s is not an executable file; give the etcd binary's path, e.g. /usr/bin/etcd", p.Binary)
		}
	}
	if p.Timeout <= 0 {
		return perr("timeout", "must be greater than 0, e.g. 60s")
	}
	return nil
}

// listenURL checks a URL etcd can listen on and advertise: http or https, an IP address (etcd binds
// IPs, not names), a port, no path.
func listenURL(param, raw, examplePort string) (*url.URL, error) {
	example := "https://10.0.0.1:" + examplePort
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, perr(param, "%q is not a URL such as %s", raw, example)
	}
	if u.Port() == "" {
		return nil, perr(param, "%q has no port; give one, e.g. %s", raw, example)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return nil, perr(param, "%q: port %s is not a port number", raw, u.Port())
	}
	if net.ParseIP(u.Hostname()) == nil {
		return nil, perr(param, "%q: etcd listens on an IP address, not a name; use the host's address, e.g. %s", raw, example)
	}
	if u.Path != "" || u.RawQuery != "" || u.User != nil {
		return nil, perr(param, "%q: give only scheme, address and port, e.g. %s", raw, example)
	}
	return u, nil
}

func isAny(host string) bool { ip := net.ParseIP(host); return ip != nil && ip.IsUnspecified() }

// tlsPair checks one side's (client or peer) TLS files against its URL's scheme.
func tlsPair(prefix string, u *url.URL, cert, key, ca string) error {
	side := map[string]string{"": "client_url", "peer_": "peer_url"}[prefix]
	if (cert == "") != (key == "") {
		return perr(prefix+"cert_file", "%scert_file and %skey_file go together; set both", prefix, prefix)
	}
	if u.Scheme == "http" && (cert != "" || ca != "") {
		return perr(side, "%q uses http:// while %scert_file/%strusted_ca_file are set; use https:// (the files are "+
			"only used over TLS) or drop them", u.String(), prefix, prefix)
	}
	if u.Scheme == "https" && cert == "" {
		return perr(prefix+"cert_file", "is required for the https %s %q; give the member's %scertificate and key "+
			"(as ETCD_%sCERT_FILE/ETCD_%sKEY_FILE in etcd.conf)", strings.TrimSuffix(side, "_url")+" URL", u.String(),
			map[string]string{"": "server ", "peer_": "peer "}[prefix], strings.ToUpper(prefix), strings.ToUpper(prefix))
	}
	return nil
}

// Command is the etcd command line of the instance (no secrets: only paths).
func (p *Params) Command(binary string) []string {
	cmd := []string{binary,
		"--name", p.Name,
		"--data-dir", p.DataDir,
		"--listen-client-urls", p.ClientURL,
		"--advertise-client-urls", p.ClientURL,
		"--listen-peer-urls", p.PeerURL,
		"--initial-advertise-peer-urls", p.PeerURL,
		"--initial-cluster", p.Name + "=" + p.PeerURL,
		"--initial-cluster-token", p.ClusterToken,
		"--initial-cluster-state", "new",
	}
	if p.CertFile != "" {
		cmd = append(cmd, "--cert-file", p.CertFile, "--key-file", p.KeyFile)
	}
	if p.TrustedCAFile != "" {
		cmd = append(cmd, "--trusted-ca-file", p.TrustedCAFile)
	}
	if strings.HasPrefix(p.ClientURL, "https://") {
		cmd = append(cmd, "--client-cert-auth="+strconv.FormatBool(p.ClientCertAuth))
	}
	if p.PeerCertFile != "" {
		cmd = append(cmd, "--peer-cert-file", p.PeerCertFile, "--peer-key-file", p.PeerKeyFile)
	}
	if p.PeerTrustedCAFile != "" {
		cmd = append(cmd, "--peer-trusted-ca-file", p.PeerTrustedCAFile, "--peer-client-cert-auth=true")
	}
	if p.EnableV2 {
		cmd = append(cmd, "--enable-v2=true")
	}
	return cmd
}
