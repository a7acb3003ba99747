package v2disk

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
	"google.golang.org/protobuf/encoding/protowire"
)

// IsHidden reports whether a v2 key has a hidden segment (one starting with "_"), which listings omit.
func IsHidden(key string) bool {
	return strings.HasPrefix(key, "_") || strings.Contains(key, "/_")
}

// StoreKeysPrefix: v2 user keys live under /1 in the store (membership under /0); the HTTP API hides the prefix.
const StoreKeysPrefix = "/1"

// HiddenPaths finds the names of hidden v2 nodes (a segment starting with "_"), which the v2 API
// never lists, in a member's data dir: the newest v2 snapshot plus every v2 write in the WAL after it.
// The result is a list of candidate paths (as the v2 API names them); a walk fetches each by name,
// so deleted or expired ones simply come back absent. It only reads: safe beside a running member.
// option names the data dir in errors.
func HiddenPaths(option, dataDir string) ([]string, error) {
	l, err := ReadMemberLog(option, dataDir, StartSnapScan(dataDir, false))
	if err != nil {
		return nil, err
	}
	return l.Hidden, nil
}

// MemberLog is what a member's data dir holds of its v2 store: the newest snapshot, and the v2
// writes in the WAL after it.
type MemberLog struct {
	Snap *Snapshot // nil: none, or not kept (close it)
	// NodeID and ClusterID are the member's, Last the index of the WAL's last entry.
	NodeID, ClusterID, Last uint64
	Hidden                  []string // API paths with a hidden segment, in the snapshot or written after it
	// Written lists the API paths v2 writes after the snapshot touched ("/": the whole keyspace). It
	// is exact only when Understood: every entry after the snapshot was decoded and its method known.
	Written    []string
	Understood bool
	// Dirs: the snapshot's directories that hold something (kept with the snapshot).
	Dirs *StoreDirs
}

// SnapScan opens a member's newest v2 snapshot and scans its paths in the background. It needs
// nothing from the cluster (a snapshot holds only applied entries), so a copy starts it first; the
// WAL after it is read once the snapshot is open.
type SnapScan struct {
	dataDir string
	keep    bool          // the snapshot stays open and its directories are counted, for a copy
	opened  chan struct{} // closed once snap (nil: none) or openErr is set
	scanned chan struct{} // closed once hidden and dirs are complete, or scanErr is set
	snap    *Snapshot
	hidden  map[string]bool
	dirs    *StoreDirs
	// Two errors, each written before its channel closes, so that a reader after opened never
	// races the scan.
	openErr, scanErr error
}

// StartSnapScan starts the scan of dataDir's newest v2 snapshot (keep: for a copy that reads the
// store from it). Hand it to ReadMemberLog, or Discard it.
func StartSnapScan(dataDir string, keep bool) *SnapScan {
	s := &SnapScan{dataDir: dataDir, keep: keep, opened: make(chan struct{}), scanned: make(chan struct{}),
		hidden: map[string]bool{}, dirs: &StoreDirs{children: map[string]*int{}, nested: map[string]bool{}}}
	go func() {
		defer close(s.scanned)
		s.snap, s.openErr = newestSnapshot(filepath.Join(dataDir, "member", "snap"))
		close(s.opened)
		if s.openErr != nil || s.snap == nil {
			return
		}
		err := storePaths(s.snap.store, func(raw []byte) error {
			if keep {
				s.dirs.add(raw)
			}
			if !bytes.Contains(raw, []byte("/_")) { // neither '/' nor '_' is ever escaped
				return nil
			}
			p, err := unquotePath(raw)
			addKey(s.hidden, p, true)
			return err
		})
		if err != nil {
			s.scanErr = fmt.Errorf("v2 snapshot: %w", err)
		}
	}()
	return s
}

// DataDir is the data dir being scanned.
func (s *SnapScan) DataDir() string { return s.dataDir }

// Discard waits for the scan and closes the snapshot, unless a snapshot read still uses it: for a
// copy that reads the API after all, or has finished.
func (s *SnapScan) Discard() {
	if s == nil {
		return
	}
	<-s.scanned
	s.snap.Close()
}

// ReadMemberLog reads a member's data dir: the snapshot scan's result, and the WAL after the
// snapshot, read while the scan goes on (two files, two cores). With a kept scan (StartSnapScan keep) the snapshot stays
// open (MemberLog.Snap: close it) and every write after it is decoded, for a copy that reads the store from the
// snapshot. option names the data dir in errors.
func ReadMemberLog(option, dataDir string, scan *SnapScan) (*MemberLog, error) {
	<-scan.opened
	if scan.openErr != nil {
		scan.Discard()
		return nil, fmt.Errorf("%s %s: %w", option, dataDir, scan.openErr)
	}
	var snapIndex, snapTerm uint64
	if scan.snap != nil {
		snapIndex, snapTerm = scan.snap.meta.Index, scan.snap.meta.Term
	}
	l := &MemberLog{Understood: true}
	hidden, written := map[string]bool{}, map[string]bool{}
	entry := func(index uint64, typ raftpb.EntryType, data []byte) {
		if typ != raftpb.EntryNormal || len(data) == 0 {
			return // membership changes write outside the keys; empty entries come with new leaders
		}
		// A hidden path holds "/_": when only hidden names are wanted, most entries (v3 writes,
		// other v2 paths) are skipped undecoded.
		if !scan.keep && !bytes.Contains(data, []byte("/_")) {
			return
		}
		method, path, v2, ok := v2Request(data)
		switch {
		case !ok:
			l.Understood = false
		case !v2:
		case method == "PUT" || method == "POST" || method == "DELETE":
			addKey(hidden, path, true)
			addKey(written, path, false)
		case method != "QGET" && method != "SYNC": // reads, and the expiry of TTL keys
			l.Understood = false
		}
	}
	wal, err := readWAL(filepath.Join(dataDir, "member", "wal"), snapIndex, snapTerm, entry)
	<-scan.scanned
	if scan.scanErr == nil && err != nil {
		err = fmt.Errorf("reading the WAL: %w; point it at the data dir of a member on this host (the directory "+
			"holding member/wal, e.g. /var/lib/etcd)", err)
	} else if scan.scanErr != nil {
		err = scan.scanErr
	}
	if err != nil || !scan.keep {
		scan.snap.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", option, dataDir, err)
	}
	maps.Copy(hidden, scan.hidden)
	l.NodeID, l.ClusterID, l.Last = wal.md.NodeID, wal.md.ClusterID, wal.last
	l.Hidden, l.Written = sortedKeys(hidden), scan.dirs.Hoist(sortedKeys(written))
	if scan.keep {
		l.Snap, l.Dirs = scan.snap, scan.dirs
	}
	return l, nil
}

// addKey adds a v2 store path as the API names it (without the /1 prefix of user keys; outside it,
// nothing), only if hidden when onlyHidden.
func addKey(set map[string]bool, storePath string, onlyHidden bool) {
	if storePath == StoreKeysPrefix {
		if !onlyHidden {
			set["/"] = true
		}
		return
	}
	p, ok := strings.CutPrefix(storePath, StoreKeysPrefix+"/")
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

// CheckDataDir fails fast on a data dir that holds no member log (a read would only find out after a
// while), naming the option it came from and whose member it should be.
func CheckDataDir(option, whose, dataDir string) error {
	if !wal.Exist(filepath.Join(dataDir, "member", "wal")) {
		return fmt.Errorf("%s %s holds no etcd WAL (member/wal); point it at the data dir of a member "+
			"of %s on this host (e.g. /var/lib/etcd)", option, dataDir, whose)
	}
	return nil
}

// v2Request reads a WAL entry's v2 method and path the way etcd applies it: an InternalRaftRequest
// (v2 false: a v3 request), or else a bare v2 Request, which is how etcd proposes every v2 request.
// ok is false for an entry that is neither.
func v2Request(data []byte) (method, path string, v2, ok bool) {
	if method, path, ok := bareV2Request(data); ok {
		return method, path, true, true
	}
	var irr pb.InternalRaftRequest
	if err := irr.Unmarshal(data); err == nil {
		if irr.V2 == nil {
			return "", "", false, true
		}
		return irr.V2.Method, irr.V2.Path, true, true
	}
	var r pb.Request
	if err := r.Unmarshal(data); err == nil {
		return r.Method, r.Path, true, true
	}
	return "", "", false, false
}

// proposedMethods are the v2 methods etcd proposes. None of them is a valid protobuf message, so
// an entry holding one as a Request's Method fails to decode as an InternalRaftRequest (whose field
// 2 is a message) and is applied as a bare Request.
var proposedMethods = map[string]bool{"PUT": true, "POST": true, "DELETE": true, "QGET": true, "SYNC": true}

// bareV2Request reads Method and Path of a bare v2 Request without decoding the rest: the full
// decoders copy every value (twice, as the InternalRaftRequest attempt fails first), which was half
// of reading the WAL. It answers only where they would agree: every known field has Request's wire
// type, unknown ones are plain, and the method is one of proposedMethods.
func bareV2Request(data []byte) (method, path string, ok bool) {
	for m := data; len(m) > 0; {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return "", "", false
		}
		m = m[n:]
		switch {
		case num == 2 || num == 3 || num == 4 || num == 6: // Method, Path, Val, PrevValue
			if typ != protowire.BytesType {
				return "", "", false
			}
		case num <= 17: // the others are integers and booleans
			if typ != protowire.VarintType {
				return "", "", false
			}
		case typ == protowire.StartGroupType || typ == protowire.EndGroupType:
			return "", "", false
		}
		var b []byte
		if typ == protowire.BytesType {
			b, n = protowire.ConsumeBytes(m)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, m)
		}
		if n < 0 {
			return "", "", false
		}
		m = m[n:]
		switch num {
		case 2:
			method = string(b)
		case 3:
			path = string(b)
		}
	}
	return method, path, proposedMethods[method]
}
