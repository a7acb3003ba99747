package v2data

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/etcdops/etcd/pkg/v2disk"
)

// Counts describe one side of a copy. The digest is order-independent (a sum of per-node hashes
// of kind, name and value), so concurrent walkers of differently shaped stores agree on it.
type Counts struct {
	Keys       int64  `json:"keys"`
	Dirs       int64  `json:"dirs"`
	TTLKeys    int64  `json:"ttl_keys"`         // leaves with their own TTL (v3: keys with a lease)
	TTLDirs    int64  `json:"ttl_dirs"`         // directories with their own TTL
	Expiring   int64  `json:"expiring_keys"`    // leaves that expire by their own or a parent's TTL
	HiddenKeys int64  `json:"hidden_keys"`      // leaves with a path segment starting with "_"
	Bytes      int64  `json:"bytes"`            // sum of leaf value sizes
	Digest     string `json:"digest,omitempty"` // when something is compared (see Tally.NoDigest)
}

type hash [2]uint64

func (h *hash) add(o hash) { h[0] += o[0]; h[1] += o[1] }

// nodeHash hashes kind, name and value: two xxHash64 with different seeds, 128 bits. SHA-256 was a
// fifth of a copy's own CPU; the digest compares a copy with its source (accidents, not an attacker),
// for which a fast non-cryptographic hash is enough.
func nodeHash(n Node) hash {
	kind := "k\x00"
	if n.Dir {
		kind = "d\x00"
	}
	var h hash
	for i, seed := range [2]uint64{0, 0x9e3779b97f4a7c15} {
		var d xxhash.Digest
		d.ResetWithSeed(seed)
		d.WriteString(kind)
		d.WriteString(n.Key)
		d.WriteString("\x00")
		d.WriteString(n.Value)
		h[i] = d.Sum64()
	}
	return h
}

type expEntry struct {
	h      hash
	expiry time.Time
}

// Tally accumulates Counts from concurrent walkers. Expiring nodes are kept by name, because they
// may legitimately vanish from one side between the two walks; everything else is only summed.
type Tally struct {
	// Dirs: directories are part of the content (a v2 destination) or not (v3 has none).
	Dirs bool
	// NoDigest: only counts are wanted (nothing will be compared), so nodes are not hashed; in a
	// copy that is not verified, hashing was a twentieth of its CPU.
	NoDigest bool

	// Named collects the keys of nodes whose key hash it holds (a second walk that names the
	// differences a comparison found); nil: none.
	Named map[uint64]bool

	mu       sync.Mutex
	c        Counts
	steady   hash
	nSteady  int64
	entries  []keyEntry // each steady node's key and node hash, to find which differ
	names    []string
	expiring map[string]expEntry
}

// keyEntry is one steady node: the hash of its key and (the first half of) the hash of the node.
type keyEntry struct{ key, node uint64 }

func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

// Add counts one node.
func (t *Tally) Add(n Node) {
	var h hash
	if (!n.Dir || t.Dirs) && !t.NoDigest {
		h = nodeHash(n) // outside the lock: concurrent walkers hash in parallel
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.expiring == nil {
		t.expiring = map[string]expEntry{}
	}
	if n.Dir {
		t.c.Dirs++
		if !n.Expiration.IsZero() {
			t.c.TTLDirs++
		}
		if !t.Dirs {
			return
		}
	} else {
		t.c.Keys++
		t.c.Bytes += int64(len(n.Value))
		if !n.Expiration.IsZero() {
			t.c.TTLKeys++
		}
		if !n.Expiry.IsZero() {
			t.c.Expiring++
		}
		if n.Hidden {
			t.c.HiddenKeys++
		}
	}
	if n.Expiry.IsZero() {
		t.steady.add(h)
		t.nSteady++
		if !t.NoDigest {
			t.entries = append(t.entries, keyEntry{key: keyHash(n.Key), node: h[0]})
		}
		if t.Named != nil && t.Named[keyHash(n.Key)] {
			t.names = append(t.names, n.Key)
		}
		return
	}
	t.expiring[n.Key] = expEntry{h: h, expiry: n.Expiry}
}

// Counts returns the counts with the digest of everything added.
func (t *Tally) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	sum := t.steady
	for _, e := range t.expiring {
		sum.add(e.h)
	}
	c := t.c
	if !t.NoDigest {
		c.Digest = fmt.Sprintf("%016x%016x", sum[0], sum[1])
	}
	return c
}

// Compare checks that dst holds exactly what src holds. Expiring nodes may differ only by having
// expired: gone from src (expired in the source, per expiredInSource) or gone from dst after their
// source deadline passed. It returns human-readable differences (nil: identical).
func Compare(src, dst *Tally, now time.Time, expiredInSource func(key string) bool) []string {
	var diffs []string
	if src.nSteady != dst.nSteady || src.steady != dst.steady {
		diffs = append(diffs, fmt.Sprintf("%d non-expiring nodes in the source, %d in the destination, content digests %s",
			src.nSteady, dst.nSteady, map[bool]string{true: "equal", false: "differ"}[src.steady == dst.steady]))
	}
	var keys []string
	for k, s := range src.expiring {
		d, ok := dst.expiring[k]
		switch {
		case ok && d.h == s.h:
		case !ok && !s.expiry.After(now):
		case !ok:
			keys = append(keys, k+" (missing)")
		default:
			keys = append(keys, k+" (differs)")
		}
	}
	for k := range dst.expiring {
		if _, ok := src.expiring[k]; !ok && !expiredInSource(k) {
			keys = append(keys, k+" (not in the source)")
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		diffs = append(diffs, fmt.Sprintf("%d expiring nodes differ: %s", len(keys), strings.Join(first(keys, 10), ", ")))
	}
	return diffs
}

// Unmatched returns the key hashes of the steady nodes dst holds that src does not hold as they are
// (absent from src, or with another value), and how many of src's steady nodes dst lacks.
func Unmatched(src, dst *Tally) (extra map[uint64]bool, missing int) {
	in := func(t *Tally) map[uint64]uint64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		m := make(map[uint64]uint64, len(t.entries))
		for _, e := range t.entries {
			m[e.key] = e.node
		}
		return m
	}
	s, d := in(src), in(dst)
	extra = map[uint64]bool{}
	for k, h := range d {
		if sh, ok := s[k]; !ok || sh != h {
			extra[k] = true
		}
	}
	for k := range s {
		if _, ok := d[k]; !ok {
			missing++
		}
	}
	return extra, missing
}

// Names returns the keys a walk collected for Named, sorted.
func (t *Tally) Names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.names...)
	sort.Strings(out)
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… %d more", len(s)-n))
	}
	return s
}

// hiddenExpired counts hidden nodes whose deadline has passed: their expiry moved the v2 index
// without an event a watch on "/" can see.
func (t *Tally) hiddenExpired(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.expiring {
		if v2disk.IsHidden(k) && !e.expiry.After(now) {
			n++
		}
	}
	return n
}
