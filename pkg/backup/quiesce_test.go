package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// units is systemd as StopUnit sees it: one unit, active or not; each call is logged with whether the
// marker existed at that moment.
type units struct {
	active bool
	marker string
	log    []string
	fail   error
}

func (u *units) note(verb string) {
	_, err := os.Stat(u.marker)
	u.log = append(u.log, verb+map[bool]string{true: " (marked)", false: ""}[err == nil])
}
func (u *units) Active(context.Context, string) (bool, error) { return u.active, nil }
func (u *units) Stop(context.Context, string) error {
	u.note("stop")
	u.active = false
	return u.fail
}
func (u *units) Start(context.Context, string) error {
	u.note("start")
	u.active = true
	return nil
}
func (u *units) Restart(context.Context, string) error { return nil }
func (u *units) DaemonReload(context.Context) error    { return nil }

// The marker exists from before the stop until the member runs again; a member that was not running is
// neither stopped nor started nor marked.
func TestStopUnitMarksTheStoppedMember(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "stopped")
	u := &units{active: true, marker: marker}
	resume, err := StopUnit(u, "etcd.service", marker)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("stopped, no marker: %v", err)
	}
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) || !u.active {
		t.Fatalf("after the start: marker %v, active %v", err, u.active)
	}
	if got := fmt.Sprint(u.log); got != "[stop (marked) start (marked)]" {
		t.Errorf("calls %s", got)
	}

	idle := &units{marker: marker}
	resume, err = StopUnit(idle, "etcd.service", marker)(context.Background())
	if err != nil || resume() != nil || len(idle.log) != 0 {
		t.Fatalf("an inactive unit: %v %v", idle.log, err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("an inactive unit was marked: %v", err)
	}

	// A stop that fails leaves the marker: the member may be stopped, and lingering starts it.
	failing := &units{active: true, marker: marker, fail: errors.New("job failed")}
	if _, err := StopUnit(failing, "etcd.service", marker)(context.Background()); err == nil {
		t.Fatal("a failed stop passed")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("a failed stop removed the marker: %v", err)
	}
}
