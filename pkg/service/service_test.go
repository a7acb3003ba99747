package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// fakeUnits is systemd as Run sees it: units by name; a start activates a unit (a crashing one is
// activated again on every read, as systemd's Restart= would); jobs are recorded.
type fakeUnits struct {
	units    map[string]*systemd.UnitInfo
	crashing map[string]bool
	jobs     []string
	fail     error
	block    bool // Start waits for the context to end
}

func newFake(states map[string]string) *fakeUnits {
	f := &fakeUnits{units: map[string]*systemd.UnitInfo{}, crashing: map[string]bool{}}
	for name, state := range states {
		load := "loaded"
		if state == "not-found" {
			load, state = state, "inactive"
		}
		f.units[name] = &systemd.UnitInfo{Name: name, LoadState: load, ActiveState: state, ActiveEnter: 1}
	}
	return f
}

func (f *fakeUnits) Start(ctx context.Context, unit string) error {
	f.jobs = append(f.jobs, "start "+unit)
	if f.block { // systemd's answer never comes, as pkg/systemd reports it
		<-ctx.Done()
		return fmt.Errorf("start %s: no job result from systemd: %w", unit, ctx.Err())
	}
	if f.fail != nil {
		return f.fail
	}
	f.units[unit].ActiveState, f.units[unit].ActiveEnter = "active", f.units[unit].ActiveEnter+1
	f.units[unit].ActiveEnterTime = time.Now()
	return nil
}

func (f *fakeUnits) Stop(_ context.Context, unit string) error {
	f.jobs = append(f.jobs, "stop "+unit)
	f.units[unit].ActiveState, f.units[unit].ActiveExitTime = "inactive", time.Now()
	return nil
}

// Enqueue records the job and leaves the unit as it was: systemd has not run it yet.
func (f *fakeUnits) Enqueue(_ context.Context, verb, unit string) error {
	f.jobs = append(f.jobs, "queue "+verb+" "+unit)
	return nil
}

func (f *fakeUnits) Unit(_ context.Context, unit string) (systemd.UnitInfo, error) {
	u, ok := f.units[unit]
	if !ok {
		return systemd.UnitInfo{Name: unit, LoadState: "not-found", ActiveState: "inactive"}, nil
	}
	if f.crashing[unit] && u.ActiveState == "active" {
		u.ActiveEnter++
	}
	return *u, nil
}

func params(t *testing.T, state string, names ...string) Params {
	t.Helper()
	p := Params{Name: names, State: state, Settle: 10 * time.Millisecond, Timeout: 5 * time.Second}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartsWhatIsStoppedAndChecksAll(t *testing.T) {
	f := newFake(map[string]string{"api.service": "inactive", "ctl.service": "active"})
	task := &module.Task{}
	res, err := Run(context.Background(), task, params(t, "started", "api", "ctl.service", "api"), f)
	if err != nil {
		t.Fatal(err)
	}
	if !task.IsChanged() || strings.Join(f.jobs, ",") != "start api.service" {
		t.Errorf("changed %v, jobs %v: want only api started", task.IsChanged(), f.jobs)
	}
	if len(res.Units) != 2 || !res.Units[0].Changed || res.Units[1].Changed || res.Units[0].ActiveState != "active" {
		t.Errorf("units %+v", res.Units)
	}

	// Again: nothing to start, still checked.
	f.jobs, task = nil, &module.Task{}
	if _, err := Run(context.Background(), task, params(t, "started", "api", "ctl"), f); err != nil || task.IsChanged() || f.jobs != nil {
		t.Errorf("second run: err %v, changed %v, jobs %v", err, task.IsChanged(), f.jobs)
	}
}

func TestStopsWhatRuns(t *testing.T) {
	f := newFake(map[string]string{"api.service": "active", "ctl.service": "failed"})
	task := &module.Task{}
	res, err := Run(context.Background(), task, params(t, "stopped", "api", "ctl"), f)
	if err != nil || !task.IsChanged() || strings.Join(f.jobs, ",") != "stop api.service" {
		t.Fatalf("err %v, changed %v, jobs %v", err, task.IsChanged(), f.jobs)
	}
	if res.Units[0].ActiveState != "inactive" || !res.Units[0].Changed || res.Units[1].Changed {
		t.Errorf("units %+v", res.Units)
	}
}

// The stop's exit and the start's enter come back with the units: a consumer's outage, as systemd saw it.
func TestStopThenStartGivesTheOutage(t *testing.T) {
	f := newFake(map[string]string{"api.service": "active"})
	before := float64(time.Now().UnixMicro()) / 1e6
	stopped, err := Run(context.Background(), &module.Task{}, params(t, "stopped", "api"), f)
	if err != nil {
		t.Fatal(err)
	}
	started, err := Run(context.Background(), &module.Task{}, params(t, "started", "api"), f)
	if err != nil {
		t.Fatal(err)
	}
	exit, enter := stopped.Units[0].ActiveExitTime, started.Units[0].ActiveEnterTime
	if exit < before || enter < exit || started.Units[0].ActiveExitTime != exit {
		t.Errorf("exit %f (at or after %f), enter %f, exit after the start %f: want before <= exit <= enter, the exit kept",
			exit, before, enter, started.Units[0].ActiveExitTime)
	}
}

// The marker is written before a unit is stopped, only then, and never in check mode.
func TestStopWritesTheMarker(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "stopped")
	p := params(t, "stopped", "api")
	p.Marker = marker
	f := newFake(map[string]string{"api.service": "inactive"})
	if _, err := Run(context.Background(), &module.Task{}, p, f); err != nil {
		t.Fatal(err)
	}
	f.units["api.service"].ActiveState = "active"
	if _, err := Run(context.Background(), &module.Task{CheckMode: true}, p, f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("marker after no stop and a check-mode run: %v, want none", err)
	}
	if _, err := Run(context.Background(), &module.Task{}, p, f); err != nil || strings.Join(f.jobs, ",") != "stop api.service" {
		t.Fatalf("err %v, jobs %v", err, f.jobs)
	}
	if st, err := os.Stat(marker); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("marker after the stop: %v %v, want a 0600 file", st, err)
	}

	// Unwritable: the unit is not stopped.
	p.Marker, f = filepath.Join(marker, "under-a-file"), newFake(map[string]string{"api.service": "active"})
	if _, err := Run(context.Background(), &module.Task{}, p, f); err == nil ||
		!strings.Contains(err.Error(), "api.service was not stopped") || f.jobs != nil {
		t.Errorf("unwritable marker: err %v, jobs %v", err, f.jobs)
	}
}

// no_block queues the jobs and checks nothing: a unit still inactive after its start is no failure.
func TestNoBlockQueuesOnly(t *testing.T) {
	f := newFake(map[string]string{"etcd.service": "inactive", "ctl.service": "active"})
	p := params(t, "started", "etcd", "ctl")
	p.NoBlock = true
	task := &module.Task{}
	res, err := Run(context.Background(), task, p, f)
	if err != nil || !task.IsChanged() || strings.Join(f.jobs, ",") != "queue start etcd.service" {
		t.Fatalf("err %v, changed %v, jobs %v", err, task.IsChanged(), f.jobs)
	}
	if !res.Units[0].Changed || res.Units[0].ActiveState != "inactive" || res.Units[1].Changed {
		t.Errorf("units %+v", res.Units)
	}
}

func TestCheckModeActsOnNothing(t *testing.T) {
	f := newFake(map[string]string{"api.service": "inactive"})
	f.crashing["api.service"] = true
	task := &module.Task{CheckMode: true}
	res, err := Run(context.Background(), task, params(t, "started", "api"), f)
	if err != nil || !task.IsChanged() || f.jobs != nil || !res.Units[0].Changed || res.Units[0].ActiveState != "inactive" {
		t.Errorf("err %v, changed %v, jobs %v, units %+v", err, task.IsChanged(), f.jobs, res.Units)
	}
}

// A unit systemd keeps restarting is active at moments: the second look finds another activation.
func TestRestartedUnitFails(t *testing.T) {
	f := newFake(map[string]string{"api.service": "active", "ctl.service": "inactive"})
	f.crashing["ctl.service"] = true
	task := &module.Task{}
	_, err := Run(context.Background(), task, params(t, "started", "api", "ctl"), f)
	if err == nil || !strings.Contains(err.Error(), "ctl.service did not keep running") ||
		!strings.Contains(err.Error(), "activated again") || !task.IsChanged() {
		t.Errorf("err %v, changed %v", err, task.IsChanged())
	}
}

func TestFailedStartAndMissingUnit(t *testing.T) {
	f := newFake(map[string]string{"api.service": "inactive", "ctl.service": "not-found"})
	_, err := Run(context.Background(), &module.Task{}, params(t, "started", "api", "ctl"), f)
	var pe *module.ParamError
	if !errors.As(err, &pe) || pe.Param != "name" || !strings.Contains(err.Error(), "ctl.service is not-found") || f.jobs != nil {
		t.Errorf("a missing unit: err %v, jobs %v (want refused before any job)", err, f.jobs)
	}

	f = newFake(map[string]string{"api.service": "inactive"})
	f.fail = &systemd.JobError{Verb: "start", Unit: "api.service", Result: "failed"}
	if _, err := Run(context.Background(), &module.Task{}, params(t, "started", "api"), f); err == nil ||
		!strings.Contains(err.Error(), "journalctl -u api.service") {
		t.Errorf("a failed start job: %v", err)
	}
}

// A job that outlives timeout names the option to raise (systemd may still be running it).
func TestJobPastTimeout(t *testing.T) {
	f := newFake(map[string]string{"api.service": "inactive"})
	f.block = true
	p := params(t, "started", "api")
	p.Timeout = 100 * time.Millisecond
	if _, err := Run(context.Background(), &module.Task{}, p, f); err == nil ||
		!strings.Contains(err.Error(), "api.service: its start job did not end within timeout 100ms") ||
		!strings.Contains(err.Error(), "raise timeout") {
		t.Errorf("a start job past the timeout: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		p     Params
		param string
	}{
		{Params{State: "started", Timeout: time.Second}, "name"},
		{Params{Name: []string{"../../tmp/x"}, State: "started", Timeout: time.Second}, "name"},
		{Params{Name: []string{"origin-master-*"}, State: "stopped", Timeout: time.Second}, "name"},
		{Params{Name: []string{"etcd"}, State: "started", Settle: -time.Second, Timeout: time.Second}, "settle"},
		{Params{Name: []string{"etcd"}, State: "started", Settle: time.Hour, Timeout: time.Second}, "settle"},
		{Params{Name: []string{"etcd"}, State: "started"}, "timeout"},
		{Params{Name: []string{"etcd"}, State: "started", Settle: time.Minute, Timeout: time.Minute}, "settle"},
		{Params{Name: []string{"etcd"}, State: "stopped", Timeout: time.Minute, Marker: "run/x"}, "marker"},
		{Params{Name: []string{"etcd"}, State: "started", Timeout: time.Minute, Marker: "/run/x"}, "marker"},
	} {
		var pe *module.ParamError
		if err := c.p.Validate(); !errors.As(err, &pe) || pe.Param != c.param {
			t.Errorf("%+v: %v, want a ParamError naming %s", c.p, err, c.param)
		}
	}
}
