package v2data

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leasePool hands out leases for v2 TTLs: keys whose deadlines fall in the same window of
// `granularity` share a lease that ends with the window (so a key never expires earlier than in
// v2, and at most granularity later), with at most maxKeys keys per lease so that one lease's
// expiry never deletes a huge set of keys in one transaction.
type leasePool struct {
	cli         *clientv3.Client
	timeout     time.Duration
	granularity time.Duration
	maxKeys     int
	granted     *atomic.Int64

	mu   sync.Mutex
	open map[int64]*poolLease // by window
}

type poolLease struct {
	id clientv3.LeaseID
	n  int
}

func (p *leasePool) get(ctx context.Context, deadline time.Time) (clientv3.LeaseID, error) {
	window := LeaseWindow(deadline, p.granularity)
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.open[window]
	if l == nil || l.n >= p.maxKeys {
		ttl := LeaseTTL(window, p.granularity, time.Now())
		resp, err := p.cli.Grant(ctx, ttl)
		if err != nil {
			return 0, fmt.Errorf("destination: granting a %d s lease: %w", ttl, err)
		}
		p.granted.Add(1)
		l = &poolLease{id: resp.ID}
		p.open[window] = l
	}
	l.n++
	return l.id, nil
}
