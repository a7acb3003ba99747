package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.yaml.in/yaml/v3"
)

// flags is the member's configuration as etcd flag names; processes get them as --name=value,
// embedded servers as etcd's YAML config file (same names, TLS nested).
func (c *Cluster) flags(m *Member) map[string]string {
	cert, key := c.certs(m)
	f := map[string]string{
		"name":                        m.Name,
		"data-dir":                    m.DataDir,
		"listen-client-urls":          m.ClientURL,
		"advertise-client-urls":       m.ClientURL,
		"listen-peer-urls":            m.PeerURL,
		"initial-advertise-peer-urls": m.PeerURL,
		"initial-cluster":             m.InitialCluster,
		"initial-cluster-state":       m.State,
		"initial-cluster-token":       c.Token,
		"cert-file":                   cert,
		"key-file":                    key,
		"trusted-ca-file":             c.CACert,
		"client-cert-auth":            "true",
		"peer-cert-file":              cert,
		"peer-key-file":               key,
		"peer-trusted-ca-file":        c.CACert,
		"peer-client-cert-auth":       "true",
		"log-level":                   "error",
	}
	for k, v := range m.Extra {
		f[k] = v
	}
	if c.bin != "" {
		switch v := binaryVersion(c.bin); {
		case v >= 306: // etcd 3.6 removed the v2 API and its flag: passing --enable-v2 at all (even false) is an error
			delete(f, "enable-v2")
		case v < 304: // --log-level came with 3.4 (an unknown flag stops etcd)
			delete(f, "log-level")
			f["log-package-levels"] = "*=ERROR"
		}
	}
	return f
}

var (
	versionMu    sync.Mutex
	versionCache = map[string]int{}
)

// binaryVersion returns an etcd binary's major*100+minor (3.4 → 304), from its --version output,
// once per binary.
func binaryVersion(bin string) int {
	versionMu.Lock()
	defer versionMu.Unlock()
	if v, ok := versionCache[bin]; ok {
		return v
	}
	out, _ := exec.Command(bin, "--version").Output()
	var major, minor int
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			fmt.Sscanf(v, "%d.%d", &major, &minor)
		}
	}
	versionCache[bin] = major*100 + minor
	return major*100 + minor
}

type processRunner struct {
	cmd  *exec.Cmd
	done chan error
}

func (c *Cluster) startProcess(m *Member) (runner, error) {
	var args []string
	flags := c.flags(m)
	names := make([]string, 0, len(flags))
	for k := range flags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, fmt.Sprintf("--%s=%s", k, flags[k]))
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, m.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Debian's etcd 3.4 refuses to start when ETCD_* variables shadow flags; give it a clean env.
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &processRunner{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	u, _ := url.Parse(m.ClientURL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.done:
			log, _ := os.ReadFile(filepath.Join(c.Dir, m.Name+".log"))
			return nil, fmt.Errorf("etcd exited: %v\n%s", err, tail(string(log), 2000))
		default:
		}
		if conn, err := net.DialTimeout("tcp", u.Host, 200*time.Millisecond); err == nil {
			conn.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("etcd did not listen on %s within 30s", u.Host)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *processRunner) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

func (p *processRunner) pid() int { return p.cmd.Process.Pid }

type embedRunner struct{ e *embed.Etcd }

func (r *embedRunner) pid() int { return 0 }

func (c *Cluster) startEmbedded(m *Member) (runner, error) {
	flags := c.flags(m)
	doc := map[string]any{}
	tlsKeys := map[string]string{"cert-file": "cert-file", "key-file": "key-file", "trusted-ca-file": "trusted-ca-file",
		"client-cert-auth": "client-cert-auth"}
	client, peer := map[string]any{}, map[string]any{}
	for k, v := range flags {
		var val any = v // the YAML config is typed, flags are not: booleans and numbers as such
		if v == "true" || v == "false" {
			val = v == "true"
		} else if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			val = n
		}
		if _, ok := tlsKeys[k]; ok {
			client[k] = val
			continue
		}
		if pk, ok := strings.CutPrefix(k, "peer-"); ok {
			if _, ok := tlsKeys[pk]; ok {
				peer[pk] = val
				continue
			}
		}
		doc[k] = val
	}
	doc["client-transport-security"] = client
	doc["peer-transport-security"] = peer
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.Dir, m.Name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	cfg, err := embed.ConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	return &embedRunner{e: e}, nil
}

func (r *embedRunner) stop() error {
	r.e.Close()
	return nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
