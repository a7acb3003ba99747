package v2data

import (
	"strings"
	"testing"
	"time"
)

// Expiring nodes may be missing on one side only when they expired: gone from the source past their
// deadline, or left in the destination after the source expired them. Anything else is a difference.
func TestCompareToleratesOnlyExpiry(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	expired := func(k string) bool { return k == "/e/expired-in-source" }
	build := func(nodes ...Node) *Tally {
		t := &Tally{Dirs: true}
		for _, n := range nodes {
			t.Add(n)
		}
		return t
	}
	steady := Node{Key: "/a", Value: "v"}
	src := build(steady,
		Node{Key: "/e/passed", Value: "x", Expiration: past, Expiry: past},
		Node{Key: "/e/live", Value: "y", Expiration: future, Expiry: future})
	dst := build(steady,
		Node{Key: "/e/live", Value: "y", Expiration: future, Expiry: future},
		Node{Key: "/e/expired-in-source", Value: "z", Expiration: future, Expiry: future})
	if d := Compare(src, dst, now, expired); d != nil {
		t.Fatalf("expired nodes must be tolerated: %v", d)
	}

	dst = build(Node{Key: "/a", Value: "changed"},
		Node{Key: "/e/stray", Value: "s", Expiration: future, Expiry: future})
	d := strings.Join(Compare(src, dst, now, expired), "; ")
	for _, want := range []string{"content digests differ", "/e/live (missing)", "/e/stray (not in the source)"} {
		if !strings.Contains(d, want) {
			t.Errorf("differences %q lack %q", d, want)
		}
	}
	if src.Counts().Digest == dst.Counts().Digest {
		t.Error("different content, same digest")
	}
}
