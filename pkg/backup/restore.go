package backup

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/pkg/datadir"
	"github.com/etcdops/etcd/pkg/module"
)

// RestoreSpec puts a backup's member directory back into a data dir.
type RestoreSpec struct {
	DataDir string
	Path    string // the backup (Dir/Name of Take)
	Now     time.Time
}

// RestoreResult is what etcd_backup state=restored returns.
type RestoreResult struct {
	Path      string   `json:"path"`
	MovedAway string   `json:"moved_aside,omitempty"`
	Actions   []string `json:"actions"`
}

// Restore verifies the backup, moves the current member dir aside (timestamped, never deleted) and
// copies the backup's in, owned like the data dir. A data dir that already equals the backup is left
// alone, so a re-run of the rollback changes nothing.
func Restore(t *module.Task, s RestoreSpec) (RestoreResult, error) {
	r := RestoreResult{Path: s.Path}
	m, err := Verify(s.Path)
	if err != nil {
		return r, &module.ParamError{Param: "name", Msg: fmt.Sprintf("%s is not a verified backup (%v); "+
			"list backup_dir and pass the pre-migration backup's name", s.Path, err)}
	}
	if !hasMember(m) {
		return r, &module.ParamError{Param: "name", Msg: s.Path + " holds no data dir copy (it was taken with copy_data_dir: false)"}
	}
	cur := filepath.Join(s.DataDir, memberDir)
	if same(cur, m) {
		r.Actions = append(r.Actions, cur+" already equals the backup")
		return r, nil
	}
	if err := datadir.NotLocked(cur); err != nil {
		return r, err
	}
	t.Changed()
	if t.CheckMode {
		r.Actions = append(r.Actions, "would restore "+cur+" from "+s.Path)
		return r, nil
	}
	if _, err := os.Stat(cur); err == nil {
		r.MovedAway = cur + ".pre-rollback-" + datadir.Stamp(s.Now)
		if err := os.Rename(cur, r.MovedAway); err != nil {
			return r, err
		}
		r.Actions = append(r.Actions, "moved "+cur+" aside to "+r.MovedAway)
	}
	if _, _, err := copyTree(filepath.Join(s.Path, memberDir), cur, stagedCopies{}); err != nil {
		return r, err
	}
	if err := datadir.ChownLike(s.DataDir, cur); err != nil {
		return r, err
	}
	if !same(cur, m) {
		return r, fmt.Errorf("%s does not match the backup after the copy; the previous data is in %s", cur, r.MovedAway)
	}
	r.Actions = append(r.Actions, "restored "+cur+" from "+s.Path)
	return r, nil
}

func hasMember(m Manifest) bool {
	for rel := range m.Files {
		if filepath.Dir(rel) != "." {
			return true
		}
	}
	return false
}

// same reports whether dir holds exactly the member files of the manifest.
func same(dir string, m Manifest) bool {
	n := 0
	for rel, want := range m.Files {
		sub, ok := cutMember(rel)
		if !ok {
			continue
		}
		n++
		got, _, err := hashFile(filepath.Join(dir, sub))
		if err != nil || got != want {
			return false
		}
	}
	count := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			count++
		}
		return nil
	})
	return n > 0 && count == n
}

func cutMember(rel string) (string, bool) {
	prefix := memberDir + string(filepath.Separator)
	if len(rel) > len(prefix) && rel[:len(prefix)] == prefix {
		return rel[len(prefix):], true
	}
	return "", false
}
