package tempmember

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// params returns valid parameters with TLS files that exist, plus the changes given.
func params(t *testing.T, change func(p *Params)) Params {
	dir := t.TempDir()
	file := func(name string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p := Params{State: "started", Unit: "etcdops-temp-etcd.service", Name: "etcdops-temp", ClusterToken: "etcdops-temp",
		DataDir: "/var/lib/etcd-migration", ClientURL: "https://10.0.0.1:3000", PeerURL: "https://10.0.0.1:2999",
		CertFile: file("server.crt"), KeyFile: file("server.key"), TrustedCAFile: file("ca.crt"),
		PeerCertFile: file("peer.crt"), PeerKeyFile: file("peer.key"), PeerTrustedCAFile: file("ca.crt"),
		ClientCertAuth: true, EnableV2: true, Service: "etcd", ClientCert: file("client.crt"), ClientKey: file("client.key"),
		Timeout: time.Minute}
	if change != nil {
		change(&p)
	}
	return p
}

func TestValidateAndCommand(t *testing.T) {
	p := params(t, nil)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.unit != "etcdops-temp-etcd.service" || p.service != "etcd.service" || p.CACert != p.TrustedCAFile {
		t.Fatalf("after Validate: unit %q service %q ca_cert %q", p.unit, p.service, p.CACert)
	}
	got := strings.Join(p.Command("/usr/bin/etcd"), " ")
	for _, want := range []string{"/usr/bin/etcd --name etcdops-temp --data-dir /var/lib/etcd-migration ",
		"--listen-client-urls https://10.0.0.1:3000 --advertise-client-urls https://10.0.0.1:3000 ",
		"--listen-peer-urls https://10.0.0.1:2999 --initial-advertise-peer-urls https://10.0.0.1:2999 ",
		"--initial-cluster etcdops-temp=https://10.0.0.1:2999 --initial-cluster-token etcdops-temp --initial-cluster-state new",
		"--cert-file " + p.CertFile, "--trusted-ca-file " + p.TrustedCAFile, "--client-cert-auth=true",
		"--peer-cert-file " + p.PeerCertFile, "--peer-trusted-ca-file " + p.PeerTrustedCAFile, "--enable-v2=true"} {
		if !strings.Contains(got, want) {
			t.Errorf("command lacks %q:\n%s", want, got)
		}
	}
	plain := params(t, func(p *Params) {
		p.ClientURL, p.PeerURL, p.EnableV2 = "http://127.0.0.1:3000", "http://127.0.0.1:2999", false
		p.CertFile, p.KeyFile, p.TrustedCAFile, p.PeerCertFile, p.PeerKeyFile, p.PeerTrustedCAFile = "", "", "", "", "", ""
		p.ClientCert, p.ClientKey = "", ""
	})
	if err := plain.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plain.Command("etcd"), " "); strings.Contains(got, "cert") || strings.Contains(got, "enable-v2") {
		t.Errorf("plain http command: %s", got)
	}
}

func TestValidateRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		param, want string
		change      func(p *Params)
	}{
		{"unit", "'/'", func(p *Params) { p.Unit = "../../../tmp/x" }},
		{"unit", "not a service", func(p *Params) { p.Unit = "x.timer" }},
		{"unit", "host's etcd unit", func(p *Params) { p.Unit = "etcd" }},
		{"service", "not a valid", func(p *Params) { p.Service = "a/b" }},
		{"name", "initial-cluster", func(p *Params) { p.Name = "a=b" }},
		{"data_dir", "absolute directory", func(p *Params) { p.DataDir = "var/lib/x" }},
		{"data_dir", "other than /", func(p *Params) { p.DataDir = "/" }},
		{"client_url", "no port", func(p *Params) { p.ClientURL = "https://10.0.0.1" }},
		{"client_url", "IP address", func(p *Params) { p.ClientURL = "https://etcd1.example.com:3000" }},
		{"client_url", "not a URL", func(p *Params) { p.ClientURL = "10.0.0.1:3000" }},
		{"client_url", "http://", func(p *Params) { p.ClientURL = "http://10.0.0.1:3000" }},
		{"peer_url", "http://", func(p *Params) { p.PeerURL = "http://10.0.0.1:2999" }},
		{"peer_url", "own port", func(p *Params) { p.PeerURL = "https://10.0.0.1:3000" }},
		{"cert_file", "required", func(p *Params) { p.CertFile, p.KeyFile = "", "" }},
		{"peer_cert_file", "go together", func(p *Params) { p.PeerKeyFile = "" }},
		{"key_file", "cannot read", func(p *Params) { p.KeyFile = "/nonexistent/server.key" }},
		{"trusted_ca_file", "absolute path", func(p *Params) { p.TrustedCAFile = "ca.crt" }},
		{"trusted_ca_file", "client_cert_auth", func(p *Params) { p.TrustedCAFile = ""; p.CACert = p.CertFile }},
		{"client_cert", "required", func(p *Params) { p.ClientCert, p.ClientKey = "", "" }},
		{"client_cert", "go together", func(p *Params) { p.ClientKey = "" }},
		{"binary", "executable", func(p *Params) { p.Binary = p.CertFile }},
		{"timeout", "greater than 0", func(p *Params) { p.Timeout = 0 }},
	} {
		p := params(t, c.change)
		err := p.Validate()
		pe, ok := err.(*module.ParamError)
		if !ok || pe.Param != c.param || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s (%s): got %v", c.param, c.want, err)
		}
	}
}

func TestArgDiff(t *testing.T) {
	p := params(t, nil)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	running := p.Command("/usr/bin/etcd")
	q := p
	q.Name, q.EnableV2 = "other", false
	got := strings.Join(argDiff(running, q.Command("/usr/bin/etcd")), "; ")
	want := "--name etcdops-temp, asked other; --initial-cluster etcdops-temp=https://10.0.0.1:2999, asked other=https://10.0.0.1:2999; --enable-v2 true set, not asked"
	if got != want {
		t.Errorf("argDiff:\n%s\nwant\n%s", got, want)
	}
	if d := argDiff(running, running); len(d) != 0 {
		t.Errorf("no difference: %v", d)
	}
}
