package convergence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/etcdtest"
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
			if m.RaftIndex == 0 || m.Leader != res.Leader || !m.Healthy || m.Error != "" {
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
		for _, m := range res.Members {
			if (m.Name == "m1") != (m.RaftIndex == 0) {
				t.Errorf("member %+v: only the stopped m1 should lack a raft index", m)
			}
		}
	})
}
