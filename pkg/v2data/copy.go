package v2data

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/etcdops/etcd/pkg/v2disk"
)

// Spec describes one copy (or, with VerifyOnly, one comparison).
type Spec struct {
	Source, Dest etcdconn.Options
	// TargetAPI is "v2" (node for node into a v2 store) or "v3" (leaves become v3 keys).
	TargetAPI string
	Scope     Scope
	// SourceDataDir is a source member's data dir on this host, read for hidden key names ("" = none),
	// and, for a v3 destination, for the keyspace itself when it is provably current (see
	// snapshotRead) unless SourceRead is "api".
	SourceDataDir string
	SourceRead    string
	Concurrency   int
	// RequireEmptyDestination refuses to write when the destination holds data in scope.
	RequireEmptyDestination bool
	// Verify compares counts and digests after the copy; VerifyOnly does only that.
	Verify, VerifyOnly bool
	// InvalidUTF8: "fail" (default) or "skip" for values the v2 JSON API cannot return byte-exact.
	InvalidUTF8 string
	// v3 only: puts per transaction (≤ the server's --max-txn-ops), keys per lease, and the width
	// of the deadline windows that share a lease.
	MaxTxnOps        int
	MaxKeysPerLease  int
	LeaseGranularity time.Duration
	// LeasesGrantedAt, for a v3 destination written by etcd_v2_migrate, is its now: every lease there holds
	// what was left of its keys' v2 TTL then, rounded up to LeaseGranularity. A leased key the source no
	// longer holds passes the verification once that TTL, from then, has run out but for the rounding: the
	// source expired it (a key's lease outlives its v2 deadline by the time etcd took to start).
	LeasesGrantedAt time.Time
}

// Result is what the module returns.
type Result struct {
	TargetAPI          string   `json:"target_api"`
	Source             Counts   `json:"source"`
	Destination        *Counts  `json:"destination,omitempty"`
	Written            Written  `json:"written"`
	Verified           bool     `json:"verified"`
	Differences        []string `json:"differences,omitempty"`
	HiddenKeyDiscovery string   `json:"hidden_key_discovery"`
	// SourceRead says where the keyspace was read: "api", or "snapshot" (the data dir's v2 snapshot,
	// and the API for what was written after it); SourceReadNote why not from the snapshot.
	SourceRead       string   `json:"source_read"`
	SourceReadNote   string   `json:"source_read_note,omitempty"`
	InvalidUTF8Count int      `json:"invalid_utf8_count"`
	InvalidUTF8Keys  []string `json:"invalid_utf8_keys,omitempty"`
	ElapsedSeconds   float64  `json:"elapsed_seconds"`
	KeysPerSecond    float64  `json:"keys_per_second"`
}

// Written counts what the copy did to the destination (in check mode: would do).
type Written struct {
	Keys          int64 `json:"keys"`
	Dirs          int64 `json:"dirs"`
	Identical     int64 `json:"identical"`
	Expired       int64 `json:"expired"`
	LeasesGranted int64 `json:"leases_granted"`
}

// Copy copies (or compares) the v2 keyspace in scope from Source to Dest.
func Copy(ctx context.Context, t *module.Task, s Spec) (*Result, error) {
	began := time.Now()
	scope := s.Scope.Normalize()
	res := &Result{TargetAPI: s.TargetAPI, HiddenKeyDiscovery: "none"}

	srcCli, err := s.Source.V2()
	if err != nil {
		return nil, err
	}
	kapi := clientv2.NewKeysAPI(srcCli)
	// Hidden names are read beside the walk; a data dir that is plainly wrong fails here, before
	// anything is written.
	var discover func() ([]string, error)
	var scan *v2disk.SnapScan
	if s.SourceDataDir != "" {
		if err := v2disk.CheckDataDir("source_data_dir", "the source cluster", s.SourceDataDir); err != nil {
			return nil, err
		}
		discover = func() ([]string, error) { return v2disk.HiddenPaths("source_data_dir", s.SourceDataDir) }
		scan = s.scanSnapshot()
		defer scan.Discard()
	} else {
		t.Warn("source_data_dir is not set: keys with a path segment starting with '_' (hidden keys) are never " +
			"listed by the v2 API, so they are neither copied nor verified; set source_data_dir to the data dir " +
			"of a source member on this host (e.g. /var/lib/etcd)")
	}

	rctx, cancel := s.Source.Ctx(ctx)
	start, err := currentIndex(rctx, kapi)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("source: %w", s.Source.Explain(strings.Join(s.Source.Endpoints, ","), err))
	}
	changes := watchChanges(ctx, kapi, scope, start)
	defer changes.stop()

	reader, err := newV2Reader(s.Source)
	if err != nil {
		return nil, err
	}
	dest, err := s.open()
	if err != nil {
		return nil, err
	}
	defer dest.Close()
	// Only a write is refused: comparing a cluster's members, or a cluster with the copy it was rebuilt
	// from (same cluster ID), is what verify_only is for.
	if d, ok := dest.(*v2Dest); ok && !s.VerifyOnly {
		if err := refuseSameCluster(ctx, reader, d.reader); err != nil {
			return nil, err
		}
	}

	empty, err := dest.Empty(ctx, scope)
	if err == nil && s.RequireEmptyDestination && !empty && !s.VerifyOnly {
		err = fmt.Errorf("require_empty_destination: the destination already holds data under %s; "+
			"point destination at an empty etcd, or set require_empty_destination: false to resume a copy",
			strings.Join(scope.Prefixes, ", "))
	}
	if err != nil {
		return nil, err
	}

	src := &Tally{Dirs: s.TargetAPI == "v2", NoDigest: !s.Verify && !s.VerifyOnly}
	invalid := &keySet{}
	snapRead, err := s.planRead(ctx, res, scan)
	if err != nil {
		return nil, err
	}
	w := &walker{reader: reader, Scope: scope, Hidden: discover, Concurrency: s.Concurrency, Timeout: s.Source.CommandTimeout}
	visit := func(ctx context.Context, dir Node, kids []Node) error {
		readable := readableNodes(kids, invalid)
		for _, k := range readable {
			src.Add(k)
		}
		if s.VerifyOnly {
			return nil
		}
		return dest.Apply(ctx, dir, readable, !empty, t.CheckMode)
	}
	var hidden []string
	if snapRead != nil {
		defer snapRead.close()
		err = snapRead.walk(ctx, w, scope, began.Add(-goneAfter), visit)
		hidden = snapRead.log.Hidden
	} else {
		err = w.Walk(ctx, visit)
		hidden = w.found
	}
	if ferr := dest.Flush(ctx); err == nil {
		err = ferr
	}
	if discover != nil && err == nil {
		res.HiddenKeyDiscovery = fmt.Sprintf("%d hidden names found in %s", len(hidden), s.SourceDataDir)
	}
	res.fill(src, dest.Stats(), invalid, began)
	if err != nil {
		return res, &module.Error{Err: err, Result: res}
	}
	if res.Written.Keys+res.Written.Dirs > 0 {
		t.Changed()
	}
	if t.CheckMode && !s.VerifyOnly { // nothing was written; a comparison only reads, so it also runs in check mode
		return res, nil
	}

	var diffs []string
	if s.Verify || s.VerifyOnly {
		var err error
		var live *walker // a copy that read a snapshot is verified against the live source
		if snapRead != nil {
			live = &walker{reader: reader, Scope: scope, Concurrency: s.Concurrency, Timeout: s.Source.CommandTimeout,
				Hidden: func() ([]string, error) { return hidden, nil }}
		}
		expired := changes.expiredKey
		if d, ok := dest.(*v3Dest); ok && !s.LeasesGrantedAt.IsZero() {
			expired = func(key string) bool {
				return changes.expiredKey(key) || d.leaseRanOut(ctx, key, s.LeasesGrantedAt, s.LeaseGranularity)
			}
		}
		if res.Destination, diffs, err = s.verify(ctx, dest, scope, hidden, src, live, invalid, expired); err != nil {
			return res, &module.Error{Err: err, Result: res}
		}
	}
	if err := changes.finish(ctx, src.hiddenExpired(time.Now())); err != nil {
		return res, &module.Error{Err: err, Result: res}
	}
	res.ElapsedSeconds = time.Since(began).Seconds()
	if len(diffs) > 0 {
		res.Differences = diffs
		return res, &module.Error{Err: fmt.Errorf("verification failed: the destination differs from the source: %s",
			strings.Join(diffs, "; ")), Result: res}
	}
	res.Verified = s.Verify || s.VerifyOnly
	if res.InvalidUTF8Count > 0 {
		msg := fmt.Sprintf("%d values are not valid UTF-8 and cannot be read byte-exact through the v2 API, so "+
			"they were not copied or compared (see invalid_utf8_keys): %s", res.InvalidUTF8Count,
			strings.Join(first(res.InvalidUTF8Keys, 5), ", "))
		if s.InvalidUTF8 != "skip" {
			return res, &module.Error{Err: fmt.Errorf("%s; copy them another way (from a snapshot) or set "+
				"invalid_utf8: skip to accept leaving them out", msg), Result: res}
		}
		t.Warn("%s", msg)
	}
	return res, nil
}

// verify walks the destination and compares it with src, the source as the copy read it, or, with
// live, as a walk of the source shows it now (beside the destination's walk).
func (s *Spec) verify(ctx context.Context, dest destination, scope Scope, hidden []string, src *Tally, live *walker,
	invalid *keySet, expiredInSource func(string) bool) (*Counts, []string, error) {
	truth, liveErr := src, make(chan error, 1)
	if live != nil {
		truth = &Tally{Dirs: src.Dirs}
		go func() {
			liveErr <- live.Walk(ctx, func(_ context.Context, _ Node, kids []Node) error {
				for _, k := range readableNodes(kids, invalid) {
					truth.Add(k)
				}
				return nil
			})
		}()
	} else {
		liveErr <- nil
	}
	dst := &Tally{Dirs: src.Dirs}
	// Without discovery the source side holds no hidden nodes; compare like with like.
	skip := func(key string) bool { return invalid.has(key) || (s.SourceDataDir == "" && v2disk.IsHidden(key)) }
	err := dest.Tally(ctx, scope, hidden, skip, dst)
	if lerr := <-liveErr; err == nil {
		err = lerr
	}
	if err != nil {
		return nil, nil, err
	}
	c := dst.Counts()
	diffs := Compare(truth, dst, time.Now(), expiredInSource)
	if truth.nSteady == dst.nSteady && truth.steady == dst.steady {
		return &c, diffs, nil
	}
	// Name what differs: a second walk of the destination collects the keys it holds otherwise.
	extra, missing := Unmatched(truth, dst)
	named := &Tally{Dirs: src.Dirs, NoDigest: true, Named: extra}
	if len(extra) > 0 {
		if err := dest.Tally(ctx, scope, hidden, skip, named); err != nil {
			return nil, nil, err
		}
	}
	if names := named.Names(); len(names) > 0 {
		diffs = append(diffs, fmt.Sprintf("%d destination nodes are not in the source as they are (only in the destination, "+
			"or with another value): %s", len(names), strings.Join(first(names, 10), ", ")))
	}
	if missing > 0 {
		diffs = append(diffs, fmt.Sprintf("%d source nodes are missing from the destination", missing))
	}
	return &c, diffs, nil
}

// goneAfter: a node whose deadline passed this long before the copy began has been deleted by the
// source's leader (it expires TTL keys every 500 ms), so a snapshot read leaves it out.
const goneAfter = 5 * time.Second

// scanSnapshot starts opening the source member's snapshot when the copy may read it (see
// snapshotRead), nil when it reads the API: that takes a while and needs nothing from the cluster.
func (s *Spec) scanSnapshot() *v2disk.SnapScan {
	switch {
	case s.SourceDataDir == "" || s.SourceRead == "api":
		return nil
	case s.TargetAPI != "v3" || s.VerifyOnly:
		return nil // a v2 destination creates directories before their contents; a comparison reads the live source
	}
	return v2disk.StartSnapScan(s.SourceDataDir, true)
}

// planRead decides where the copy reads the source and says so in res; nil: the API.
func (s *Spec) planRead(ctx context.Context, res *Result, scan *v2disk.SnapScan) (*snapshotRead, error) {
	res.SourceRead = "api"
	if scan == nil {
		return nil, nil
	}
	r, why, err := planSnapshotRead(ctx, s.Source, scan)
	if r != nil {
		res.SourceRead = "snapshot"
	} else {
		scan.Discard()
	}
	res.SourceReadNote = why
	return r, err
}

// readableNodes returns the nodes whose values the v2 API returned exactly, and adds the others to
// invalid: the v2 API is JSON, so bytes that are not UTF-8 arrive as U+FFFD and cannot be copied
// exactly (a snapshot stores them the same way).
func readableNodes(kids []Node, invalid *keySet) []Node {
	readable := make([]Node, 0, len(kids))
	for _, k := range kids {
		if !k.Dir && (!utf8.ValidString(k.Value) || strings.Contains(k.Value, "\uFFFD")) {
			invalid.add(k.Key)
			continue
		}
		readable = append(readable, k)
	}
	return readable
}

// SameClusterFix is what to do when a v2 copy's destination is its source.
const SameClusterFix = "a v2 copy needs another etcd (e.g. a temporary one on port 3000), or use " +
	"target_api: v3 to copy into the same cluster's v3 keyspace"

// refuseSameCluster refuses a v2 destination that is the source cluster under other endpoint names
// (localhost, a hostname, another member): the copy would write every key onto itself.
func refuseSameCluster(ctx context.Context, src, dst *v2Reader) error {
	ids := [2]string{}
	for i, r := range []*v2Reader{src, dst} {
		rctx, cancel := r.conn.Ctx(ctx)
		id, err := r.clusterID(rctx)
		cancel()
		if err != nil {
			return err
		}
		ids[i] = id
	}
	if ids[0] != "" && ids[0] == ids[1] {
		return &module.ParamError{Param: "destination.endpoints", Msg: fmt.Sprintf(
			"%s reach the source's own cluster (cluster ID %s); %s", strings.Join(dst.conn.Endpoints, ","), ids[0], SameClusterFix)}
	}
	return nil
}

func (s *Spec) open() (destination, error) {
	if s.TargetAPI == "v2" {
		cli, err := s.Dest.V2()
		if err != nil {
			return nil, err
		}
		reader, err := newV2Reader(s.Dest)
		if err != nil {
			return nil, err
		}
		return newV2Dest(clientv2.NewKeysAPI(cli), reader, s.Dest.CommandTimeout, s.Concurrency), nil
	}
	cli, err := s.Dest.V3()
	if err != nil {
		return nil, err
	}
	return newV3Dest(cli, s.Dest.CommandTimeout, s.Concurrency, s.MaxTxnOps, s.MaxKeysPerLease, s.LeaseGranularity), nil
}

func (r *Result) fill(src *Tally, w *WriteStats, invalid *keySet, began time.Time) {
	r.Source = src.Counts()
	r.Written = Written{Keys: w.Keys.Load(), Dirs: w.Dirs.Load(), Identical: w.Identical.Load(),
		Expired: w.Expired.Load(), LeasesGranted: w.LeasesGranted.Load()}
	r.InvalidUTF8Count, r.InvalidUTF8Keys = invalid.list(20)
	r.ElapsedSeconds = time.Since(began).Seconds()
	if r.ElapsedSeconds > 0 {
		r.KeysPerSecond = float64(r.Source.Keys) / r.ElapsedSeconds
	}
}

// keySet is a concurrent set of keys.
type keySet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (k *keySet) add(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]bool{}
	}
	k.m[key] = true
}

func (k *keySet) has(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[key]
}

// list returns the count and up to n keys, sorted.
func (k *keySet) list(n int) (int, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.m))
	for key := range k.m {
		out = append(out, key)
	}
	sort.Strings(out)
	return len(out), out[:min(n, len(out))]
}
