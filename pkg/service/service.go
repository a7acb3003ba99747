// Package service is etcd_units' logic: it starts or stops the systemd services an etcd procedure touches (the
// OpenShift masters around a migration, etcd itself) and proves that started ones keep running. One module
// run per host does what took four `systemd` tasks per unit (start, check, settle, check again): each task
// result costs the control node about 0.15 CPU-s and the outage about half a second (docs/speed.md).
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Params are etcd_units's options.
type Params struct {
	Name  []string `arg:"name" required:"true"`
	State string   `arg:"state" required:"true" choices:"started,stopped"`
	// Settle is how long a started unit must then stay active in the same activation: a unit that crashes
	// and is restarted by systemd is active at moments.
	Settle time.Duration `arg:"settle" default:"3s"`
	// Timeout bounds the whole task. Generous by default: systemd's own TimeoutStartSec and TimeoutStopSec
	// (an OpenShift master API may take minutes) end a job first, as they did for ansible.builtin.systemd.
	Timeout time.Duration `arg:"timeout" default:"10m"`
	// Marker, with state stopped, is a file created before this run stops a unit and left for the caller:
	// a record, for a run killed right after, that it was this caller who stopped it (etcd_backup's under /run).
	Marker string `arg:"marker" type:"path"`
	// NoBlock queues the jobs and returns without waiting for them (systemctl --no-block): for units that
	// only finish starting together, as etcd members do (each waits for a quorum). Nothing is checked.
	NoBlock bool `arg:"no_block" default:"false"`

	units []string // Name as full unit names, in order, once each
}

// maxSettle bounds settle: a longer wait is a typo (3000 for 3s), not a check.
const maxSettle = 10 * time.Minute

// Validate rejects input that cannot mean anything, naming the option and the fix.
func (p *Params) Validate() error {
	if len(p.Name) == 0 {
		return &module.ParamError{Param: "name", Msg: "name at least one unit, e.g. [atomic-openshift-master-api, " +
			"atomic-openshift-master-controllers] or etcd"}
	}
	p.units = p.units[:0]
	for _, n := range p.Name {
		u, err := systemd.UnitName(strings.TrimSpace(n))
		if err != nil {
			return &module.ParamError{Param: "name", Msg: err.Error()}
		}
		if !slices.Contains(p.units, u) {
			p.units = append(p.units, u)
		}
	}
	if p.Settle < 0 || p.Settle > maxSettle {
		return &module.ParamError{Param: "settle", Msg: fmt.Sprintf("must be between 0s and %s, got %s; e.g. 3s "+
			"(0s: no second look)", maxSettle, p.Settle)}
	}
	if p.Timeout <= 0 {
		return &module.ParamError{Param: "timeout", Msg: fmt.Sprintf("must be positive, got %s; e.g. 10m", p.Timeout)}
	}
	if p.Marker != "" && (p.State != "stopped" || !filepath.IsAbs(p.Marker)) {
		return &module.ParamError{Param: "marker", Msg: fmt.Sprintf("%q: an absolute path, with state stopped only, "+
			"e.g. /run/etcdops-backup-stopped-etcd.service", p.Marker)}
	}
	if p.State == "started" && p.Settle >= p.Timeout {
		return &module.ParamError{Param: "settle", Msg: fmt.Sprintf("%s does not fit in timeout %s (the whole task): "+
			"shorten settle or raise timeout", p.Settle, p.Timeout)}
	}
	return nil
}

// Units is what Run needs of systemd; *systemd.Conn implements it.
type Units interface {
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Unit(ctx context.Context, unit string) (systemd.UnitInfo, error)
	Enqueue(ctx context.Context, verb, unit string) error
}

// Unit is one unit's outcome.
type Unit struct {
	Name        string `json:"name"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	Changed     bool   `json:"changed"`
	// When the unit last became active and last left it, in seconds since the epoch (absent when never):
	// after a stop and a start, a consumer's outage is ActiveEnterTime - ActiveExitTime.
	ActiveEnterTime float64 `json:"active_enter_time,omitempty"`
	ActiveExitTime  float64 `json:"active_exit_time,omitempty"`
}

// Result is what the module returns: every unit named, in order, as the run left it (in check mode, as
// it found it).
type Result struct {
	Units []Unit `json:"units"`
}

// poll is how often a starting unit is looked at until it is active.
const poll = 250 * time.Millisecond

// Run brings every unit to p.State. Every unit is read first: a unit this host does not have fails the
// run before any job. Stopped: each running unit is stopped in order, p.Marker written before each stop.
// Started: each inactive unit is started in order, then every unit must be active within the timeout and,
// p.Settle later, still active in the same activation. With p.NoBlock the jobs are only queued, and
// nothing after them is waited for or checked. In check mode nothing is started, stopped or waited for.
func Run(ctx context.Context, t *module.Task, p Params, u Units) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	res := Result{Units: make([]Unit, len(p.units))}
	infos := make([]systemd.UnitInfo, len(p.units))
	for i, name := range p.units {
		info, err := u.Unit(ctx, name)
		if err != nil {
			return res, err
		}
		if !info.Loaded() {
			return res, &module.ParamError{Param: "name", Msg: fmt.Sprintf("%s is %s on this host (LoadState), "+
				"nothing was started or stopped; name the units this host runs", name, info.LoadState)}
		}
		infos[i] = info
		res.Units[i] = unitOf(info)
	}
	for i, name := range p.units {
		var act func(context.Context, string) error
		var verb string
		switch {
		case p.State == "stopped" && !stopped(infos[i]):
			act, verb = u.Stop, "stop"
		case p.State == "started" && infos[i].ActiveState != "active":
			act, verb = u.Start, "start"
		default:
			continue
		}
		t.Changed()
		res.Units[i].Changed = true
		if t.CheckMode {
			continue
		}
		if verb == "stop" && p.Marker != "" {
			if err := os.WriteFile(p.Marker, nil, 0o600); err != nil {
				return res, fmt.Errorf("marker: %w (%s was not stopped)", err, name)
			}
		}
		if p.NoBlock {
			act = func(ctx context.Context, unit string) error { return u.Enqueue(ctx, verb, unit) }
		}
		if err := act(ctx, name); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return res, fmt.Errorf("%s: its %s job did not end within timeout %s (systemd may still be running it; "+
					"see journalctl -u %s): raise timeout, or find what holds the unit", name, verb, p.Timeout, name)
			}
			return res, err
		}
		info, err := u.Unit(ctx, name)
		if err != nil {
			return res, err
		}
		infos[i] = info
		res.Units[i] = withChanged(info, true)
	}
	if p.State == "stopped" || t.CheckMode || p.NoBlock {
		return res, nil
	}
	return res, keepRunning(ctx, p, u, infos, &res)
}

// keepRunning waits until every unit is active, then requires each still active in the same activation
// p.Settle later.
func keepRunning(ctx context.Context, p Params, u Units, infos []systemd.UnitInfo, res *Result) error {
	for i, name := range p.units {
		for infos[i].ActiveState != "active" {
			if infos[i].ActiveState == "failed" || infos[i].ActiveState == "inactive" {
				return fmt.Errorf("%s did not keep running after its start: ActiveState=%s (see journalctl -u %s)",
					name, infos[i].ActiveState, name)
			}
			if err := sleep(ctx, poll); err != nil {
				return fmt.Errorf("%s is not active within timeout %s: ActiveState=%s (see journalctl -u %s)",
					name, p.Timeout, infos[i].ActiveState, name)
			}
			info, err := u.Unit(ctx, name)
			if err != nil {
				return err
			}
			infos[i] = info
			res.Units[i] = withChanged(info, res.Units[i].Changed)
		}
	}
	if p.Settle == 0 {
		return nil
	}
	if err := sleep(ctx, p.Settle); err != nil {
		return fmt.Errorf("settle %s does not fit in timeout %s: raise timeout", p.Settle, p.Timeout)
	}
	for i, name := range p.units {
		info, err := u.Unit(ctx, name)
		if err != nil {
			return err
		}
		res.Units[i] = withChanged(info, res.Units[i].Changed)
		if info.ActiveState != "active" || info.ActiveEnter != infos[i].ActiveEnter {
			return fmt.Errorf("%s did not keep running: %s after its start it is %s, %s (see journalctl -u %s)",
				name, p.Settle, info.ActiveState, restartedOr(info, infos[i]), name)
		}
	}
	return nil
}

// restartedOr says whether the unit was activated again in between.
func restartedOr(now, then systemd.UnitInfo) string {
	if now.ActiveEnter != then.ActiveEnter {
		return "activated again in between (systemd restarted it)"
	}
	return "no longer in the activation seen"
}

func stopped(u systemd.UnitInfo) bool {
	return u.ActiveState == "inactive" || u.ActiveState == "failed"
}

func unitOf(u systemd.UnitInfo) Unit {
	return Unit{Name: u.Name, ActiveState: u.ActiveState, SubState: u.SubState,
		ActiveEnterTime: seconds(u.ActiveEnterTime), ActiveExitTime: seconds(u.ActiveExitTime)}
}

// seconds is t in seconds since the epoch, 0 for the zero time.
func seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro()) / 1e6
}

func withChanged(u systemd.UnitInfo, changed bool) Unit {
	out := unitOf(u)
	out.Changed = changed
	return out
}

// sleep waits d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
