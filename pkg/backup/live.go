package backup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2disk"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/server/v3/wal"
	"go.uber.org/zap"
)

// LiveCopy is what a copy of a running member was checked against (Manifest.Live).
type LiveCopy struct {
	// Committed is the member's raft index before the copy (etcd's Status: the commit index; 3.2 and 3.3
	// report the applied one): the WAL copy holds every entry up to it.
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

// takeLive backs up a running member without stopping it, as a crash at that moment would leave its dir.
// In this order: the v2 snapshots (etcd commits its db, consistent index included, before it writes one, so
// the db taken next is never behind them), the v3 snapshot through the member (consistent) as the copy's
// db, the WAL segments (holding every entry the db applied); then the WAL's half-written last record is cut
// as etcd cuts it on start (wal.Repair) and the copy is read as the member would read it on start. A copy
// that does not read so is taken again, up to copyAttempts: a segment cut or purged, or a v2 snapshot being
// written, while it was copied.
//
// Every consumer write must be in it: the caller stops the consumers and waits until the members have
// applied the same entries first (role etcd_backup, etcd_backup_live).
func (s Spec) takeLive(ctx context.Context, tmp, src string, staged stagedCopies, m *Manifest) (LiveCopy, error) {
	var lc LiveCopy
	dst := filepath.Join(tmp, memberDir)
	var lastErr error
	for lc.Attempts = 1; lc.Attempts <= copyAttempts; lc.Attempts++ {
		if lc.Attempts > 1 {
			select { // past the write that tore the copy
			case <-ctx.Done():
				return lc, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		if err := os.RemoveAll(dst); err != nil { // our own partial copy, never user data
			return lc, err
		}
		clear(staged.taken) // removed with it: copied this time
		member, committed, err := s.memberStatus(ctx)
		if err != nil {
			return lc, err
		}
		m.Files = map[string]string{}
		files, err := copyLiveFiles(src, dst, "snap", ".snap", staged)
		if err != nil {
			lastErr = err
			continue
		}
		if err := saveSnapshot(ctx, s, filepath.Join(tmp, snapshotName), m); err != nil {
			return lc, fmt.Errorf("v3 snapshot: %w", err)
		}
		if err := s.checkSameMember(src, member); err != nil {
			return lc, err
		}
		db, err := dbFromSnapshot(tmp, dst)
		if err == nil {
			maps.Copy(files, db)
			var walFiles map[string]string
			if walFiles, err = copyLiveFiles(src, dst, "wal", ".wal", staged); err == nil {
				maps.Copy(files, walFiles)
			}
		}
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
			m.V2Snapshots = v2Snapshots(files)
			m.Bytes, err = DirSize(dst)
			return lc, err
		}
		lastErr = err
	}
	return lc, fmt.Errorf("%d copies of the running member's %s did not read as a member's dir, the last: %w; "+
		"stop the member for the copy instead (stop_service; role etcd_backup: etcd_backup_live false)", copyAttempts, src, lastErr)
}

// memberStatus is the member's ID and raft index, from its own endpoint.
func (s Spec) memberStatus(ctx context.Context) (id, index uint64, err error) {
	ep := s.Conn.Endpoints[0]
	cli, err := s.Conn.V3Single(ep)
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := s.Conn.Ctx(ctx)
	defer cancel()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return 0, 0, s.Conn.Explain(ep, err)
	}
	return st.Header.MemberId, st.RaftIndex, nil
}

// checkSameMember refuses an endpoint that is not the member whose data dir is copied: the copy would
// pair one member's db with another's log.
func (s Spec) checkSameMember(src string, id uint64) error {
	md, err := v2disk.WALMember(filepath.Join(src, "wal"))
	if err != nil {
		return err
	}
	if md.NodeID != id {
		return &module.ParamError{Param: "endpoints", Msg: fmt.Sprintf("%s is member %x, the data dir %s is member %x's: "+
			"give the member's own client URL first", s.Conn.Endpoints[0], id, s.DataDir, md.NodeID)}
	}
	return nil
}

// dbFromSnapshot copies the v3 snapshot, without the SHA-256 etcd appends to the stream, to the copy's
// snap/db.
func dbFromSnapshot(tmp, dst string) (map[string]string, error) {
	snapDB := filepath.Join(tmp, snapshotName)
	st, err := os.Stat(snapDB)
	if err != nil {
		return nil, err
	}
	sum, _, err := copyFile(snapDB, filepath.Join(dst, "snap", "db"), st.Size()-sha256.Size)
	return map[string]string{filepath.Join("snap", "db"): sum}, err
}

// copyLiveFiles copies the files of one of the member's dirs (snap, wal) with the suffix etcd starts from
// (a running member's other files - a v3 snapshot file received from the leader, preallocated WAL
// segments, a defragmentation's temporary db - are transient), a staged copy moved in where its source is
// unchanged, and returns each file's SHA-256 as written by its path under dst.
func copyLiveFiles(src, dst, dir, suffix string, staged stagedCopies) (map[string]string, error) {
	if err := os.MkdirAll(filepath.Join(dst, dir), 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(src, dir))
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		rel := filepath.Join(dir, e.Name())
		sum, _, ok := staged.take(src, filepath.Join(dst, rel), rel)
		if !ok {
			if sum, _, err = copyFile(filepath.Join(src, rel), filepath.Join(dst, rel), -1); err != nil {
				return nil, err // purged by the member since it was listed: copied again
			}
		}
		files[rel] = sum
	}
	return files, nil
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

// walSegments lists the WAL's segment files in order (their names sort by sequence).
func walSegments(walDir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	sort.Strings(names)
	return names, err
}

// lastSegment names the WAL's last segment.
func lastSegment(walDir string) (string, error) {
	names, err := walSegments(walDir)
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("no WAL segment in %s (%v)", walDir, err)
	}
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
