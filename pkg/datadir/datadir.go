// Package datadir holds the checks and chores every module that replaces a member's data directory
// shares: whether an etcd process still holds the member's WAL lock, ownership copied from the data
// dir, and the timestamp suffix of a directory moved aside.
package datadir

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// fOFDGetLK is F_OFD_GETLK: etcd locks its WAL files with open-file-description locks on Linux
// (fileutil.LockFile), which flock(2) does not see.
const fOFDGetLK = 36

// NotLocked fails when an etcd process holds the WAL lock of the member directory (DATA_DIR/member).
func NotLocked(member string) error {
	wals, _ := filepath.Glob(filepath.Join(member, "wal", "*.wal"))
	for _, w := range wals {
		f, err := os.OpenFile(w, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
		err = syscall.FcntlFlock(f.Fd(), fOFDGetLK, &lk)
		f.Close()
		if err == nil && lk.Type != syscall.F_UNLCK {
			return fmt.Errorf("%s is locked: etcd still runs on this data dir; stop the etcd service first", w)
		}
	}
	return nil
}

// ChownLike gives every file and directory under dir (dir included) the owner and group of ref.
func ChownLike(ref, dir string) error {
	st, err := os.Stat(ref)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	})
}

// Stamp is the UTC timestamp suffix of a directory moved aside (member.pre-restore-20260101T000000Z).
func Stamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
