package runstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// ArchiveResult names where the file went ("" when there was none).
type ArchiveResult struct {
	ArchivedTo string `json:"archived_to"`
}

// Archive renames DIR/STEM.json to DIR/STEM.SUFFIX-TIMESTAMP.json (adding -1, -2 … when that name is
// taken; nothing is ever overwritten), so the next run starts afresh. A corrupt file is archived
// like any other: that is how it is moved aside.
func Archive(t *module.Task, p Params, now time.Time) (ArchiveResult, error) {
	fi, err := os.Lstat(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return ArchiveResult{}, nil
	}
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("cannot read the state file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return ArchiveResult{}, &module.ParamError{Param: "path", Msg: fmt.Sprintf("%s is not a regular file "+
			"(%s); point path at the state file", p.Path, fi.Mode().Type())}
	}
	dir, base := filepath.Split(p.Path)
	ext := filepath.Ext(base)
	prefix := filepath.Join(dir, strings.TrimSuffix(base, ext)+"."+p.ArchiveSuffix+"-"+now.Format(stamp))
	t.Changed()
	for i := 0; ; i++ {
		name := prefix + ext
		if i > 0 {
			name = fmt.Sprintf("%s-%d%s", prefix, i, ext)
		}
		if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return ArchiveResult{}, fmt.Errorf("cannot archive the state file: %w", err)
			}
			continue
		}
		if t.CheckMode {
			return ArchiveResult{ArchivedTo: name}, nil
		}
		if err := moveNoReplace(p.Path, name); errors.Is(err, fs.ErrExist) {
			continue // taken since the Lstat
		} else if err != nil {
			return ArchiveResult{}, fmt.Errorf("cannot archive the state file: %w", err)
		}
		return ArchiveResult{ArchivedTo: name}, syncDir(dir)
	}
}

// moveNoReplace renames src to dst unless dst exists: a hard link fails rather than replace, and the
// old name is removed after it. Where hard links are unsupported it renames (dst was just seen free).
func moveNoReplace(src, dst string) error {
	err := os.Link(src, dst)
	switch {
	case errors.Is(err, fs.ErrExist):
		return err
	case err != nil:
		return os.Rename(src, dst)
	}
	return os.Remove(src)
}
