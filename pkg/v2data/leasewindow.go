package v2data

import (
	"math"
	"time"
)

// LeaseWindow is the window of width granularity a v2 deadline falls in; keys whose deadlines share a
// window share a lease that ends with it (never earlier than in v2, at most granularity later).
func LeaseWindow(deadline time.Time, granularity time.Duration) int64 {
	g := granularity.Nanoseconds()
	return (deadline.UnixNano() + g - 1) / g
}

// LeaseTTL is the TTL in seconds, at least 1, of a lease granted at now to end with window.
func LeaseTTL(window int64, granularity time.Duration, now time.Time) int64 {
	left := time.Unix(0, window*granularity.Nanoseconds()).Sub(now)
	return max(int64(math.Ceil(left.Seconds())), 1)
}
