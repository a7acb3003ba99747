package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// tmpSuffix names a snapshot being saved: etcdutl downloads into NAME+tmpSuffix+".part" and renames it to
// NAME+tmpSuffix, which becomes NAME once it verifies. A save holds a lock on that file throughout, so a
// temporary file nobody locks is what a killed save left: the next save in the directory removes it.
const tmpSuffix = ".etcd-snapshot-partial"

// isTemp reports whether a file name is a save's temporary file.
func isTemp(name string) bool {
	return strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, tmpSuffix+".part")
}

// SaveSpec is one snapshot save.
type SaveSpec struct {
	Conn etcdconn.Options // the first endpoint is the member saved from
	Path string
	// Keep, when above 0, keeps that many snapshots of KeepPrefix in Path's directory (the new one
	// included) and removes the older ones.
	Keep       int
	KeepPrefix string
	Timeout    time.Duration
}

// SaveResult is what etcd_snapshot state=saved returns.
type SaveResult struct {
	Info
	Endpoint string   `json:"endpoint,omitempty"`
	Removed  []string `json:"removed"`
	Actions  []string `json:"actions"`
}

// Save saves a verified snapshot at Path, or keeps the one there when it verifies; then applies the
// retention. A file at Path that does not verify is an error: it is never overwritten.
func Save(ctx context.Context, t *module.Task, s SaveSpec) (SaveResult, error) {
	r := SaveResult{Info: Info{Path: s.Path}, Removed: []string{}}
	dir := filepath.Dir(s.Path)
	stale, err := removeStale(dir, t.CheckMode)
	if err != nil {
		return r, err
	}
	for _, p := range stale {
		t.Changed()
		r.Actions = append(r.Actions, "removed "+p+", the partial download of an interrupted save (never a snapshot)")
	}
	switch info, err := Status(s.Path, false); {
	case err == nil:
		r.Info = info
		r.Actions = append(r.Actions, "kept the verified snapshot "+s.Path)
	case !errors.Is(err, fs.ErrNotExist):
		return r, fmt.Errorf("%w; it is left as it is: remove it or save under another path", err)
	default:
		r.Endpoint = s.Conn.Endpoints[0]
		// The member must answer before anything is created (the directory), in check mode as for real.
		if err := probe(ctx, s.Conn); err != nil {
			return r, err
		}
		t.Changed()
		if t.CheckMode {
			r.Actions = append(r.Actions, fmt.Sprintf("would save a snapshot of %s to %s", r.Endpoint, s.Path))
			break
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return r, err
		}
		if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Warn("%s has mode %04o: other users can list the snapshots there (each is 0600); a 0700 directory is safer", dir, st.Mode().Perm())
		}
		if r.Info, err = Fetch(ctx, s.Conn, s.Path, s.Timeout); err != nil {
			return r, err
		}
		r.Actions = append(r.Actions, fmt.Sprintf("saved a snapshot of %s to %s: revision %d, %d keys, %d bytes",
			r.Endpoint, s.Path, r.Revision, r.Keys, r.Size))
	}
	if s.Keep > 0 {
		old, err := expired(dir, s.KeepPrefix, s.Path, s.Keep)
		if err != nil {
			return r, err
		}
		for _, p := range old {
			t.Changed()
			if !t.CheckMode {
				if err := os.Remove(p); err != nil {
					return r, err
				}
			}
			r.Removed = append(r.Removed, p)
		}
		if len(old) > 0 {
			r.Actions = append(r.Actions, fmt.Sprintf("removed %d snapshot(s) beyond keep=%d", len(old), s.Keep))
		}
	}
	return r, nil
}

// probe checks that the member answers.
func probe(ctx context.Context, conn etcdconn.Options) error {
	cli, err := conn.V3Single(conn.Endpoints[0])
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := conn.Ctx(ctx)
	defer cancel()
	if _, err := cli.Status(ctx, conn.Endpoints[0]); err != nil {
		return conn.Explain(conn.Endpoints[0], err)
	}
	return nil
}

// Fetch saves a snapshot of the first endpoint's member to dst with etcdutl (mode 0600, synced),
// under a temporary name until it verifies; then renames it and syncs the directory.
func Fetch(ctx context.Context, conn etcdconn.Options, dst string, timeout time.Duration) (Info, error) {
	ep := conn.Endpoints[0]
	cfg, err := conn.V3Config([]string{ep})
	if err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tmp := dst + tmpSuffix
	lock, err := lockTemp(tmp + ".part")
	if err != nil {
		return Info{}, err
	}
	defer lock.Close() // held through etcdutl's rename to tmp and ours to dst: the same file
	if err := snapshot.NewV3(zap.NewNop()).Save(ctx, cfg, tmp); err != nil {
		return Info{}, conn.Explain(ep, err)
	}
	info, err := Status(tmp, false)
	if err != nil {
		os.Remove(tmp) // our own unverified download
		return Info{}, fmt.Errorf("the snapshot of %s does not verify: %w", ep, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Info{}, err
	}
	info.Path = dst
	return info, syncDir(filepath.Dir(dst))
}

// errLocked: a save under way holds the file.
var errLocked = errors.New("locked")

// tryLock write-locks f (opened for writing) without waiting: an open file description lock
// (F_OFD_SETLK), dropped when the process dies; not flock(2), which bolt takes on the same file to verify it.
func tryLock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errLocked
	}
	return err
}

// lockTemp creates (or takes over from a killed save) the download file etcdutl writes and holds a
// lock on it, which tells removeStale that a save is under way.
func lockTemp(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		if err := tryLock(f); err != nil {
			f.Close()
			if err == errLocked {
				return nil, fmt.Errorf("%s: another save to this path is under way; wait for it to end, or save under another path", path)
			}
			return nil, err
		}
		// removeStale may have removed the file between the open and the lock: lock the one at path.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
		if err1 != nil {
			return nil, err1
		}
		if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
			return nil, err2
		}
	}
}

// removeStale removes (in check mode only lists) the temporary files in dir that no save holds: what
// killed saves left. They are never snapshots (only a verified file gets its final name).
func removeStale(dir string, check bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTemp(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // its save just ended
		}
		if err != nil {
			return removed, err
		}
		err = tryLock(f)
		if err == nil && !check {
			err = os.Remove(p)
		}
		f.Close()
		switch {
		case err == errLocked || errors.Is(err, fs.ErrNotExist):
			// a save under way holds it, or it just ended
		case err != nil:
			return removed, err
		default:
			removed = append(removed, p)
		}
	}
	return removed, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// expired lists the snapshots of prefix in dir beyond the newest keep (by modification time, then
// name), never the current one. Temporary files of a save are not snapshots.
func expired(dir, prefix, current string, keep int) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	type snap struct {
		path string
		mod  time.Time
	}
	var snaps []snap
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || isTemp(name) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, snap{filepath.Join(dir, name), fi.ModTime()})
	}
	if !slices.ContainsFunc(snaps, func(s snap) bool { return s.path == current }) {
		snaps = append(snaps, snap{path: current}) // check mode: the save to come
	}
	sort.Slice(snaps, func(i, j int) bool {
		if snaps[i].path == current || snaps[j].path == current {
			return snaps[i].path == current
		}
		if !snaps[i].mod.Equal(snaps[j].mod) {
			return snaps[i].mod.After(snaps[j].mod)
		}
		return snaps[i].path > snaps[j].path
	})
	var old []string
	for i, s := range snaps {
		if i >= keep && s.path != current {
			old = append(old, s.path)
		}
	}
	return old, nil
}

// DefaultKeepPrefix is the retention prefix of a snapshot path: its base name up to and including
// the last '-' (etcd-20260101T000000Z.db → etcd-), or "" when it has none.
func DefaultKeepPrefix(path string) string {
	base := filepath.Base(path)
	if i := strings.LastIndex(base, "-"); i > 0 {
		return base[:i+1]
	}
	return ""
}
