package convergence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/clusterinfo"
	"github.com/etcdops/etcd/pkg/module"
)

// A healthy 3-member TLS cluster converges; with one member stopped the wait fails after its
// timeout with the last poll's table.
func TestWait(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := context.Background()
	o := c.ConnOptions()
	o.DialTimeout = time.Second
	spec := Spec{Tolerance: 1, StablePolls: 2, Interval: 100 * time.Millisecond, Timeout: 30 * time.Second, RequireHealthy: true}

	t.Run("healthy cluster converges", func(t *testing.T) {
		res, err := Wait(ctx, &o, spec)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Converged || res.Polls < 2 || res.Reason != "" || res.Spread > 1 || len(res.Members) != 3 || res.Leader == "" {
			t.Fatalf("result %+v", res)
		}
		leaders := 0
		for _, m := range res.Members {
			if m.RaftIndex == 0 || m.Leader != res.Leader || !m.Healthy || m.Error != "" || !strings.HasPrefix(m.Version, "3.") {
				t.Errorf("member %+v", m)
			}
			if m.IsLeader {
				leaders++
			}
		}
		if leaders != 1 {
			t.Errorf("%d members claim leadership", leaders)
		}
	})

	t.Run("same data on every member", func(t *testing.T) {
		if _, err := c.Client(t).Put(ctx, "/same", "data"); err != nil {
			t.Fatal(err)
		}
		s := spec
		s.RequireSameData = true
		res, err := Wait(ctx, &o, s)
		if err != nil || !res.Converged || res.HashRevision < 2 || res.DataNotCompared != "" || len(res.Members) != 3 {
			t.Fatalf("err %v result %+v", err, res)
		}
		for _, m := range res.Members {
			if m.KeyspaceHash == 0 || m.KeyspaceHash != res.Members[0].KeyspaceHash {
				t.Errorf("member %+v: want the first member's hash %d", m, res.Members[0].KeyspaceHash)
			}
		}
	})

	t.Run("added member not started", func(t *testing.T) {
		cli := c.Client(t)
		added := c.AddUnstarted(t, "https://127.0.0.1:1")
		defer func() {
			if _, err := cli.MemberRemove(ctx, added); err != nil {
				t.Fatal(err)
			}
		}()
		s := spec
		s.Timeout = time.Second
		res, err := Wait(ctx, &o, s)
		// How many polls fit in the second depends on the machine's load (CI saw a single 1.5-s poll):
		// what counts is that the member was not dialled (its error says why) and the wait did not converge.
		if err == nil || !strings.Contains(res.Reason, "has not started") || len(res.Members) != 4 || res.Polls < 1 {
			t.Fatalf("err %v result %+v", err, res)
		}
		for _, m := range res.Members {
			if m.Name == "" && !strings.Contains(m.Error, "no client URLs") {
				t.Errorf("the unstarted member: %+v, want it reported without a dial (no client URLs)", m)
			}
		}
	})

	t.Run("stopped member times out with a table", func(t *testing.T) {
		c.Stop(c.Members[1])
		s := spec
		s.Timeout = 3 * time.Second
		start := time.Now()
		res, err := Wait(ctx, &o, s)
		var merr *module.Error
		if !errors.As(err, &merr) || merr.Result != res {
			t.Fatalf("err = %v, want a module.Error carrying the result", err)
		}
		if took := time.Since(start); took < s.Timeout {
			t.Errorf("gave up after %s, before the %s timeout", took, s.Timeout)
		}
		msg := err.Error()
		for _, want := range []string{"did not converge within 3s", "member m1", "reports no status",
			"MEMBER", "RAFT INDEX", "m0", "m2", c.Members[1].ClientURL, "nothing listens there"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
		if res.Converged || res.Polls < 2 || len(res.Members) != 3 {
			t.Fatalf("result %+v", res)
		}
		if len(res.Table) != 4 || !strings.HasPrefix(res.Table[0], "MEMBER") || !strings.Contains(msg, strings.Join(res.Table, "\n")) {
			t.Errorf("table lines %q are not the message's table", res.Table)
		}
		for _, m := range res.Members {
			if (m.Name == "m1") != (m.RaftIndex == 0) {
				t.Errorf("member %+v: only the stopped m1 should lack a raft index", m)
			}
		}
	})

	// The migration restarts etcd: a member that comes back during the wait is redialled and the
	// wait ends converged.
	t.Run("member restarted during the wait", func(t *testing.T) {
		restarted := make(chan error, 1)
		go func() {
			time.Sleep(time.Second)
			restarted <- c.Start(c.Members[1])
		}()
		res, err := Wait(ctx, &o, spec)
		if err := <-restarted; err != nil {
			t.Fatal(err)
		}
		if err != nil || !res.Converged || len(res.Members) != 3 || res.Elapsed < 1 {
			t.Fatalf("err %v result %+v (want converged only after the restart at 1s)", err, res)
		}
		for _, m := range res.Members {
			if m.RaftIndex == 0 || m.Error != "" {
				t.Errorf("member %+v", m)
			}
		}
	})
}

// The decision itself, on answers as members give them: the spread against the tolerance, one
// agreed leader, every member answering.
func TestJudge(t *testing.T) {
	list := []clusterinfo.Member{{ID: "a", Name: "m0", Started: true}, {ID: "b", Name: "m1", Started: true},
		{ID: "c", Name: "m2", Started: true}}
	eps := []string{"https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"}
	status := func(index uint64, leader string) clusterinfo.EndpointStatus {
		return clusterinfo.EndpointStatus{Reachable: true, Healthy: true, RaftTerm: 2, RaftIndex: index, Leader: leader}
	}
	cases := []struct {
		name     string
		statuses []clusterinfo.EndpointStatus
		spec     Spec
		reason   string // substring; "" means converged
		spread   uint64
	}{
		{"runbook example 995/994/995", []clusterinfo.EndpointStatus{status(995, "b"), status(994, "b"), status(995, "b")},
			Spec{Tolerance: 1}, "", 1},
		{"spread above tolerance", []clusterinfo.EndpointStatus{status(995, "b"), status(993, "b"), status(995, "b")},
			Spec{Tolerance: 1}, "raft indexes differ by 2 (tolerance 1)", 2},
		{"tolerance 0", []clusterinfo.EndpointStatus{status(995, "b"), status(994, "b"), status(995, "b")},
			Spec{Tolerance: 0}, "differ by 1", 1},
		{"no leader", []clusterinfo.EndpointStatus{status(7, ""), status(7, "b"), status(7, "b")},
			Spec{Tolerance: 1}, "m0 (a) knows no leader", 0},
		{"two leaders", []clusterinfo.EndpointStatus{status(7, "a"), status(7, "b"), status(7, "b")},
			Spec{Tolerance: 1}, "different leaders", 0},
		{"member without status", []clusterinfo.EndpointStatus{status(7, "b"), {Error: "refused"}, status(7, "b")},
			Spec{Tolerance: 1}, "m1 (b) reports no status", 0},
		{"unhealthy with require_healthy", []clusterinfo.EndpointStatus{status(7, "b"), {Reachable: true, RaftIndex: 7, Leader: "b"}, status(7, "b")},
			Spec{Tolerance: 1, RequireHealthy: true}, "m1 (b) is not healthy", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			members, leader, spread, reason := judge(list, eps, tc.statuses, tc.spec)
			if tc.reason == "" && (reason != "" || leader != "b") || tc.reason != "" && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q leader %q, want reason containing %q", reason, leader, tc.reason)
			}
			if spread != tc.spread || len(members) != 3 {
				t.Errorf("spread %d members %d, want spread %d", spread, len(members), tc.spread)
			}
		})
	}
	unstarted := append(list[:2:2], clusterinfo.Member{ID: "d", Started: false})
	_, _, _, reason := judge(unstarted, []string{eps[0], eps[1], ""},
		[]clusterinfo.EndpointStatus{status(7, "b"), status(7, "b"), {}}, Spec{Tolerance: 1})
	if !strings.Contains(reason, "member d has not started") {
		t.Errorf("unstarted member: reason %q", reason)
	}
}

// Members whose keyspace hashes differ are named with their hashes.
func TestDifferentData(t *testing.T) {
	same := []MemberIndex{{Name: "a", ID: "1", KeyspaceHash: 7}, {Name: "b", ID: "2", KeyspaceHash: 7}}
	if got := differentData(same, 5); got != "" {
		t.Errorf("same hashes: %q", got)
	}
	differ := append(same, MemberIndex{Name: "c", ID: "3", KeyspaceHash: 9})
	want := "members hold different data at revision 5: a hashes to 7, c (3) hashes to 9"
	if got := differentData(differ, 5); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A learner is not asked (etcd refuses HashKV on one): its zero hash does not count.
	learner := append([]MemberIndex{{Name: "l", ID: "0", IsLearner: true}}, same...)
	if got := differentData(learner, 5); got != "" {
		t.Errorf("with a learner: %q", got)
	}
}
