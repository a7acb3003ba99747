// Package runstate is the one reader and writer of a procedure's state file (the migration's
// migration-state.json and the like): a JSON object recording how far a run got, so a re-run
// resumes, a rollback knows what to restore, and a finished run is archived out of the way.
// It backs the etcd_run_state module; roles never parse or write the file themselves.
package runstate

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// Params are etcd_run_state's options. read uses mode, resumable, done and backup_prefix; recorded
// uses status and data; archived uses archive_suffix; locked uses owner, data, takeover, stale_after
// and break; unlocked uses owner. Options of another state are ignored.
type Params struct {
	Path          string         `arg:"path" required:"true"`
	State         string         `arg:"state" default:"read" choices:"read,recorded,archived,locked,unlocked"`
	Mode          string         `arg:"mode"`
	Resumable     []string       `arg:"resumable"`
	Done          string         `arg:"done" default:"complete"`
	BackupPrefix  string         `arg:"backup_prefix" default:"backup"`
	Status        string         `arg:"status"`
	Data          map[string]any `arg:"data"`
	ArchiveSuffix string         `arg:"archive_suffix" default:"archived"`
	Owner         string         `arg:"owner"`
	Takeover      string         `arg:"takeover"`
	StaleAfter    time.Duration  `arg:"stale_after" default:"0s"`
	Break         bool           `arg:"break" default:"false"`
}

// Keys the module maintains itself; data may not set them.
const (
	keyStatus  = "status"
	keyUpdated = "updated"
	keyStarted = "started"
)

// stamp is the UTC timestamp in fresh backup names and archive names.
const stamp = "20060102T150405Z"

// Validate rejects input that cannot mean anything, naming the option and the fix.
func (p *Params) Validate() error {
	if !filepath.IsAbs(p.Path) || strings.HasSuffix(p.Path, "/") {
		return &module.ParamError{Param: "path", Msg: fmt.Sprintf("must be the absolute path of the state file, "+
			"got %q; e.g. /var/lib/etcd-backup/migration-state.json", p.Path)}
	}
	switch p.State {
	case "read":
		if p.Done == "" {
			return &module.ParamError{Param: "done", Msg: "must not be empty (an absent file would count as finished); " +
				"name the phase that means the job finished, e.g. complete"}
		}
		if err := plainName("backup_prefix", p.BackupPrefix); err != nil {
			return err
		}
	case "recorded":
		if p.Status == "" {
			return &module.ParamError{Param: "status", Msg: "is required with state=recorded; set it to the phase " +
				"the run enters, e.g. offline"}
		}
		for _, k := range []string{keyStatus, keyUpdated, keyStarted} {
			if _, ok := p.Data[k]; ok {
				return &module.ParamError{Param: "data", Msg: fmt.Sprintf("must not set %q: the module sets status "+
					"(from the status option), started and updated itself; remove that key", k)}
			}
		}
	case "archived":
		return plainName("archive_suffix", p.ArchiveSuffix)
	case "locked", "unlocked":
		if p.Owner == "" {
			return &module.ParamError{Param: "owner", Msg: fmt.Sprintf("is required with state=%s; give this run's "+
				"own id (the same for taking and releasing the lock), e.g. CONTROLLER:PID:START", p.State)}
		}
		if p.StaleAfter < 0 {
			return &module.ParamError{Param: "stale_after", Msg: "must not be negative; give e.g. 6h, or 0 for never"}
		}
	}
	return nil
}

func plainName(param, v string) error {
	if v == "" || strings.Contains(v, "/") {
		return &module.ParamError{Param: param, Msg: fmt.Sprintf("must be a non-empty name without '/', got %q", v)}
	}
	return nil
}

// Run does what p.State asks, as of now.
func Run(t *module.Task, p Params, now time.Time) (any, error) {
	now = now.UTC().Truncate(time.Second)
	switch p.State {
	case "recorded":
		return Record(t, p, now)
	case "archived":
		return Archive(t, p, now)
	case "locked":
		return Lock(t, p, now)
	case "unlocked":
		return Unlock(t, p, now)
	}
	return Read(p, now)
}
