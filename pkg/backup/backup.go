// Package backup takes and restores the pre-migration backup of one etcd member: a v3 snapshot read
// through the client (a consistent copy of the v3 store) and a copy of the member's data directory
// (the only place the v2 store and the member's identity live, and what a rollback puts back).
// Both are verified before the backup counts: the snapshot's trailing SHA-256 and bolt integrity, the
// copy's SHA-256 per file against the source read again after copying. A MANIFEST.json records the
// hashes so a later run (or the rollback) can check the backup without trusting a previous process.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/etcdops/etcd/pkg/datadir"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/snapshot"
)

const (
	manifestName = "MANIFEST.json"
	snapshotName = "snapshot.db"
	memberDir    = "member"
	copyAttempts = 3
)

// Spec is one member's backup request.
type Spec struct {
	Conn etcdconn.Options
	// DataDir holds the member's "member" directory (OpenShift 3.x: /var/lib/etcd).
	DataDir string
	// Dir is the backup root; the backup is Dir/Name (0700, files 0600).
	Dir  string
	Name string
	// Snapshot and CopyDataDir select the two parts; both default to on.
	Snapshot    bool
	CopyDataDir bool
	Timeout     time.Duration
	Now         time.Time
	// Quiesce, when set, stops the member for the data dir copy and returns how to start it again.
	// A running member keeps writing its WAL and db (a v2 leader proposes a TTL SYNC every 500 ms),
	// so only a stopped member's directory can be copied consistently.
	Quiesce func(ctx context.Context) (resume func() error, err error)
	// Live copies the running member without stopping it (takeLive); it needs Snapshot and CopyDataDir,
	// and no Quiesce.
	Live bool
}

// Manifest describes a verified backup.
type Manifest struct {
	Created          string            `json:"created"`
	Endpoint         string            `json:"endpoint,omitempty"`
	DataDir          string            `json:"data_dir"`
	SnapshotRevision int64             `json:"snapshot_revision"`
	SnapshotKeys     int               `json:"snapshot_keys"`
	V2Snapshots      []string          `json:"v2_snapshots"`
	Files            map[string]string `json:"files"` // relative path → sha256
	Bytes            int64             `json:"bytes"`
	// StagedFiles counts the files moved in from the copies staged for this backup (Stage).
	StagedFiles int `json:"staged_files,omitempty"`
	// Live, for a copy of a running member, is what it was checked against.
	Live *LiveCopy `json:"live,omitempty"`
}

// Result is what etcd_backup returns.
type Result struct {
	Path     string   `json:"path"`
	Verified bool     `json:"verified"`
	Manifest Manifest `json:"manifest"`
	Actions  []string `json:"actions"`
}

// Take makes (or, when Dir/Name already holds a backup whose files match its manifest, keeps) the
// backup. A partial directory from an interrupted run is moved aside, never reused or deleted.
func Take(ctx context.Context, t *module.Task, s Spec) (Result, error) {
	path := filepath.Join(s.Dir, s.Name)
	r := Result{Path: path}
	if m, err := Verify(path); err == nil {
		r.Verified, r.Manifest = true, m
		r.Actions = append(r.Actions, "kept the verified backup "+path)
		if !t.CheckMode {
			return r, os.RemoveAll(stagedPath(s)) // staged for it by a run that stopped before it recorded the backup
		}
		return r, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.Actions = append(r.Actions, fmt.Sprintf("moved aside the unverifiable %s (%v)", path, err))
		if !t.CheckMode {
			if err := os.Rename(path, path+".incomplete-"+datadir.Stamp(s.Now)); err != nil {
				return r, err
			}
		}
	}
	src := filepath.Join(s.DataDir, memberDir)
	staged := loadStaged(s)
	if s.CopyDataDir {
		if err := s.checkMember(); err != nil {
			return r, err
		}
		if err := checkSpace(s.Dir, src, staged.bytes()); err != nil {
			return r, err
		}
	}
	t.Changed()
	if t.CheckMode {
		r.Actions = append(r.Actions, "would back up into "+path)
		return r, nil
	}
	tmp := path + ".partial-" + datadir.Stamp(s.Now)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return r, err
	}
	m := Manifest{Created: s.Now.UTC().Format(time.RFC3339), DataDir: s.DataDir, Files: map[string]string{},
		V2Snapshots: []string{}}
	if s.Live {
		lc, err := s.takeLive(ctx, tmp, src, staged, &m)
		if err != nil {
			return r, fmt.Errorf("live copy: %w (the partial backup stays in %s)", err, tmp)
		}
		m.Live = &lc
		r.Actions = append(r.Actions, fmt.Sprintf("saved a v3 snapshot at revision %d as the db and copied the running %s with it "+
			"(%d files, %d bytes; the WAL to index %d, the commit index %d), read as the member would on start",
			m.SnapshotRevision, src, len(m.Files), m.Bytes, lc.LastIndex, lc.Committed))
	} else if s.Snapshot {
		if err := saveSnapshot(ctx, s, filepath.Join(tmp, snapshotName), &m); err != nil {
			return r, fmt.Errorf("v3 snapshot: %w (the partial backup stays in %s)", err, tmp)
		}
		r.Actions = append(r.Actions, fmt.Sprintf("saved and verified a v3 snapshot at revision %d (%d keys)", m.SnapshotRevision, m.SnapshotKeys))
	}
	if s.CopyDataDir && !s.Live {
		err := s.copyQuiesced(ctx, src, filepath.Join(tmp, memberDir), staged, &m)
		if err != nil {
			return r, fmt.Errorf("data dir copy: %w (the partial backup stays in %s)", err, tmp)
		}
		r.Actions = append(r.Actions, fmt.Sprintf("copied and verified %s (%d files, %d bytes)", src, len(m.Files), m.Bytes))
	}
	m.StagedFiles = len(staged.taken)
	if err := writeManifest(tmp, m); err != nil {
		return r, err
	}
	// What the backup did not take of our own staged copies goes first: a run killed in between takes the
	// backup again (and removes a partial staging of another name), never finds the backup with a staging.
	if err := os.RemoveAll(staged.dir); err != nil {
		return r, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return r, err
	}
	r.Verified, r.Manifest = true, m
	return r, nil
}

// checkMember refuses a data dir without a member in it.
func (s Spec) checkMember() error {
	if _, err := os.Stat(filepath.Join(s.DataDir, memberDir, "wal")); err != nil {
		return &module.ParamError{Param: "data_dir", Msg: fmt.Sprintf("%s holds no etcd member (no %s/wal); "+
			"set data_dir to the member's data directory (OpenShift 3.x: /var/lib/etcd)", s.DataDir, memberDir)}
	}
	return nil
}

// v2Snapshots names the v2 snapshot files among a copy's files (relative to its member dir).
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

// Verify checks every file of a backup against its manifest and returns the manifest.
func Verify(path string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(path, manifestName))
	if err != nil {
		if _, dirErr := os.Stat(path); errors.Is(dirErr, fs.ErrNotExist) {
			return m, dirErr
		}
		return m, fmt.Errorf("no manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	for rel, want := range m.Files {
		got, _, err := hashFile(filepath.Join(path, rel))
		if err != nil {
			return m, err
		}
		if got != want {
			return m, fmt.Errorf("%s does not match its recorded SHA-256", rel)
		}
	}
	return m, nil
}

func saveSnapshot(ctx context.Context, s Spec, dst string, m *Manifest) error {
	m.Endpoint = s.Conn.Endpoints[0]
	info, err := snapshot.Fetch(ctx, s.Conn, dst, s.Timeout)
	if err != nil {
		return err
	}
	m.SnapshotRevision, m.SnapshotKeys = info.Revision, info.Entries
	m.Files[snapshotName] = info.SHA256
	return nil
}

func (s Spec) copyQuiesced(ctx context.Context, src, dst string, staged stagedCopies, m *Manifest) (err error) {
	if s.Quiesce != nil {
		resume, qErr := s.Quiesce(ctx)
		if qErr != nil {
			return qErr
		}
		defer func() {
			if rErr := resume(); rErr != nil && err == nil {
				err = rErr
			}
		}()
	}
	return copyVerified(src, dst, staged, m)
}

// copyVerified copies src to dst (a staged copy moved in where its source is unchanged) and checks every
// copied file against the source hashed again after the copy (a staged one: its source's attributes); a
// source that changed in between (a live writer) is copied again, up to copyAttempts.
func copyVerified(src, dst string, staged stagedCopies, m *Manifest) error {
	var lastErr error
	for attempt := 0; attempt < copyAttempts; attempt++ {
		if attempt > 0 {
			if err := os.RemoveAll(dst); err != nil { // our own partial copy, never user data
				return err
			}
			clear(staged.taken)
		}
		files, bytes, err := copyTree(src, dst, staged)
		if err != nil {
			return err
		}
		lastErr = nil
		for rel, sum := range files {
			if f, ok := staged.taken[rel]; ok {
				if !sourceIs(src, rel, f) {
					lastErr = fmt.Errorf("%s changed while it was copied", filepath.Join(src, rel))
					break
				}
				continue
			}
			again, _, err := hashFile(filepath.Join(src, rel))
			if err != nil || again != sum {
				lastErr = fmt.Errorf("%s changed while it was copied; a running member writes continuously: "+
					"set stop_service so the member is stopped for the copy", filepath.Join(src, rel))
				break
			}
		}
		if lastErr == nil {
			for rel, sum := range files {
				m.Files[filepath.Join(memberDir, rel)] = sum
			}
			m.V2Snapshots = v2Snapshots(files)
			m.Bytes += bytes
			return nil
		}
	}
	return lastErr
}

// copyTree copies regular files (0600) and directories (0700), returning each file's SHA-256 as
// written; a file staged (staged.take) is moved in instead. Sockets, lock files of other tools and the
// like do not occur in a member dir.
func copyTree(src, dst string, staged stagedCopies) (map[string]string, int64, error) {
	files := map[string]string{}
	var total int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		sum, n, ok := staged.take(src, out, rel)
		if !ok {
			sum, n, err = copyFile(p, out, -1)
		}
		if err != nil {
			return err
		}
		files[rel] = sum
		total += n
		return nil
	})
	return files, total, err
}

// copyFile copies src (its first limit bytes, all when limit < 0) to dst, synced, and returns the
// SHA-256 of what it wrote.
func copyFile(src, dst string, limit int64) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	var r io.Reader = in
	if limit >= 0 {
		r = io.LimitReader(in, limit)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil && limit >= 0 && n != limit {
		err = fmt.Errorf("%s: %d of %d bytes", src, n, limit)
	}
	if err == nil {
		err = out.Sync()
	}
	if cErr := out.Close(); err == nil {
		err = cErr
	}
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, manifestName), b, 0o600)
}

// checkSpace wants twice the member dir free where the backups go (the copy, plus room for the
// snapshot and for the migrated data dir growing), less what staged copies there hold already.
func checkSpace(dir, src string, staged int64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &module.ParamError{Param: "backup_dir", Msg: fmt.Sprintf("cannot create %s: %v", dir, err)}
	}
	need, err := DirSize(src)
	if err != nil {
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < 2*need-staged {
		return fmt.Errorf("%s has %d MiB free, the backup needs at least %d MiB (2× %s, less %d MiB staged for it); free "+
			"space or set backup_dir to a larger filesystem", dir, free>>20, (2*need-staged)>>20, src, staged>>20)
	}
	return nil
}

// DirSize sums the sizes of the regular files under dir.
func DirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
