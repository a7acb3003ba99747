package modules

import (
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/convergence"
)

type convergenceResult struct {
	convergence.Result
	ansibletest.Flags
}

func runConvergenceWait(t *testing.T, args map[string]any, o ansibletest.Opts) convergenceResult {
	return ansibletest.ModuleAs[convergenceResult](t, "etcd_convergence_wait", args, o)
}

// Through real Ansible against a 3-member TLS cluster: converges when healthy (also in check
// mode), fails after the timeout with the per-member table when a member is stopped.
func TestConvergenceWaitModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	args := withArgs(c.Args(), map[string]any{"interval": "200ms", "timeout": 30, "require_healthy": "yes"})

	assertConverged := func(t *testing.T, res convergenceResult) {
		t.Helper()
		if res.Failed || res.Changed || !res.Converged || res.Polls < 2 || res.Spread > 1 || res.Leader == "" || res.Reason != "" {
			t.Fatalf("result %+v (msg %s)", res.Result, res.Msg)
		}
		if len(res.Members) != 3 {
			t.Fatalf("members %+v", res.Members)
		}
		for _, m := range res.Members {
			if m.RaftIndex == 0 || m.Leader != res.Leader || !m.Healthy {
				t.Errorf("member %+v", m)
			}
		}
	}
	t.Run("check mode waits the same way", func(t *testing.T) {
		assertConverged(t, runConvergenceWait(t, args, ansibletest.Opts{Check: true}))
	})
	t.Run("healthy cluster converges", func(t *testing.T) {
		assertConverged(t, runConvergenceWait(t, withArgs(args, map[string]any{"stable_polls": "3"}), ansibletest.Opts{}))
	})
	t.Run("bad stable_polls", func(t *testing.T) {
		res := runConvergenceWait(t, withArgs(args, map[string]any{"stable_polls": 0}), ansibletest.Opts{})
		if !res.Failed || !strings.Contains(res.Msg, "parameter stable_polls: must be at least 1") {
			t.Fatalf("failed=%v msg=%s", res.Failed, res.Msg)
		}
	})
	t.Run("bad tolerance", func(t *testing.T) {
		res := runConvergenceWait(t, withArgs(args, map[string]any{"tolerance": -1}), ansibletest.Opts{})
		if !res.Failed || !strings.Contains(res.Msg, "parameter tolerance: expected a non-negative integer") {
			t.Fatalf("failed=%v msg=%s", res.Failed, res.Msg)
		}
	})
	t.Run("stopped member fails with the table", func(t *testing.T) {
		c.Stop(c.Members[2])
		res := runConvergenceWait(t, withArgs(args, map[string]any{"timeout": "3s", "dial_timeout": "1s"}), ansibletest.Opts{})
		t.Logf("msg:\n%s", res.Msg)
		if !res.Failed || res.Changed || res.Converged || res.Polls < 2 || len(res.Members) != 3 {
			t.Fatalf("result %+v", res.Result)
		}
		for _, want := range []string{"did not converge within 3s", "member m2", "reports no status",
			"MEMBER", "RAFT INDEX", "APPLIED INDEX", c.Members[2].ClientURL, "nothing listens there"} {
			if !strings.Contains(res.Msg, want) {
				t.Errorf("msg lacks %q", want)
			}
		}
		for _, m := range res.Members {
			if (m.Name == "m2") != (m.RaftIndex == 0) || (m.Name == "m2") != (m.Error != "") {
				t.Errorf("member %+v: only the stopped m2 should lack a raft index and carry an error", m)
			}
		}
	})
}
