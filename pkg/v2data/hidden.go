package v2data

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/wal"
)

// v2 user keys live under /1 in the store (membership under /0); the HTTP API hides the prefix.
const storeKeysPrefix = "/1"

// HiddenPaths finds the names of hidden v2 nodes (a segment starting with "_"), which the v2 API
// never lists, in a member's data dir: the newest v2 snapshot plus every v2 write in the WAL after it.
// The result is a list of candidate paths (as the v2 API names them); a walk fetches each by name,
// so deleted or expired ones simply come back absent. It only reads: safe beside a running member.
func HiddenPaths(dataDir string) ([]string, error) {
	l, err := readMemberLog(dataDir, false)
	if err != nil {
		return nil, err
	}
	return l.hidden, nil
}

// memberLog is what a member's data dir holds of its v2 store: the newest snapshot, and the v2
// writes in the WAL after it.
type memberLog struct {
	snap *snapshotFile // nil: none, or not kept
	// nodeID and clusterID are the member's, last the index of the WAL's last entry.
	nodeID, clusterID, last uint64
	hidden                  []string // API paths with a hidden segment, in the snapshot or written after it
	// written lists the API paths v2 writes after the snapshot touched ("/": the whole keyspace). It
	// is exact only when understood: every entry after the snapshot was decoded and its method known.
	written    []string
	understood bool
	// dirs: the snapshot's directories that hold something (kept with the snapshot).
	dirs *storeDirs
}

// readMemberLog reads a member's data dir; with keepSnapshot, the snapshot stays open (close it)
// and every write after it is decoded, for a copy that reads the store from the snapshot.
func readMemberLog(dataDir string, keepSnapshot bool) (*memberLog, error) {
	member := filepath.Join(dataDir, "member")
	snap, err := newestSnapshot(filepath.Join(member, "snap"))
	if err != nil {
		return nil, fmt.Errorf("source_data_dir %s: %w", dataDir, err)
	}
	l := &memberLog{understood: true}
	hidden, written := map[string]bool{}, map[string]bool{}
	dirs := &storeDirs{children: map[string]*int{}, nested: map[string]bool{}}
	var snapIndex, snapTerm uint64
	// The snapshot's paths are scanned while the WAL after it is read: two files, two cores.
	snapHidden, scanned := map[string]bool{}, make(chan error, 1)
	if snap != nil {
		snapIndex, snapTerm = snap.meta.Index, snap.meta.Term
		go func() {
			scanned <- storePaths(snap.store, func(raw []byte) error {
				if keepSnapshot {
					dirs.add(raw)
				}
				if !bytes.Contains(raw, []byte("/_")) { // neither '/' nor '_' is ever escaped
					return nil
				}
				p, err := unquotePath(raw)
				addKey(snapHidden, p, true)
				return err
			})
		}()
	} else {
		scanned <- nil
	}
	opened := func() error {
		err := <-scanned
		if snap != nil && (err != nil || !keepSnapshot) {
			snap.close()
			snap = nil
		}
		l.snap = snap
		if err != nil {
			return fmt.Errorf("source_data_dir %s: v2 snapshot: %w", dataDir, err)
		}
		maps.Copy(hidden, snapHidden)
		return nil
	}
	fail := func(err error) (*memberLog, error) {
		l.snap.close()
		return nil, err
	}

	entry := func(index uint64, typ raftpb.EntryType, data []byte) {
		if typ != raftpb.EntryNormal || len(data) == 0 {
			return // membership changes write outside the keys; empty entries come with new leaders
		}
		// A hidden path holds "/_": when only hidden names are wanted, most entries (v3 writes,
		// other v2 paths) are skipped undecoded.
		if !keepSnapshot && !bytes.Contains(data, []byte("/_")) {
			return
		}
		r, v2, ok := v2Request(data)
		switch {
		case !ok:
			l.understood = false
		case !v2:
		case r.Method == "PUT" || r.Method == "POST" || r.Method == "DELETE":
			addKey(hidden, r.Path, true)
			addKey(written, r.Path, false)
		case r.Method != "QGET" && r.Method != "SYNC": // reads, and the expiry of TTL keys
			l.understood = false
		}
	}
	md, last, err := readWAL(filepath.Join(member, "wal"), snapIndex, snapTerm, entry)
	if serr := opened(); serr != nil {
		return fail(serr)
	}
	if err != nil {
		return fail(fmt.Errorf("source_data_dir %s: reading the WAL: %w; point it at the data dir of a member of the "+
			"source cluster on this host (the directory holding member/wal, e.g. /var/lib/etcd)", dataDir, err))
	}
	l.nodeID, l.clusterID, l.last = md.NodeID, md.ClusterID, last
	l.hidden, l.written = sortedKeys(hidden), dirs.hoist(sortedKeys(written))
	if keepSnapshot {
		l.dirs = dirs
	}
	return l, nil
}

// addKey adds a v2 store path as the API names it (without the /1 prefix of user keys; outside it,
// nothing), only if hidden when onlyHidden.
func addKey(set map[string]bool, storePath string, onlyHidden bool) {
	if storePath == storeKeysPrefix {
		if !onlyHidden {
			set["/"] = true
		}
		return
	}
	p, ok := strings.CutPrefix(storePath, storeKeysPrefix+"/")
	if ok && (!onlyHidden || IsHidden(p)) {
		set["/"+p] = true
	}
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
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

// v2Request decodes a WAL entry the way etcd applies it: an InternalRaftRequest carrying a v2
// request (v2 false: a v3 request), or (older proposals) a bare v2 Request. ok is false for an
// entry that is neither.
func v2Request(data []byte) (r *pb.Request, v2, ok bool) {
	var irr pb.InternalRaftRequest
	if err := irr.Unmarshal(data); err == nil {
		return irr.V2, irr.V2 != nil, true
	}
	r = &pb.Request{}
	if err := r.Unmarshal(data); err == nil {
		return r, true, true
	}
	return nil, false, false
}
