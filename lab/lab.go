// Package lab runs the project's multi-host etcd lab on one machine: Debian bookworm hosts booted with
// systemd-nspawn (systemd as PID 1) from overlay copies of one cached base tree, each on its own
// loopback address with sshd and a TLS etcd configured like an OpenShift 3.x host, an INI inventory for
// ansible-playbook, v2/v3 data seeding and fault helpers (kill, stop, restart, corrupt, partition).
//
// Labs live in Root/<name>/ with a state.json recording every host's PIDs, so teardown kills exactly
// those processes and a lab left behind by an aborted run is found and cleaned before a new one starts.
package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultRoot is where labs keep their state, host trees and generated files.
const DefaultRoot = "/var/lib/etcdops-lab"

// Spec describes a lab. The zero value plus Hosts is a usable 3.4 lab.
type Spec struct {
	Name    string         // lab name, a directory under Root (default "lab")
	Hosts   int            // etcd hosts forming the initial cluster (default 3)
	Masters bool           // etcd hosts are also OpenShift masters: consumer units and master-config.yaml
	Groups  map[string]int // extra groups of fresh hosts: etcd installed, configured by nobody yet (e.g. new_etcd: 3)
	// Etcd is "3.4" (Debian's 3.4.23, default), or a version built from the Go module proxy into
	// build/etcd-<version>: "3.6" (mk/etcd36.mk), "3.2" or "3.3" (mk/etcdold.mk; OpenShift 3.x's).
	Etcd    string
	EtcdDir string // directory holding the built binaries (default: build/etcd-<Etcd> of the checkout)
	Cache   string // base tree cache (default DefaultCache)
	Root    string // lab directory root (default DefaultRoot)
	// SnapshotCount is ETCD_SNAPSHOT_COUNT in etcd.conf (0: etcd's default, 100000 on 3.4), so that a
	// seeded store lies mostly in v2 snapshots, as on a long-lived member.
	SnapshotCount int
	// Flavour is where each member's configuration lives: FlavourEnvFile (default, /etc/etcd/etcd.conf)
	// or FlavourDropIn (CoreOS style: DropInFile whose ExecStart passes the flags, no etcd.conf) or
	// FlavourUnit (StorageOS style: UnitFile's ExecStart passes the flags naming the variables of
	// NodeEnvFile, no etcd.conf; the fresh hosts have no etcd unit, the playbooks write it).
	Flavour string
	// Persistent labs (the CLI's) outlive the process that made them; others are leftovers once
	// their owner process is gone.
	Persistent bool
}

// Host is one lab machine.
type Host struct {
	Name      string   `json:"name"`
	Addr      string   `json:"addr"` // its own loopback address, 127.0.N.M
	Groups    []string `json:"groups"`
	Member    bool     `json:"member"`   // part of the initial etcd cluster
	Dir       string   `json:"dir"`      // upper/work/root of its overlay
	EtcdUID   int      `json:"etcd_uid"` // unique per host, so iptables can tell its etcd's traffic apart
	NspawnPID int      `json:"nspawn_pid"`
	InitPID   int      `json:"init_pid"` // the container's systemd (PID 1 inside)
}

// Root is the host's root file system as seen from the machine.
func (h *Host) Root() string { return filepath.Join(h.Dir, "root") }

// ClientURL and PeerURL are the host's etcd URLs.
func (h *Host) ClientURL() string { return "https://" + h.Addr + ":2379" }
func (h *Host) PeerURL() string   { return "https://" + h.Addr + ":2380" }

// Lab is a running lab. All paths are on the machine running the lab (the Ansible controller).
type Lab struct {
	Spec       Spec    `json:"spec"`
	Dir        string  `json:"dir"`
	Base       string  `json:"base"` // the base tree under the hosts' overlays
	Net        int     `json:"net"`  // hosts are 127.0.Net.1, 127.0.Net.2, …
	Owner      int     `json:"owner"`
	Token      string  `json:"token"`
	Hosts      []*Host `json:"hosts"`
	Inventory  string  `json:"inventory"`
	SSHKey     string  `json:"ssh_key"`
	CACert     string  `json:"ca_cert"`
	ClientCert string  `json:"client_cert"`
	ClientKey  string  `json:"client_key"`
	logf       func(string, ...any)
}

// builtEtcd maps the versions built from the Go module proxy to the make target that builds them.
var builtEtcd = map[string]string{"3.2": "etcd-old", "3.3": "etcd-old", "3.6": "etcd36"}

var groupName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (s *Spec) defaults() error {
	if s.Name == "" {
		s.Name = "lab"
	}
	if s.Hosts == 0 {
		s.Hosts = 3
	}
	if s.Etcd == "" {
		s.Etcd = "3.4"
	}
	if s.Cache == "" {
		s.Cache = DefaultCache
	}
	if s.Flavour == "" {
		s.Flavour = FlavourEnvFile
	}
	if s.Flavour != FlavourEnvFile && s.Flavour != FlavourDropIn && s.Flavour != FlavourUnit {
		return fmt.Errorf("flavour: %q is not a configuration flavour; use %s, %s or %s", s.Flavour, FlavourEnvFile, FlavourDropIn, FlavourUnit)
	}
	if s.Root == "" {
		s.Root = DefaultRoot
	}
	if !groupName.MatchString(strings.ReplaceAll(s.Name, "-", "_")) {
		return fmt.Errorf("lab name %q: use lower-case letters, digits, '-' and '_'", s.Name)
	}
	if s.Hosts < 1 || s.Hosts > 9 {
		return fmt.Errorf("hosts: %d is out of range; a lab has 1 to 9 etcd hosts", s.Hosts)
	}
	if _, ok := builtEtcd[s.Etcd]; !ok && s.Etcd != "3.4" {
		return fmt.Errorf("etcd: %q is not offered; use 3.4 (Debian's), 3.6 (make etcd36), 3.2 or 3.3 (make etcd-old)", s.Etcd)
	}
	extra := 0
	for g, n := range s.Groups {
		if !groupName.MatchString(g) || g == "etcd" || g == "masters" || g == "all" {
			return fmt.Errorf("groups: %q is not a usable extra group name (lower-case identifier, not etcd/masters/all)", g)
		}
		if n < 1 {
			return fmt.Errorf("groups: %s needs at least one host", g)
		}
		extra += n
	}
	if s.Hosts+extra > 32 {
		return fmt.Errorf("groups: %d hosts in all is more than this machine should run; use at most 32", s.Hosts+extra)
	}
	return nil
}

// Create brings up a lab: base tree (cached), hosts booted, etcd healthy, inventory written. A lab of
// the same name, or any lab whose owner process is gone, is torn down first.
func Create(spec Spec, logf func(string, ...any)) (*Lab, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := spec.defaults(); err != nil {
		return nil, err
	}
	base, err := EnsureBase(spec.Cache, logf)
	if err != nil {
		return nil, err
	}
	if err := raiseInotifyInstances(); err != nil {
		return nil, err
	}
	l, err := reserve(spec, logf)
	if err != nil {
		return nil, err
	}
	if err := l.build(base); err != nil {
		if derr := l.Destroy(); derr != nil {
			logf("cleaning up the failed lab: %v", derr)
		}
		return nil, err
	}
	if spec.Persistent {
		l.Owner = 0
		if err := l.save(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// inotifyInstances is enough for a dozen hosts at once: each host's systemd takes a few dozen
// inotify instances, and the kernel's default of 128 per user (root, for every lab and for the machine's
// own services) ran out with three labs up ("Failed to allocate manager object: Too many open files").
const inotifyInstances = 4096

// raiseInotifyInstances raises fs.inotify.max_user_instances to inotifyInstances, never lowers it.
func raiseInotifyInstances() error {
	const knob = "/proc/sys/fs/inotify/max_user_instances"
	b, err := os.ReadFile(knob)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= inotifyInstances {
		return nil
	}
	if err := os.WriteFile(knob, []byte(strconv.Itoa(inotifyInstances)), 0o644); err != nil {
		return fmt.Errorf("raising %s to %d (each lab host's systemd needs inotify instances): %w", knob, inotifyInstances, err)
	}
	return nil
}

// reserve cleans leftovers and claims a name and a 127.0.N.0/24. Addresses are machine-wide, so the
// lock and the scan of claimed networks cover the default root as well as spec.Root (tests use their
// own roots), and a network is taken only if nothing listens on its first address either.
func reserve(spec Spec, logf func(string, ...any)) (*Lab, error) {
	unlock, err := LockRoot(DefaultRoot)
	if err != nil {
		return nil, err
	}
	defer unlock()
	used := map[int]bool{}
	var states []string
	for _, root := range uniq(DefaultRoot, spec.Root) {
		found, _ := filepath.Glob(filepath.Join(root, "*", "state.json"))
		states = append(states, found...)
	}
	for _, st := range states {
		old, err := Load(filepath.Dir(st))
		if err != nil {
			return nil, fmt.Errorf("%s: %v (remove that directory after checking no lab runs from it)", st, err)
		}
		old.logf = logf
		sameName := old.Spec.Name == spec.Name && filepath.Dir(old.Dir) == spec.Root
		if sameName || (old.Owner != 0 && !Alive(old.Owner)) {
			logf("tearing down leftover lab %q (%s)", old.Spec.Name, old.Dir)
			if err := old.Destroy(); err != nil {
				return nil, err
			}
			continue
		}
		used[old.Net] = true
	}
	l := &Lab{Spec: spec, Dir: filepath.Join(spec.Root, spec.Name), Owner: os.Getpid(), logf: logf,
		Token: fmt.Sprintf("etcd-cluster-%d", time.Now().Unix())}
	for n := 10; n < 250 && l.Net == 0; n++ {
		if !used[n] && netFree(n) {
			l.Net = n
		}
	}
	if l.Net == 0 {
		return nil, fmt.Errorf("no free 127.0.N.0/24 for a new lab under %s: run `make lab-down` for old labs", spec.Root)
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, err
	}
	l.plan()
	return l, l.save() // saved before anything starts: an abort from here on leaves a findable leftover
}

// plan names the hosts and gives them addresses: etcd1..etcdN, then each extra group's hosts
// (new_etcd → new-etcd1, …), in group-name order.
func (l *Lab) plan() {
	add := func(name string, groups []string, member bool) {
		m := len(l.Hosts) + 1
		l.Hosts = append(l.Hosts, &Host{Name: name, Addr: fmt.Sprintf("127.0.%d.%d", l.Net, m), Groups: groups,
			Member: member, Dir: filepath.Join(l.Dir, "hosts", name), EtcdUID: 20000 + l.Net*64 + m})
	}
	for i := 1; i <= l.Spec.Hosts; i++ {
		groups := []string{"etcd"}
		if l.Spec.Masters {
			groups = append(groups, "masters")
		}
		add(fmt.Sprintf("etcd%d", i), groups, true)
	}
	for _, g := range sortedKeys(l.Spec.Groups) {
		for i := 1; i <= l.Spec.Groups[g]; i++ {
			add(fmt.Sprintf("%s%d", strings.ReplaceAll(g, "_", "-"), i), []string{g}, false)
		}
	}
}

// Host returns the host of that name, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Members are the hosts of the initial etcd cluster.
func (l *Lab) Members() []*Host {
	var hs []*Host
	for _, h := range l.Hosts {
		if h.Member {
			hs = append(hs, h)
		}
	}
	return hs
}

// Endpoints are the client URLs of the initial members (or of the given hosts).
func (l *Lab) Endpoints(hosts ...*Host) []string {
	if len(hosts) == 0 {
		hosts = l.Members()
	}
	var eps []string
	for _, h := range hosts {
		eps = append(eps, h.ClientURL())
	}
	return eps
}

func (l *Lab) save() error {
	b, _ := json.MarshalIndent(l, "", "  ")
	tmp := filepath.Join(l.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "state.json"))
}

// Load reads the lab recorded in dir (Root/<name>).
func Load(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	l := &Lab{logf: func(string, ...any) {}}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("state.json: %v", err)
	}
	return l, nil
}

// SetLog directs progress messages (nil: silent).
func (l *Lab) SetLog(logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l.logf = logf
}

// LockRoot takes the machine-wide lock of labs under root (labs.lock); the returned func releases it.
func LockRoot(root string) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(root, "labs.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Alive reports whether a process with that PID exists.
func Alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// netFree reports whether nothing listens on 127.0.n.1's SSH and etcd ports.
func netFree(n int) bool {
	for _, port := range []int{22, 2379, 2380} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.1:%d", n, port))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

func uniq(list ...string) []string {
	var out []string
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
