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
