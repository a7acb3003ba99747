// Package k8s runs the project's second lab kind: a real single-node Kubernetes built from the Go
// module proxy (mk/k8s.mk), with containerd, runc and the CNI plugins from Debian, every process in a
// private network namespace with no route out, and in it a HyperShift-shaped hosted control plane
// whose etcd is a StatefulSet (seed 002; docs/hosted.md).
//
// Kubernetes uses host-wide paths (cgroup trees, /tmp/hostpath_pv, containerd's shim sockets), so one
// lab runs per machine: Create takes a lock, and tears down a lab whose owner process is gone (or any
// lab under the same root) before it starts. The lab's state.json records every process it started.
package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/lab"
)

// Defaults of a Spec.
const (
	DefaultRoot    = "/var/lib/etcdops-k8s"
	DefaultCache   = "/var/cache/etcdops-k8s"
	DefaultVersion = "v1.31.4"
)

// Addresses. The namespace reaches nothing but the host end of its veth pair; the host routes the
// pod and service ranges to the node, so the controller (Ansible, go test) reaches the API server,
// Service IPs and pod IPs directly.
const (
	NetNS       = "etcdops-k8s"
	HostVeth    = "ek8s-host"
	NodeVeth    = "ek8s-node"
	HostAddr    = "10.236.0.1"
	NodeAddr    = "10.236.0.2"
	linkPrefix  = "/30"
	PodCIDR     = "10.234.0.0/24"
	ServiceCIDR = "10.235.0.0/24"
	apiService  = "10.235.0.1"
	DNSService  = "10.235.0.10"
	NodeName    = "k8s-lab"
	APIServer   = "https://" + NodeAddr + ":6443"
	hostpathPV  = "/tmp/hostpath_pv" // kube-controller-manager's host-path provisioner, fixed there
)

// Spec describes a lab.
type Spec struct {
	Name    string // directory under Root (default "k8s")
	Version string // Kubernetes version built by `make k8s-binaries` (default DefaultVersion)
	Cache   string // binaries and images: Cache/<Version>/{bin,images} (default DefaultCache)
	Root    string // lab directories (default DefaultRoot)
	// Persistent labs (labctl's) outlive the process that made them; others are leftovers once
	// their owner process is gone.
	Persistent bool
}

// Lab is a running cluster.
type Lab struct {
	Spec       Spec           `json:"spec"`
	Dir        string         `json:"dir"`
	Owner      int            `json:"owner"`
	PIDs       map[string]int `json:"pids"` // process name → PID, in start order in Order
	Order      []string       `json:"order"`
	Kubeconfig string         `json:"kubeconfig"` // admin kubeconfig (API server at APIServer)
	logf       func(string, ...any)
}

// BinDir and ImageDir are where `make k8s-binaries` leaves its results for a version.
func (s Spec) BinDir() string   { return filepath.Join(s.Cache, s.Version, "bin") }
func (s Spec) ImageDir() string { return filepath.Join(s.Cache, s.Version, "images") }

// Binaries are the programs a lab runs from BinDir.
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "coredns"}

func (s *Spec) defaults() {
	for _, f := range []struct {
		field *string
		value string
	}{
		{&s.Name, "k8s"}, {&s.Version, DefaultVersion}, {&s.Cache, DefaultCache}, {&s.Root, DefaultRoot},
	} {
		if *f.field == "" {
			*f.field = f.value
		}
	}
}

// Missing names what `make k8s-binaries` has not built yet for the spec (nil: all there).
func (s Spec) Missing() []string {
	s.defaults()
	var out []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(s.BinDir(), b)); err != nil {
			out = append(out, filepath.Join(s.BinDir(), b))
		}
	}
	for _, i := range []string{"pause.tar", "etcd.tar"} {
		if _, err := os.Stat(filepath.Join(s.ImageDir(), i)); err != nil {
			out = append(out, filepath.Join(s.ImageDir(), i))
		}
	}
	return out
}

// Create brings up the cluster: node Ready, cluster DNS answering, the default StorageClass in place.
// Any lab left under the root (by an aborted run or an earlier labctl) is torn down first.
func Create(spec Spec, logf func(string, ...any)) (*Lab, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	spec.defaults()
	if m := spec.Missing(); len(m) > 0 {
		return nil, fmt.Errorf("k8s lab: %s not built; run `make k8s-binaries`", m[0])
	}
	unlock, err := lab.LockRoot(spec.Root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := sweep(spec.Root, logf); err != nil {
		return nil, err
	}
	l := &Lab{Spec: spec, Dir: filepath.Join(spec.Root, spec.Name), Owner: os.Getpid(), PIDs: map[string]int{}, logf: logf}
	if spec.Persistent {
		l.Owner = 0
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil { // before anything starts: an abort from here on leaves a findable leftover
		return nil, err
	}
	if err := l.boot(); err != nil {
		if derr := l.Destroy(); derr != nil {
			logf("cleaning up the failed lab: %v", derr)
		}
		return nil, err
	}
	return l, nil
}

// sweep tears down every lab under root: there is room for one per machine.
func sweep(root string, logf func(string, ...any)) error {
	states, _ := filepath.Glob(filepath.Join(root, "*", "state.json"))
	for _, st := range states {
		old, err := Load(filepath.Dir(st))
		if err != nil {
			return fmt.Errorf("%s: %v (remove that directory after checking no lab runs from it)", st, err)
		}
		if old.Owner != 0 && old.Owner != os.Getpid() && lab.Alive(old.Owner) {
			return fmt.Errorf("k8s lab %s belongs to running process %d; one k8s lab runs per machine", old.Dir, old.Owner)
		}
		old.logf = logf
		logf("tearing down leftover k8s lab %s", old.Dir)
		if err := old.Destroy(); err != nil {
			return err
		}
	}
	return nil
}

// Load reads a lab's state.
func Load(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	l := &Lab{logf: func(string, ...any) {}}
	return l, json.Unmarshal(b, l)
}

// SetLog directs progress messages (nil: silent).
func (l *Lab) SetLog(logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l.logf = logf
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.Dir, "state.json"), b, 0o644)
}

func (l *Lab) path(p ...string) string { return filepath.Join(append([]string{l.Dir}, p...)...) }
func (l *Lab) bin(name string) string  { return filepath.Join(l.Spec.BinDir(), name) }

// WaitUntil polls ok until it returns nil or d passes; the last error names what never happened.
func WaitUntil(d time.Duration, what string, ok func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %w", what, d, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

var errNotYet = errors.New("not yet")
