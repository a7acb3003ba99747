// etcd_backup takes one member's verified pre-migration backup (v3 snapshot + data dir copy), or
// restores a member's data dir from one (state: restored, etcd stopped).
package etcd_backup

import (
	"context"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/pkg/backup"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

type params struct {
	etcdconn.Options
	State       string        `arg:"state" default:"present" choices:"present,restored"`
	DataDir     string        `arg:"data_dir" type:"path" default:"/var/lib/etcd"`
	BackupDir   string        `arg:"backup_dir" type:"path" default:"/var/lib/etcd-backup"`
	Name        string        `arg:"name" required:"true"`
	Snapshot    bool          `arg:"snapshot" default:"true"`
	CopyDataDir bool          `arg:"copy_data_dir" default:"true"`
	Timeout     time.Duration `arg:"timeout" default:"10m"`
	StopService string        `arg:"stop_service"`

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
	if p.State == "restored" || !p.Snapshot {
		return nil // no connection needed
	}
	return p.Options.Validate()
}

// stopper stops the unit for the copy and starts it again afterwards if it was running.
func stopper(units systemd.Units, unit string) func(context.Context) (func() error, error) {
	return func(ctx context.Context) (func() error, error) {
		active, err := units.Active(ctx, unit)
		if err != nil {
			return nil, err
		}
		if !active {
			return func() error { return nil }, nil
		}
		if err := units.Stop(ctx, unit); err != nil {
			return nil, err
		}
		return func() error { return units.Start(context.Background(), unit) }, nil
	}
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		if p.State == "restored" {
			return backup.Restore(t, backup.RestoreSpec{DataDir: p.DataDir, Path: filepath.Join(p.BackupDir, p.Name), Now: time.Now()})
		}
		s := backup.Spec{Conn: p.Options, DataDir: p.DataDir, Dir: p.BackupDir, Name: p.Name,
			Snapshot: p.Snapshot, CopyDataDir: p.CopyDataDir, Timeout: p.Timeout, Now: time.Now()}
		if p.stopUnit != "" {
			units := systemd.New()
			defer units.Close()
			s.Quiesce = stopper(units, p.stopUnit)
		}
		return backup.Take(ctx, t, s)
	})
}
