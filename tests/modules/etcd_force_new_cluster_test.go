package modules

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
)

// The module needs systemd (the lab's e2e tests run it for real); here, through real Ansible, bad
// input is refused before anything happens, naming the parameter.
func TestForceNewClusterModuleRefusesSeveralEndpoints(t *testing.T) {
	c := etcdtest.NewCluster(t, 2)
	res := ansibletest.Module(t, "etcd_force_new_cluster", c.Args(), ansibletest.Opts{})
	if !res.Failed() || res.Changed() || !strings.Contains(res.Msg(), "parameter endpoints") {
		t.Fatalf("two endpoints: %v", res)
	}
}

// Issue 19: a service that is not a unit name never becomes a drop-in path.
func TestForceNewClusterModuleRefusesBadUnitName(t *testing.T) {
	for _, service := range []string{"../../../tmp/x", "etcd service", "a..b"} {
		res := ansibletest.Module(t, "etcd_force_new_cluster", map[string]any{"endpoints": "https://127.0.0.1:2379",
			"service": service, "runtime_unit_dir": t.TempDir()}, ansibletest.Opts{})
		if !res.Failed() || res.Changed() || !strings.Contains(res.Msg(), "parameter service") ||
			!strings.Contains(res.Msg(), "not a valid systemd unit name") {
			t.Errorf("service %q: %v", service, res)
		}
	}
}

// Issue 19: on a member of a healthy cluster the module refuses, in check mode as for real, and
// nothing changes (membership, drop-in dir); cluster_endpoints must be client URLs.
func TestForceNewClusterModuleRefusesHealthyCluster(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	runDir := t.TempDir()
	args := withArgs(c.Args(c.Members[0]), map[string]any{"runtime_unit_dir": runDir})
	for _, check := range []bool{true, false} {
		res := ansibletest.Module(t, "etcd_force_new_cluster", args, ansibletest.Opts{Check: check})
		if !res.Failed() || res.Changed() || !strings.Contains(res.Msg(), "refusing force-new-cluster") ||
			!strings.Contains(res.Msg(), "has quorum") || !strings.Contains(res.Msg(), "force: true") {
			t.Errorf("check=%v: %v", check, res)
		}
	}
	ml, err := c.Client(t).MemberList(context.Background())
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("members after the refusals: %v %v", ml, err)
	}
	if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
		t.Fatalf("runtime unit dir not empty: %v", entries)
	}
	res := ansibletest.Module(t, "etcd_force_new_cluster", withArgs(args, map[string]any{"cluster_endpoints": "10.0.0.2"}), ansibletest.Opts{})
	if !res.Failed() || !strings.Contains(res.Msg(), "parameter cluster_endpoints") {
		t.Errorf("cluster_endpoints without a scheme: %v", res)
	}
}
