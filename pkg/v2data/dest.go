package v2data

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// destination is where a copy writes: a v2 store (node for node) or a v3 keyspace (leaves as keys).
type destination interface {
	// Empty reports whether the scope holds no data yet.
	Empty(ctx context.Context, scope Scope) (bool, error)
	// Apply makes dir's children in the destination equal to kids. With compare, it reads what is
	// there and writes only what differs; with dry, it only counts.
	Apply(ctx context.Context, dir Node, kids []Node, compare, dry bool) error
	// Flush waits for buffered writes.
	Flush(ctx context.Context) error
	// Tally adds the destination's nodes in scope (minus skip) to t.
	Tally(ctx context.Context, scope Scope, hidden []string, skip func(string) bool, t *Tally) error
	Stats() *WriteStats
	Close()
}

// WriteStats count what a copy did (or, in check mode, would do) to the destination.
type WriteStats struct {
	Keys          atomic.Int64 // leaves written
	Dirs          atomic.Int64 // directories created or given their TTL
	Identical     atomic.Int64 // nodes already identical, skipped
	Expired       atomic.Int64 // nodes whose TTL ran out before they could be written
	LeasesGranted atomic.Int64
}

// remaining turns a deadline into a whole-second TTL, rounded up so the copy never expires before
// the original; 0 means already expired.
func remaining(deadline, now time.Time) time.Duration {
	d := deadline.Sub(now)
	if d <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}
