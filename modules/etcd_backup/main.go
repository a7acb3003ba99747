// etcd_backup takes one member's verified pre-migration backup (v3 snapshot + data dir copy), or
// restores a member's data dir from one (state: restored, etcd stopped).
package etcd_backup

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/pkg/backup"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

type params struct {
	etcdconn.Options
	State       string        `arg:"state" default:"present" choices:"present,restored,staged"`
	DataDir     string        `arg:"data_dir" type:"path" default:"/var/lib/etcd"`
	BackupDir   string        `arg:"backup_dir" type:"path" default:"/var/lib/etcd-backup"`
	Name        string        `arg:"name" required:"true"`
	Snapshot    bool          `arg:"snapshot" default:"true"`
	CopyDataDir bool          `arg:"copy_data_dir" default:"true"`
	Timeout     time.Duration `arg:"timeout" default:"10m"`
	StopService string        `arg:"stop_service"`
	// StopMarker is a file created before stop_service is stopped and removed once it runs again: a run
	// killed in between leaves the record that the member must be started (role etcd_backup, lingering).
	StopMarker string `arg:"stop_marker" type:"path"`
	// Live copies the running member without stopping it (pkg/backup takeLive).
	Live bool `arg:"live" default:"false"`

	stopUnit string
}

func (p *params) Validate() error {
	if filepath.Base(p.Name) != p.Name || p.Name == "." || p.Name == ".." {
		return &module.ParamError{Param: "name", Msg: "must be a plain directory name such as pre-migration-20260101T000000Z"}
	}
	if !p.Snapshot && !p.CopyDataDir && p.State == "present" {
		return &module.ParamError{Param: "snapshot", Msg: "snapshot and copy_data_dir are both false; enable at least one"}
	}
	if p.StopService != "" {
		unit, err := systemd.UnitName(p.StopService)
		if err != nil {
			return &module.ParamError{Param: "stop_service", Msg: err.Error()}
		}
		p.stopUnit = unit
	}
	if p.StopMarker != "" && (p.stopUnit == "" || !filepath.IsAbs(p.StopMarker)) {
		return &module.ParamError{Param: "stop_marker", Msg: fmt.Sprintf("%q: an absolute path, with stop_service only, "+
			"e.g. /run/etcdops-backup-stopped-etcd.service", p.StopMarker)}
	}
	if p.Live && p.State == "present" {
		switch {
		case p.StopService != "":
			return &module.ParamError{Param: "live", Msg: "copies the member while it runs and stop_service stops it for the copy: give one of them"}
		case !p.Snapshot || !p.CopyDataDir:
			return &module.ParamError{Param: "live", Msg: "the copy's db is the v3 snapshot: set snapshot and copy_data_dir to true, or drop live"}
		}
	}
	if p.State != "present" || !p.Snapshot {
		return nil // no connection needed
	}
	return p.Options.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		if p.State == "restored" {
			return backup.Restore(t, backup.RestoreSpec{DataDir: p.DataDir, Path: filepath.Join(p.BackupDir, p.Name), Now: time.Now()})
		}
		s := backup.Spec{Conn: p.Options, DataDir: p.DataDir, Dir: p.BackupDir, Name: p.Name,
			Snapshot: p.Snapshot, CopyDataDir: p.CopyDataDir, Timeout: p.Timeout, Now: time.Now(), Live: p.Live}
		if p.State == "staged" {
			return backup.Stage(t, s)
		}
		if p.stopUnit != "" {
			units := systemd.New()
			defer units.Close()
			s.Quiesce = backup.StopUnit(units, p.stopUnit, p.StopMarker)
		}
		return backup.Take(ctx, t, s)
	})
}
