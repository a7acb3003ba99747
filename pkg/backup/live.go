package backup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/v2disk"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/server/v3/wal"
	"go.uber.org/zap"
)

// LiveCopy is what a copy of a running member was checked against (Manifest.Live).
type LiveCopy struct {
	// Committed is the member's commit index before the snapshot: the WAL copy holds every entry up to it.
	Committed uint64 `json:"committed"`
	// ConsistentIndex is the last entry the db (the v3 snapshot) had applied.
	ConsistentIndex uint64 `json:"consistent_index"`
	// SnapshotIndex and LastIndex are the copy's newest v2 snapshot and last WAL entry.
	SnapshotIndex uint64 `json:"snapshot_index"`
	LastIndex     uint64 `json:"last_index"`
	// TornTail: the WAL's last record was being written and was cut, as etcd cuts it on start.
	TornTail bool `json:"torn_tail"`
	Attempts int  `json:"attempts"`
}

// takeLive backs up a running member without stopping it, as a crash at that moment would leave its dir:
// the v3 snapshot (consistent, through the member) becomes the copy's db; then the v2 snapshots and the WAL
// segments are copied, the WAL's half-written last record cut as etcd cuts it on start (wal.Repair), and the
// copy is read as the member would read it on start. A copy that does not read so is taken again, snapshot
// included, up to copyAttempts: a segment cut or purged, or a v2 snapshot written, while it was copied.
//
// Every consumer write must be in it: the caller stops the consumers and waits until the members have
// applied the same entries first (role etcd_backup, etcd_backup_live).
func (s Spec) takeLive(ctx context.Context, tmp, src string, staged stagedCopies, m *Manifest) (LiveCopy, error) {
	var lc LiveCopy
	dst := filepath.Join(tmp, memberDir)
	var lastErr error
	for lc.Attempts = 1; lc.Attempts <= copyAttempts; lc.Attempts++ {
		if err := os.RemoveAll(dst); err != nil { // our own partial copy, never user data
			return lc, err
		}
		clear(staged.taken) // removed with it: copied this time
		committed, err := s.committedIndex(ctx)
		if err != nil {
			return lc, err
		}
		m.Files = map[string]string{}
		if err := saveSnapshot(ctx, s, filepath.Join(tmp, snapshotName), m); err != nil {
			return lc, fmt.Errorf("v3 snapshot: %w", err)
		}
		files, bytes, err := copyLiveFiles(tmp, src, dst, staged)
		if err == nil {
			lc, err = checkLiveCopy(dst, committed, lc.Attempts)
		}
		if err == nil && lc.TornTail {
			err = rehash(dst, files)
		}
		if err == nil {
			for rel, sum := range files {
				m.Files[filepath.Join(memberDir, rel)] = sum
			}
			m.V2Snapshots, m.Bytes = v2Snapshots(files), bytes
			return lc, nil
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond) // past the write that tore the copy
	}
	return lc, fmt.Errorf("%d copies of the running member's %s did not read as a member's dir, the last: %w; "+
		"stop the member for the copy instead (stop_service)", copyAttempts, src, lastErr)
}

// committedIndex is the member's commit index, from its own endpoint.
func (s Spec) committedIndex(ctx context.Context) (uint64, error) {
	ep := s.Conn.Endpoints[0]
	cli, err := s.Conn.V3Single(ep)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := s.Conn.Ctx(ctx)
	defer cancel()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return 0, s.Conn.Explain(ep, err)
	}
	return st.RaftIndex, nil
}

// copyLiveFiles copies the v3 snapshot (without the SHA-256 etcd appends to the stream) to snap/db, then the
// v2 snapshots and the WAL segments, and returns each file's SHA-256 as written by its path under dst.
// A running member's other files (a v3 snapshot file received from the leader, preallocated WAL segments,
// a defragmentation's temporary db) are transient and not part of what it starts from.
func copyLiveFiles(tmp, src, dst string, staged stagedCopies) (map[string]string, int64, error) {
	files := map[string]string{}
	if err := os.MkdirAll(filepath.Join(dst, "snap"), 0o700); err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(filepath.Join(dst, "wal"), 0o700); err != nil {
		return nil, 0, err
	}
	snapDB := filepath.Join(tmp, snapshotName)
	st, err := os.Stat(snapDB)
	if err != nil {
		return nil, 0, err
	}
	sum, total, err := copyFile(snapDB, filepath.Join(dst, "snap", "db"), st.Size()-sha256.Size)
	if err != nil {
		return nil, 0, err
	}
	files[filepath.Join("snap", "db")] = sum
	for _, part := range []struct{ dir, suffix string }{{"snap", ".snap"}, {"wal", ".wal"}} {
		ents, err := os.ReadDir(filepath.Join(src, part.dir))
		if err != nil {
			return nil, 0, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), part.suffix) {
				continue
			}
			rel := filepath.Join(part.dir, e.Name())
			sum, n, ok := staged.take(src, filepath.Join(dst, rel), rel)
			if !ok {
				if sum, n, err = copyFile(filepath.Join(src, rel), filepath.Join(dst, rel), -1); err != nil {
					return nil, 0, err // purged by the member since it was listed: copied again
				}
			}
			files[rel], total = sum, total+n
		}
	}
	return files, total, nil
}

// checkLiveCopy cuts a torn last WAL record and reads the copy as etcd would on start.
func checkLiveCopy(member string, committed uint64, attempt int) (LiveCopy, error) {
	lc := LiveCopy{Committed: committed, Attempts: attempt}
	walDir := filepath.Join(member, "wal")
	before, err := lastSegment(walDir)
	if err != nil {
		return lc, err
	}
	if !wal.Repair(zap.NewNop(), walDir) {
		return lc, errors.New("the WAL's last segment is damaged beyond a torn last record")
	}
	if err := os.Remove(filepath.Join(walDir, before+".broken")); err == nil {
		lc.TornTail = true // Repair kept the uncut segment beside it; the copy needs only the cut one
	} else if !errors.Is(err, os.ErrNotExist) {
		return lc, err
	}
	snaps, err := filepath.Glob(filepath.Join(member, "snap", "*.snap"))
	if err != nil {
		return lc, err
	}
	for _, f := range snaps {
		// etcd 3.2-3.4 load the newest snapshot file and skip a broken one to an older one, whose WAL
		// records the member may have purged: every one must be whole.
		if err := v2disk.CheckSnapshot(f); err != nil {
			return lc, fmt.Errorf("v2 snapshot %s: %w", filepath.Base(f), err)
		}
	}
	if lc.ConsistentIndex, err = consistentIndex(filepath.Join(member, "snap", "db")); err != nil {
		return lc, err
	}
	pos, err := v2disk.LogPosition(filepath.Dir(member))
	if err != nil {
		return lc, err
	}
	lc.SnapshotIndex, lc.LastIndex = pos.SnapshotIndex, pos.LastIndex
	switch {
	case pos.SnapshotIndex > lc.ConsistentIndex:
		// etcd would look for the v3 snapshot file a leader sends with a raft snapshot, and not start.
		return lc, fmt.Errorf("the newest v2 snapshot (index %d) is past the db's consistent index %d: written after the v3 snapshot",
			pos.SnapshotIndex, lc.ConsistentIndex)
	case pos.LastIndex < max(committed, lc.ConsistentIndex):
		return lc, fmt.Errorf("the WAL copy ends at index %d, before the member's commit index %d or the db's consistent index %d",
			pos.LastIndex, committed, lc.ConsistentIndex)
	}
	return lc, nil
}

// lastSegment names the WAL's last segment (segment names sort by sequence).
func lastSegment(walDir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("no WAL segment in %s (%v)", walDir, err)
	}
	sort.Strings(names)
	return filepath.Base(names[len(names)-1]), nil
}

// consistentIndex is the last raft entry a v3 db applied (its meta bucket's consistent_index).
func consistentIndex(path string) (uint64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("the db copy %s: %w", path, err)
	}
	defer db.Close()
	var ci uint64
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("meta")); b != nil {
			if v := b.Get([]byte("consistent_index")); len(v) == 8 {
				ci = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return ci, err
}

// rehash records the SHA-256 of the WAL's last segment again after wal.Repair cut it.
func rehash(member string, files map[string]string) error {
	last, err := lastSegment(filepath.Join(member, "wal"))
	if err != nil {
		return err
	}
	rel := filepath.Join("wal", last)
	sum, _, err := hashFile(filepath.Join(member, rel))
	files[rel] = sum
	return err
}

func v2Snapshots(files map[string]string) []string {
	out := []string{}
	for rel := range files {
		if strings.HasPrefix(rel, "snap/") && strings.HasSuffix(rel, ".snap") {
			out = append(out, filepath.Base(rel))
		}
	}
	sort.Strings(out)
	return out
}
