package v2data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/wal"
	"go.etcd.io/etcd/server/v3/wal/walpb"
	"go.uber.org/zap"
)

// v2 user keys live under /1 in the store (membership under /0); the HTTP API hides the prefix.
const storeKeysPrefix = etcdserver.StoreKeysPrefix

// memberLog is what a member's data dir holds of the v2 store: the newest v2 snapshot (nil when
// none was taken yet) and the committed WAL entries after it.
type memberLog struct {
	snapshot *raftpb.Snapshot
	entries  []raftpb.Entry
}

// readMemberLog reads a member's data dir. It only reads: safe beside a running member, whose WAL
// tail may be half written (tolerated) or hold entries not yet committed (left out).
func readMemberLog(dataDir string) (*memberLog, error) {
	member := filepath.Join(dataDir, "member")
	l := &memberLog{}
	var walSnap walpb.Snapshot
	s, err := snap.New(zap.NewNop(), filepath.Join(member, "snap")).Load()
	switch {
	case err == nil:
		l.snapshot = s
		walSnap = walpb.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term}
	case errors.Is(err, snap.ErrNoSnapshot):
	default:
		return nil, fmt.Errorf("source_data_dir %s: reading the v2 snapshot: %w", dataDir, err)
	}
	w, err := wal.OpenForRead(zap.NewNop(), filepath.Join(member, "wal"), walSnap)
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: %w; point it at the data dir of a member of the source "+
			"cluster on this host (the directory holding member/wal, e.g. /var/lib/etcd)", dataDir, err)
	}
	defer w.Close()
	_, state, ents, err := w.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: reading the WAL: %w", dataDir, err)
	}
	for len(ents) > 0 && ents[len(ents)-1].Index > state.Commit {
		ents = ents[:len(ents)-1]
	}
	l.entries = ents
	return l, nil
}

// logSize is the bytes a member's v2 snapshot and WAL files take: a rebuilt store needs a few times that.
func logSize(dataDir string) int64 {
	var n int64
	for _, dir := range []string{"snap", "wal"} {
		files, _ := os.ReadDir(filepath.Join(dataDir, "member", dir))
		for _, f := range files {
			if info, err := f.Info(); err == nil && !strings.HasSuffix(f.Name(), ".db") {
				n += info.Size()
			}
		}
	}
	return n
}

// HiddenPaths finds the names of hidden v2 nodes (a segment starting with "_"), which the v2 API
// never lists, in a member's data dir: the newest v2 snapshot plus every v2 write in the WAL after it.
// The result is a list of candidate paths (as the v2 API names them); a walk fetches each by name,
// so deleted or expired ones simply come back absent.
func HiddenPaths(dataDir string) ([]string, error) {
	l, err := readMemberLog(dataDir)
	if err != nil {
		return nil, err
	}
	return l.hiddenPaths(dataDir)
}

func (l *memberLog) hiddenPaths(dataDir string) ([]string, error) {
	found := map[string]bool{}
	add := func(storePath string) {
		p, ok := strings.CutPrefix(storePath, storeKeysPrefix+"/")
		if ok && IsHidden(p) {
			found["/"+p] = true
		}
	}
	if l.snapshot != nil {
		if err := storePaths(l.snapshot.Data, add); err != nil {
			return nil, fmt.Errorf("source_data_dir %s: v2 snapshot: %w", dataDir, err)
		}
	}
	for _, e := range l.entries {
		// A hidden path holds "/_"; most entries (v3 writes, other v2 paths) are skipped undecoded.
		if e.Type == raftpb.EntryNormal && bytes.Contains(e.Data, []byte("/_")) {
			if r := v2Request(e.Data); r != nil {
				add(r.Path)
			}
		}
	}
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// v2Request decodes a WAL entry the way etcd applies it: an InternalRaftRequest carrying a v2
// request, or (older proposals) a bare v2 Request. nil: not a v2 request.
func v2Request(data []byte) *pb.Request {
	var irr pb.InternalRaftRequest
	if err := irr.Unmarshal(data); err == nil {
		return irr.V2
	}
	var r pb.Request
	if err := r.Unmarshal(data); err == nil {
		return &r
	}
	return nil
}

// storePaths walks the v2 store JSON of a snapshot (the store's node tree, hidden nodes included).
func storePaths(data []byte, add func(string)) error {
	type node struct {
		Path     string
		Children map[string]*node
	}
	var st struct{ Root *node }
	if err := json.Unmarshal(data, &st); err != nil {
		return err
	}
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		add(n.Path)
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(st.Root)
	return nil
}
