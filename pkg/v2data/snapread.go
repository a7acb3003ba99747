package v2data

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcd/pkg/v2disk"
)

// snapshotRead reads the source's v2 store from the member's data dir instead of through the API:
// the keyspace as of the newest snapshot, minus whatever v2 writes touched after it, which is read
// through the API. The source then serves only those paths instead of encoding every value as JSON,
// which on a small machine costs as much as the writes.
//
// It is used only where it is provably the live store: the data dir belongs to a member of the
// source cluster (cluster and member ids) that has applied every entry the cluster had committed
// when the copy began, and every write in its log after the snapshot was understood. Writes after
// the copy began fail the copy as they always do (see watchChanges).
type snapshotRead struct {
	log *v2disk.MemberLog
}

// statusTimeout bounds the status asked of each source member, catchUpTimeout the quorum read of the
// one on this host (see planSnapshotRead): either running out only means the API is read.
const (
	statusTimeout  = 2 * time.Second
	catchUpTimeout = 3 * time.Second
)

// planSnapshotRead returns a snapshot read of the data dir scan is opening, or nil and why the API
// must be read instead. Call it after reading the copy's start index. Errors reading the data dir
// are errors: the API walk needs the same files for hidden names.
func planSnapshotRead(ctx context.Context, src etcdconn.Options, scan *v2disk.SnapScan) (*snapshotRead, string, error) {
	dataDir := scan.DataDir()
	// The cluster's committed index, asked of every member after the copy's start index was read:
	// every write the copy's start reflects is at or below it.
	cli, err := src.V3()
	if err != nil {
		return nil, fmt.Sprintf("the source's v3 API is unreachable (%v)", err), nil
	}
	defer cli.Close()
	statuses := make([]*clientv3.StatusResponse, len(src.Endpoints))
	errs := make([]error, len(src.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range src.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			statuses[i], errs[i] = cli.Status(sctx, ep)
		}()
	}
	wg.Wait()
	var committed, clusterID uint64
	endpoint := map[uint64]string{}
	for i, st := range statuses {
		if errs[i] != nil {
			return nil, fmt.Sprintf("the status of %s is unknown (%v)", src.Endpoints[i], errs[i]), nil
		}
		committed = max(committed, st.RaftIndex)
		endpoint[st.Header.MemberId] = src.Endpoints[i]
		clusterID = st.Header.ClusterId
	}

	md, err := v2disk.WALMember(filepath.Join(dataDir, "member", "wal"))
	if err != nil {
		return nil, "", fmt.Errorf("source_data_dir %s: %w", dataDir, err)
	}
	ep, ok := endpoint[md.NodeID]
	switch {
	case md.ClusterID != clusterID:
		return nil, fmt.Sprintf("source_data_dir: the data dir belongs to cluster %x, the source is %x", md.ClusterID, clusterID), nil
	case !ok:
		return nil, fmt.Sprintf("source_data_dir: the data dir's member %x is not among the source endpoints", md.NodeID), nil
	}
	// The member on this host must have applied everything committed (a follower trails the leader
	// by moments) before its log is read: then its log up to there is the cluster's. A v2 quorum read
	// through it answers once it has applied the read's own log entry, which comes after all of
	// those (etcd before 3.4 does not report its applied index; this works on every version).
	if err := quorumRead(ctx, src, ep); err != nil {
		return nil, fmt.Sprintf("source_data_dir: its member (%s) did not answer a quorum read (%v)", ep, err), nil
	}

	l, err := v2disk.ReadMemberLog("source_data_dir", dataDir, scan)
	if err != nil {
		return nil, "", err
	}
	why := ""
	switch {
	case l.Snap == nil:
		why = "the member has no v2 snapshot"
	case l.NodeID != md.NodeID || l.ClusterID != md.ClusterID:
		why = "the member's log changed while it was read"
	case l.Last < committed:
		why = fmt.Sprintf("the data dir's member is behind the cluster (logged %d, committed %d)", l.Last, committed)
	case !l.Understood:
		why = "its log holds v2 entries this module does not know"
	}
	if why != "" {
		l.Snap.Close()
		return nil, "source_data_dir: " + why, nil
	}
	return &snapshotRead{log: l}, "", nil
}

// quorumRead reads the root through the v2 API of one member, as a quorum read: it answers once that
// member has applied the read's entry in the raft log.
func quorumRead(ctx context.Context, src etcdconn.Options, endpoint string) error {
	src.Endpoints = []string{endpoint}
	cli, err := src.V2()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	_, err = currentIndex(rctx, clientv2.NewKeysAPI(cli))
	return err
}

func (r *snapshotRead) close() { r.log.Snap.Close() }

// walk visits the keyspace in scope: the snapshot's nodes and, through w at the same time, what
// was written after it (the source serves those while this process decodes the snapshot). The
// snapshot's visits hand over a directory after its contents: fine for a v3 destination, which only
// writes leaves. Nodes that had expired well before the copy began (gone is that moment) are left
// out: the source has deleted them since.
func (r *snapshotRead) walk(ctx context.Context, w *walker, scope Scope, gone time.Time, visit visitFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &storeWalk{ctx: ctx, scope: scope, gone: gone, written: map[string]bool{}, live: map[string]bool{}, visit: visit}
	for _, p := range r.log.Written {
		s.written[p] = true
	}
	live := liveScope(scope, r.log.Written, r.log.Dirs)
	walked := make(chan error, 1)
	if len(live.Prefixes) == 0 {
		walked <- nil
	} else {
		for _, p := range live.Prefixes {
			s.live[p] = true
		}
		w.Scope, w.AboveVisited = live, true
		w.Hidden = func() ([]string, error) { return r.log.Hidden, nil }
		go func() {
			err := w.Walk(ctx, visit)
			if err != nil {
				cancel()
			}
			walked <- err
		}()
	}
	err := s.run(r.log.Snap.Store())
	if err != nil {
		cancel()
	}
	if werr := <-walked; err == nil || errors.Is(err, context.Canceled) && werr != nil {
		err = werr
	}
	return err
}

// storeWalk visits the nodes of a v2 store snapshot (its JSON, as etcd saves it) in scope, a
// directory's children in batches, leaving out written paths and what is read live.
type storeWalk struct {
	ctx           context.Context
	scope         Scope
	gone          time.Time
	written, live map[string]bool
	visit         visitFunc
}

// storeBatch bounds the children handed over in one visit (a listing would hand over all).
const storeBatch = 1000

func (s *storeWalk) run(store []byte) error {
	p := &jparser{b: store}
	found := false
	err := p.object(func(field string) error {
		if field != "Root" {
			return p.skip()
		}
		found = true
		_, err := s.node(p, Node{})
		return err
	})
	if err == nil && !found {
		err = fmt.Errorf("no Root")
	}
	if err != nil {
		return fmt.Errorf("source_data_dir: the v2 snapshot: %w", err)
	}
	return nil
}

// node reads one node object. A directory's children are visited before it returns; the node
// itself is returned for its parent's batch (nil: left out).
func (s *storeWalk) node(p *jparser, parent Node) (*Node, error) {
	var storePath string
	user := false // a user key (under /1), not membership (/0) or the store's root
	n := Node{Expiry: parent.Expiry}
	err := p.object(func(field string) (err error) {
		switch field {
		case "Path":
			if storePath, err = p.str(); err == nil {
				n.Key, user = apiKey(storePath)
				n.Hidden = v2disk.IsHidden(n.Key)
			}
		case "ExpireTime":
			var t string
			if t, err = p.str(); err != nil || strings.HasPrefix(t, "0001-01-01T00:00:00") { // zero: permanent
				return err
			}
			if n.Expiration, err = time.Parse(time.RFC3339Nano, t); err == nil && (n.Expiry.IsZero() || n.Expiration.Before(n.Expiry)) {
				n.Expiry = n.Expiration
			}
		case "Value":
			n.Value, err = p.str()
		case "Children":
			if p.null() {
				return nil
			}
			// etcd writes a node's fields in order, Children last: path and expiry are known here.
			if storePath == "" {
				return fmt.Errorf("a directory without a path before its children")
			}
			n.Dir = true
			if storePath == "/" {
				return s.children(p, n)
			}
			if !user || !s.descend(n) {
				return p.skip()
			}
			return s.children(p, n)
		default:
			err = p.skip()
		}
		return err
	})
	if err != nil || !user || n.Key == "/" || s.written[n.Key] || s.live[n.Key] || !(s.scope.Contains(n.Key) || s.ttlAbove(n)) || s.expired(n) {
		return nil, err
	}
	return &n, nil
}

// ttlAbove: n is a directory with a TTL above a prefix, which a walk through the API visits too
// (see walker.parent).
func (s *storeWalk) ttlAbove(n Node) bool {
	if !n.Dir || n.Expiration.IsZero() || s.scope.Excluded(n.Key) {
		return false
	}
	return slices.ContainsFunc(s.scope.Prefixes, func(p string) bool { return p != n.Key && under(p, n.Key) })
}

// children reads a directory's children object, visiting them in batches.
func (s *storeWalk) children(p *jparser, dir Node) error {
	var batch []Node
	flush := func() error {
		if len(batch) == 0 {
			return s.ctx.Err()
		}
		err := s.visit(s.ctx, dir, batch)
		batch = nil
		return err
	}
	err := p.object(func(string) error {
		c, err := s.node(p, dir)
		if err != nil || c == nil {
			return err
		}
		if batch = append(batch, *c); len(batch) >= storeBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// descend: part of the tree under dir may be in scope, none of it was written after the snapshot
// (written subtrees are read live), and it has not expired.
func (s *storeWalk) descend(dir Node) bool {
	if s.written[dir.Key] || s.live[dir.Key] || s.scope.Excluded(dir.Key) || s.expired(dir) {
		return false
	}
	for _, p := range s.scope.Prefixes {
		if under(dir.Key, p) || under(p, dir.Key) {
			return true
		}
	}
	return false
}

func (s *storeWalk) expired(n Node) bool { return !n.Expiry.IsZero() && n.Expiry.Before(s.gone) }

// liveScope is what must be read through the API: the paths written after the snapshot that are
// in scope (or the scope prefixes inside them), each raised to the highest directory the snapshot
// did not hold (so directories a write created are read too), none inside another.
func liveScope(scope Scope, written []string, held *v2disk.StoreDirs) Scope {
	var out []string
	for _, w := range written {
		for w != "/" && path.Dir(w) != "/" && !held.Has(path.Dir(w)) {
			w = path.Dir(w)
		}
		for _, p := range scope.Prefixes {
			switch {
			case under(w, p):
				out = append(out, w)
			case under(p, w):
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	out = slices.Compact(out)
	live := Scope{Exclude: scope.Exclude}
	for _, p := range out {
		if !slices.ContainsFunc(out, func(q string) bool { return q != p && under(p, q) }) {
			live.Prefixes = append(live.Prefixes, p)
		}
	}
	return live
}

// apiKey turns a v2 store path into the API's ("/1/a" → "/a", "/1" → "/"); false outside user keys.
// The key is a part of the path, not a copy.
func apiKey(storePath string) (string, bool) {
	if storePath == v2disk.StoreKeysPrefix {
		return "/", true
	}
	if strings.HasPrefix(storePath, v2disk.StoreKeysPrefix+"/") {
		return storePath[len(v2disk.StoreKeysPrefix):], true
	}
	return "", false
}
