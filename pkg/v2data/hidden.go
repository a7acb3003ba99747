package v2data

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/wal"
	"go.etcd.io/etcd/server/v3/wal/walpb"
	"go.uber.org/zap"
)

// v2 user keys live under /1 in the store (membership under /0); the HTTP API hides the prefix.
const storeKeysPrefix = "/1"

// HiddenPaths finds the names of hidden v2 nodes (a segment starting with "_"), which the v2 API
// never lists, in a member's data dir: the newest v2 snapshot plus every v2 write in the WAL after it.
// The result is a list of candidate paths (as the v2 API names them); a walk fetches each by name,
// so deleted or expired ones simply come back absent. It only reads: safe beside a running member.
func HiddenPaths(dataDir string) ([]string, error) {
	member := filepath.Join(dataDir, "member")
	found := map[string]bool{}
	add := func(storePath string) {
		p, ok := strings.CutPrefix(storePath, storeKeysPrefix+"/")
		if ok && IsHidden(p) {
			found["/"+p] = true
		}
	}

	paths, meta, err := newestSnapshotPaths(filepath.Join(member, "snap"))
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: %w", dataDir, err)
	}
	for _, p := range paths {
		add(p)
	}
	walSnap := walpb.Snapshot{Index: meta.Index, Term: meta.Term}
	w, err := wal.OpenForRead(zap.NewNop(), filepath.Join(member, "wal"), walSnap)
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: %w; point it at the data dir of a member of the source "+
			"cluster on this host (the directory holding member/wal, e.g. /var/lib/etcd)", dataDir, err)
	}
	defer w.Close()
	_, _, ents, err := w.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: reading the WAL: %w", dataDir, err)
	}
	for _, e := range ents {
		// A hidden path holds "/_"; most entries (v3 writes, other v2 paths) are skipped undecoded.
		if e.Type == raftpb.EntryNormal && bytes.Contains(e.Data, []byte("/_")) {
			if p := v2RequestPath(e.Data); p != "" {
				add(p)
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

// checkDataDir fails fast on a source_data_dir that holds no member log, which HiddenPaths would
// only find after reading for a while.
func checkDataDir(dataDir string) error {
	if !wal.Exist(filepath.Join(dataDir, "member", "wal")) {
		return fmt.Errorf("source_data_dir %s holds no etcd WAL (member/wal); point it at the data dir of a member "+
			"of the source cluster on this host (e.g. /var/lib/etcd)", dataDir)
	}
	return nil
}

// v2RequestPath decodes a WAL entry the way etcd applies it: an InternalRaftRequest carrying a v2
// request, or (older proposals) a bare v2 Request.
func v2RequestPath(data []byte) string {
	var irr pb.InternalRaftRequest
	if err := irr.Unmarshal(data); err == nil {
		if irr.V2 != nil {
			return irr.V2.Path
		}
		return ""
	}
	var r pb.Request
	if err := r.Unmarshal(data); err == nil {
		return r.Path
	}
	return ""
}
