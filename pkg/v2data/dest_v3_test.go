package v2data

import (
	"context"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A leased key etcd_v2_migrate wrote passes for expired in the source once its lease's TTL, from the
// time it was granted for, has run out but for the rounding; a key whose TTL has not is still missing.
func TestLeaseRanOut(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/k/leased", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/k/steady", "v"); err != nil {
		t.Fatal(err)
	}
	d := newV3Dest(cli, 10*time.Second, 1, 128, 1000, 10*time.Second)
	defer close(d.batches)
	if err := d.Tally(ctx, Scope{Prefixes: []string{"/k"}}, nil, func(string) bool { return false }, &Tally{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		key       string
		grantedAt time.Time
		want      bool
	}{
		{"/k/leased", now.Add(-25 * time.Second), true}, // 30 s from 25 s ago, within the 10 s rounding
		{"/k/leased", now.Add(-15 * time.Second), false},
		{"/k/steady", now.Add(-time.Hour), false},
	} {
		if got := d.leaseRanOut(ctx, c.key, c.grantedAt, 10*time.Second); got != c.want {
			t.Errorf("%s granted %s ago: ran out %v, want %v", c.key, now.Sub(c.grantedAt).Round(time.Second), got, c.want)
		}
	}
}
