package modules

import (
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
