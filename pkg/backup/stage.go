package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/etcdops/etcd/pkg/module"
)

// A member's v2 snapshots and its WAL segments before the last are never written again (etcd writes a
// snapshot once, appends only to the last segment and cuts a new one when it is full; it deletes old ones).
// Staged ahead of a backup, while the member runs and its clients still work, they leave the backup
// itself, inside the clients' outage, only the last segment, new snapshots and the db to copy.
const (
	stagedSuffix   = ".staged"
	stagedManifest = "STAGED.json"
)

// stagedFile is one staged copy and the source it was taken of: the source still has these attributes
// (the change time is set by the kernel on every write) when the backup uses the copy.
type stagedFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Ino    uint64 `json:"ino"`
	Mtime  int64  `json:"mtime_ns"`
	Ctime  int64  `json:"ctime_ns"`
}

// StageResult is what etcd_backup state=staged returns.
type StageResult struct {
	Path    string   `json:"path"`
	Files   int      `json:"files"`
	Bytes   int64    `json:"bytes"`
	Actions []string `json:"actions"`
}

func stagedPath(s Spec) string { return filepath.Join(s.Dir, s.Name+stagedSuffix) }

// Stage copies the running member's immutable files into Dir/Name.staged, each verified against its
// source hashed again, and records their sources; Take of Name then moves in each copy whose source is
// unchanged. Staged copies of other names (a run that stopped before its backup) are removed: they are
// our own copies, and the backup they were for was never taken.
func Stage(t *module.Task, s Spec) (r StageResult, err error) {
	path := stagedPath(s)
	r.Path = path
	if err := s.checkMember(); err != nil {
		return r, err
	}
	if _, err := Verify(filepath.Join(s.Dir, s.Name)); err == nil {
		r.Actions = append(r.Actions, "the backup "+s.Name+" exists already: nothing to stage")
		return r, nil
	}
	old, err := filepath.Glob(filepath.Join(s.Dir, "*"+stagedSuffix))
	if err != nil {
		return r, err
	}
	t.Changed()
	if t.CheckMode {
		r.Actions = append(r.Actions, "would stage the unchanging files of "+s.DataDir+" in "+path)
		return r, nil
	}
	// Before the space is measured: they hold what this staging copies again.
	for _, o := range old {
		if err := os.RemoveAll(o); err != nil {
			return r, err
		}
		r.Actions = append(r.Actions, "removed the staged copies "+o)
	}
	src := filepath.Join(s.DataDir, memberDir)
	if err := checkSpace(s.Dir, src, 0); err != nil {
		return r, err
	}
	files, err := immutableFiles(src)
	if err == nil {
		err = os.MkdirAll(path, 0o700)
	}
	if err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(path) // our own copies, unusable without their manifest
		}
	}()
	staged := map[string]stagedFile{}
	for _, rel := range files {
		f, ok, err := stageFile(src, path, rel)
		if err != nil {
			return r, err
		}
		if ok {
			staged[rel] = f
			r.Files, r.Bytes = r.Files+1, r.Bytes+f.Size
		}
	}
	b, err := json.MarshalIndent(staged, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(path, stagedManifest), b, 0o600)
	}
	if err == nil {
		r.Actions = append(r.Actions, fmt.Sprintf("staged %d files (%d bytes) of %s", r.Files, r.Bytes, src))
	}
	return r, err
}

// immutableFiles lists the v2 snapshots and the WAL segments but the last, relative to the member dir.
func immutableFiles(member string) ([]string, error) {
	snaps, err := filepath.Glob(filepath.Join(member, "snap", "*.snap"))
	if err != nil {
		return nil, err
	}
	segs, err := walSegments(filepath.Join(member, "wal"))
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		segs = segs[:len(segs)-1]
	}
	var rels []string
	for _, f := range append(snaps, segs...) {
		rel, _ := filepath.Rel(member, f)
		rels = append(rels, rel)
	}
	return rels, nil
}

// stageFile copies one file; ok is false when the source changed or vanished meanwhile (a snapshot being
// written, a segment purged): the backup copies it, or finds it gone.
func stageFile(src, dst, rel string) (stagedFile, bool, error) {
	before, err := statFile(filepath.Join(src, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return before, false, nil
	}
	if err != nil {
		return before, false, err
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o700); err != nil {
		return before, false, err
	}
	sum, _, err := copyFile(filepath.Join(src, rel), filepath.Join(dst, rel), -1)
	if errors.Is(err, fs.ErrNotExist) { // purged since it was listed (copyFile opens the source first)
		return before, false, nil
	}
	if err != nil {
		return before, false, err
	}
	again, _, err := hashFile(filepath.Join(src, rel))
	after, sErr := statFile(filepath.Join(src, rel))
	if err != nil || sErr != nil || again != sum || after != before {
		return before, false, os.Remove(filepath.Join(dst, rel))
	}
	before.SHA256 = sum
	return before, true, nil
}

func statFile(path string) (stagedFile, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return stagedFile{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return stagedFile{Size: st.Size, Ino: st.Ino, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, nil
}

// stagedCopies is the staged copies for the backup of a name; files is empty when nothing, or nothing
// whole, was staged (a staging killed before its manifest).
type stagedCopies struct {
	dir   string
	files map[string]stagedFile // staged, not taken yet
	taken map[string]stagedFile // moved into the backup
}

func loadStaged(s Spec) stagedCopies {
	sc := stagedCopies{dir: stagedPath(s), files: map[string]stagedFile{}, taken: map[string]stagedFile{}}
	if b, err := os.ReadFile(filepath.Join(sc.dir, stagedManifest)); err == nil && json.Unmarshal(b, &sc.files) != nil {
		clear(sc.files)
	}
	return sc
}

// bytes is what the staged copies hold.
func (sc stagedCopies) bytes() int64 {
	var n int64
	for _, f := range sc.files {
		n += f.Size
	}
	return n
}

// take moves the staged copy of rel to dst when its source is unchanged since it was staged, and
// returns its SHA-256 and size.
func (sc stagedCopies) take(src, dst, rel string) (string, int64, bool) {
	f, ok := sc.files[rel]
	if !ok || !sourceIs(src, rel, f) || os.Rename(filepath.Join(sc.dir, rel), dst) != nil {
		return "", 0, false
	}
	delete(sc.files, rel) // moved: another attempt copies it
	sc.taken[rel] = f
	return f.SHA256, f.Size, true
}

// sourceIs reports whether rel under src still has the attributes its staged copy was taken of: the
// verification of a copy taken from the staging, instead of hashing the source again.
func sourceIs(src, rel string, f stagedFile) bool {
	now, err := statFile(filepath.Join(src, rel))
	now.SHA256 = f.SHA256
	return err == nil && now == f
}
