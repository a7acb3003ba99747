// Package etcdtest starts real etcd clusters for tests: TLS on client and peer URLs with client
// certificate auth, v2 API enabled, on loopback ports. Members run embedded (go.etcd.io/etcd/server
// 3.5, the default) or as etcd processes when ETCDTEST_BIN names a binary (Debian's 3.4, a built 3.6).
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/pki"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cluster is a running test cluster.
type Cluster struct {
	t       testing.TB
	Dir     string
	Token   string
	CACert  string
	Cert    string // client certificate for tools
	Key     string
	ca      *pki.CA
	bin     string
	mu      sync.Mutex
	Members []*Member
}

// Member is one etcd server of a Cluster.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	// InitialCluster and State are what the member starts with; tests change them to re-add a member.
	InitialCluster string
	State          string
	// Extra is appended to the member's configuration (flags for a process, applied by name for embed).
	Extra   map[string]string
	running runner
}

type runner interface {
	stop() error
	pid() int
}

// Options tune NewCluster.
type Options struct {
	// Bin runs members as processes of this etcd binary; empty means ETCDTEST_BIN or embedded.
	Bin string
	// EnableV2 turns on the v2 API (default on; needs etcd ≤ 3.5).
	DisableV2 bool
	// Extra is added to every member's configuration (etcd flag names without the leading --, e.g.
	// "strict-reconfig-check": "false").
	Extra map[string]string
}

// Binary returns the etcd binary tests should run as processes, or "" for embedded servers.
func Binary() string { return os.Getenv("ETCDTEST_BIN") }

// Version is the major*100+minor of the etcd that NewCluster starts by default (the embedded server
// is 3.5).
func Version() int {
	if Binary() == "" {
		return 305
	}
	return binaryVersion(Binary())
}

// NewCluster starts n members and waits until the cluster answers a linearizable read.
// It is stopped by t.Cleanup.
func NewCluster(t testing.TB, n int, opts ...Options) *Cluster {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Bin == "" {
		o.Bin = Binary()
	}
	dir := t.TempDir()
	ca, err := pki.NewCA("etcdtest-ca")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: dir, Token: fmt.Sprintf("etcdtest-%d", time.Now().UnixNano()),
		CACert: filepath.Join(dir, "ca.crt"), ca: ca, bin: o.Bin}
	pair, err := ca.Issue("etcdtest-client", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cert, c.Key, err = pair.Write(dir, "client"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c.Members = append(c.Members, c.NewMember(fmt.Sprintf("m%d", i)))
	}
	var ic []string
	for _, m := range c.Members {
		ic = append(ic, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.InitialCluster = strings.Join(ic, ",")
		if o.DisableV2 {
			m.Extra["enable-v2"] = "false"
		}
		for k, v := range o.Extra {
			m.Extra[k] = v
		}
	}
	t.Cleanup(c.Close)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range c.Members {
		wg.Add(1)
		go func(i int, m *Member) {
			defer wg.Done()
			errs[i] = c.Start(m)
		}(i, m)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.WaitReady(t)
	return c
}

// NewMember prepares (does not start) a member with fresh ports, certificates and data dir.
func (c *Cluster) NewMember(name string) *Member {
	c.t.Helper()
	ports := freePorts(c.t, 2)
	m := &Member{
		Name:      name,
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		DataDir:   filepath.Join(c.Dir, name+".etcd"),
		State:     "new",
		Extra:     map[string]string{"enable-v2": "true"},
	}
	pair, err := c.ca.Issue(name, "127.0.0.1", "localhost")
	if err != nil {
		c.t.Fatal(err)
	}
	if _, _, err := pair.Write(c.Dir, name); err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *Cluster) certs(m *Member) (cert, key string) {
	return filepath.Join(c.Dir, m.Name+".crt"), filepath.Join(c.Dir, m.Name+".key")
}

// Start starts a member (embedded or process) and returns once it listens.
func (c *Cluster) Start(m *Member) error {
	var r runner
	var err error
	if c.bin != "" {
		r, err = c.startProcess(m)
	} else {
		r, err = c.startEmbedded(m)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	c.mu.Lock()
	m.running = r
	c.mu.Unlock()
	return nil
}

// Stop stops a member; its data dir stays.
func (c *Cluster) Stop(m *Member) {
	c.mu.Lock()
	r := m.running
	m.running = nil
	c.mu.Unlock()
	if r != nil {
		if err := r.stop(); err != nil {
			c.t.Logf("stop %s: %v", m.Name, err)
		}
	}
}

// Running reports whether the member was started and not stopped.
func (c *Cluster) Running(m *Member) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.running != nil
}

// PID is the process id of a member run as a process (0: embedded or stopped), for benchmarks
// that account CPU per server.
func (c *Cluster) PID(m *Member) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.running == nil {
		return 0
	}
	return m.running.pid()
}

// Close stops every member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		c.Stop(m)
	}
}

// Endpoints lists the client URLs of the members (of the given ones, or all).
func (c *Cluster) Endpoints(members ...*Member) []string {
	if len(members) == 0 {
		members = c.Members
	}
	var eps []string
	for _, m := range members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// ConnOptions returns module connection options for the cluster (TLS, client cert).
func (c *Cluster) ConnOptions(members ...*Member) etcdconn.Options {
	return etcdconn.Options{Endpoints: c.Endpoints(members...), CACert: c.CACert, ClientCert: c.Cert,
		ClientKey: c.Key, DialTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second}
}

// Args returns the connection options as Ansible task arguments.
func (c *Cluster) Args(members ...*Member) map[string]any {
	eps := []any{}
	for _, e := range c.Endpoints(members...) {
		eps = append(eps, e)
	}
	return map[string]any{"endpoints": eps, "ca_cert": c.CACert, "client_cert": c.Cert, "client_key": c.Key}
}

// Client returns a v3 client closed by t.Cleanup.
func (c *Cluster) Client(t testing.TB, members ...*Member) *clientv3.Client {
	t.Helper()
	o := c.ConnOptions(members...)
	cli, err := o.V3()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// WaitReady waits until every running member answers a linearizable read.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range c.Members {
		if !c.Running(m) {
			continue
		}
		o := c.ConnOptions(m)
		for {
			err := o.ReadProbe(3 * time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %s not ready: %v", m.Name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// Ports come from below Linux's ephemeral range (32768+): a port the kernel hands to a ":0" listener is
// also handed out as the source port of outgoing connections, and tests dial a lot, so such a port is
// often taken again before etcd binds it. Each port is used once per test process. `go test` runs
// packages as parallel processes: each draws from its own stripe of the range (by process id), and a
// port is also claimed for the process's life by a lock file (portLockDir), so two processes whose ids
// fall in the same stripe never hand out the same port (CI once lost a member's start to that).
const portLow, portHigh, portStripes = 20000, 32000, 8

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no free loopback port in %d-%d", portLow, portHigh)
		}
		stripe := (portHigh - portLow) / portStripes
		p := portLow + (os.Getpid()%portStripes)*stripe + rand.Intn(stripe)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		if !claimPort(p) {
			continue
		}
		ports = append(ports, p)
	}
	return ports
}

// portLockDir holds one lock file per port claimed by a running test process.
var portLockDir = filepath.Join(os.TempDir(), "etcdtest-ports")

// claimPort takes the port's lock for the rest of this process (its descriptor is never closed, so the
// kernel releases it when the process ends, however it ends); false: another process holds it.
func claimPort(p int) bool {
	if err := os.MkdirAll(portLockDir, 0o777); err != nil {
		return true // no lock dir: the stripes alone
	}
	f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	claimedPorts = append(claimedPorts, f)
	return true
}

// claimedPorts keeps the lock files open (and their locks held) for the life of the process.
var claimedPorts []*os.File

// AddUnstarted puts a member with peerURL into the member list without starting it (what a failed
// scale-up leaves behind) and returns its id. etcd refuses reconfiguration for about 5 s after its
// members connect ("unhealthy cluster"), so it retries for up to 30 s.
func (c *Cluster) AddUnstarted(t testing.TB, peerURL string) uint64 {
	t.Helper()
	cli := c.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.MemberAdd(ctx, []string{peerURL})
		cancel()
		if err == nil {
			return resp.Member.ID
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			t.Fatalf("member add %s: %v", peerURL, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// EnableAuth turns on etcd's auth with a root user of this password. The tools' client certificate
// (common name etcdtest-client) gets a user with the root role, so Client keeps working.
func (c *Cluster) EnableAuth(t testing.TB, password string) {
	t.Helper()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error {
			_, err := cli.UserAddWithOptions(ctx, "etcdtest-client", "", &clientv3.UserAddOptions{NoPassword: true})
			return err
		},
		func() error { _, err := cli.UserGrantRole(ctx, "etcdtest-client", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("enable auth: %v", err)
		}
	}
}
