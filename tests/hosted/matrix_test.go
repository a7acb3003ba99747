package hosted

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/playbook"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The hosted playbooks' fault matrix (issue 19, as tests/e2e's for the hosts' playbooks): the playbook
// killed with SIGKILL at the start of each of its task boundaries, on a fresh lab in the state it starts
// from, then run again with the same command, which must finish the job, checked by data as the
// playbooks' tests check it. One k8s lab per machine: the boundaries run one after the other, a few
// minutes each; make soak runs them, a slice with SOAK_RUN='TestSoakHostedMatrixRestore/(uninterrupted|^00)'.
// A kill names its task, so no task name may hold a value that differs between runs (a timestamp).
type hostedMatrix struct {
	playbook string
	extra    map[string]any
	// broken brings the fresh lab's hosted etcd into the state the playbook starts from.
	broken func(h *hosted)
	// done checks the finished job against the lab as it was before broken (as hostedLab returned it).
	done func(ctx context.Context, h *hosted, f fresh)
}

// fresh is a lab just up: its client, its members, its first key's response (naming the cluster).
type fresh struct {
	cli    *clientv3.Client
	before map[string]uint64
	first  *clientv3.GetResponse
}

var recoverMemberMatrix = hostedMatrix{
	playbook: "hosted_etcd_recover_member.yml",
	extra:    map[string]any{"hosted_etcd_member": "etcd-2"},
	broken:   func(h *hosted) { h.corrupt("etcd-2") },
	done: func(ctx context.Context, h *hosted, f fresh) {
		after := members(h.t, ctx, f.cli)
		if after["etcd-2"] == 0 || after["etcd-2"] == f.before["etcd-2"] || after["etcd-0"] != f.before["etcd-0"] || after["etcd-1"] != f.before["etcd-1"] {
			h.t.Errorf("members %x → %x: want etcd-2 re-added with a new ID, the others unchanged", f.before, after)
		}
		assertHealthy(h.t, h.l, "etcd-0")
		h.assertKeys("etcd-2")
	},
}

var restoreMatrix = hostedMatrix{
	playbook: "hosted_etcd_restore.yml",
	broken:   (*hosted).loseQuorum,
	done:     func(ctx context.Context, h *hosted, f fresh) { h.assertRestored(ctx, f.cli, f.first) },
}

func TestSoakHostedMatrixRecoverMember(t *testing.T) {
	ansibletest.Soak(t)
	recoverMemberMatrix.all(t)
}

func TestSoakHostedMatrixRestore(t *testing.T) {
	ansibletest.Soak(t)
	restoreMatrix.all(t)
}

// all runs the playbook uninterrupted (which finds the boundaries), then killed at each boundary.
func (m hostedMatrix) all(t *testing.T) {
	var all []playbook.Kill
	if t.Run("uninterrupted", func(t *testing.T) { all = m.run(t, playbook.Kill{}) }); all == nil && !t.Failed() {
		t.Fatal("-run filtered out the uninterrupted run, which finds the boundaries: add it to the pattern")
	}
	t.Logf("%s: %d task boundaries", m.playbook, len(all))
	for i, k := range all { // the listing to pick a slice from
		t.Logf("%03d %s #%d", i, k.Task, k.Nth)
	}
	for i, k := range all {
		t.Run(fmt.Sprintf("%03d %s #%d", i, strings.ReplaceAll(k.Task, "/", "-"), k.Nth), func(t *testing.T) { m.run(t, k) })
	}
}

// run brings up a fresh lab, breaks it, runs the playbook killed at k (uninterrupted when k is zero),
// runs it again when it was killed, and checks the job done; it returns the boundaries of the run that
// finished.
func (m hostedMatrix) run(t *testing.T, k playbook.Kill) []playbook.Kill {
	start := time.Now()
	_, h, cli, before, first, step := hostedLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	m.broken(h)
	step("broken")
	res := h.run(ctx, m.playbook, m.extra, k)
	if k.Task != "" {
		if !res.Killed {
			t.Fatalf("not killed at %s #%d: %v\n%s", k.Task, k.Nth, res.Err, res.Failures())
		}
		step("killed at %s #%d", k.Task, k.Nth)
		res = h.run(ctx, m.playbook, m.extra, playbook.Kill{})
	}
	h.ok(res)
	m.done(ctx, h, fresh{cli: cli, before: before, first: first})
	step("the job done in %s (this run %s)", time.Since(start).Round(time.Second), res.Duration.Round(time.Second))
	return res.Boundaries()
}
