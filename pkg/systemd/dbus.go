package systemd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Units is what a module needs of systemd to stop, start and restart a unit around its work; *Conn
// implements it, tests substitute a stand-in.
type Units interface {
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	DaemonReload(ctx context.Context) error
	Active(ctx context.Context, unit string) (bool, error)
}

// Conn talks to the host's systemd over D-Bus. It connects on first use (so a module that needs no
// systemd on this run never dials) and again when systemd dropped the connection. Close it when done.
type Conn struct {
	mu sync.Mutex
	c  *sd.Conn
}

var _ Units = (*Conn)(nil)

// New returns a Conn that connects on first use.
func New() *Conn { return &Conn{} }

// Close closes the connection, if one was made.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// ErrNoSystemd is a connection that neither systemd's private socket nor the system bus gave.
var ErrNoSystemd = errors.New("cannot reach systemd")

// conn returns a live connection: systemd's private socket (/run/systemd/private, root only, no dbus
// daemon needed), else the system bus.
func (c *Conn) conn(ctx context.Context) (*sd.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && c.c.Connected() {
		return c.c, nil
	}
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		var busErr error
		if conn, busErr = sd.NewSystemConnectionContext(ctx); busErr != nil {
			return nil, fmt.Errorf("%w: private socket /run/systemd/private: %v; system bus: %v "+
				"(is this host run by systemd, and does the module run as root?)", ErrNoSystemd, err, busErr)
		}
	}
	c.c = conn
	return conn, nil
}

// jobResults explains systemd's job results other than "done" (org.freedesktop.systemd1 JobRemoved).
var jobResults = map[string]string{
	"canceled":    "the job was canceled before it finished",
	"timeout":     "the job timed out",
	"failed":      "the job failed",
	"dependency":  "a unit it depends on failed",
	"skipped":     "the job was skipped: a condition of the unit was not met",
	"invalid":     "the job is not applicable to the unit",
	"assert":      "an assertion of the unit failed",
	"unsupported": "the unit type does not support the job",
	"collected":   "the job was garbage-collected",
	"once":        "the unit may only be started once",
}

// JobError is a systemd job that ended with a result other than "done".
type JobError struct {
	Verb, Unit, Result string
}

func (e *JobError) Error() string {
	why := jobResults[e.Result]
	if why == "" {
		why = "unknown result"
	}
	return fmt.Sprintf("%s %s: systemd job result %q: %s (see journalctl -u %s)", e.Verb, e.Unit, e.Result, why, e.Unit)
}

type jobFunc func(ctx context.Context, c *sd.Conn, ch chan<- string) (int, error)

// job enqueues a job and waits for its result: nil only for "done".
func (c *Conn) job(ctx context.Context, verb, unit string, enqueue jobFunc) error {
	conn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	// Buffered: go-systemd's dispatcher must never block on a result nobody reads (ctx ended).
	ch := make(chan string, 1)
	if _, err := enqueue(ctx, conn, ch); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, busError(err))
	}
	select {
	case res := <-ch:
		if res != "done" {
			return &JobError{Verb: verb, Unit: unit, Result: res}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: no job result from systemd: %w", verb, unit, ctx.Err())
	}
}

// busError unwraps a D-Bus error to systemd's own message (e.g. "Unit etcd.service not loaded.").
func busError(err error) error {
	var be godbus.Error
	if errors.As(err, &be) && len(be.Body) > 0 {
		if msg, ok := be.Body[0].(string); ok {
			return fmt.Errorf("%s (%s)", msg, be.Name)
		}
	}
	return err
}

// Start starts unit and waits for systemd's job result (mode "replace", as systemctl start).
func (c *Conn) Start(ctx context.Context, unit string) error {
	return c.job(ctx, "start", unit, func(ctx context.Context, conn *sd.Conn, ch chan<- string) (int, error) {
		return conn.StartUnitContext(ctx, unit, "replace", ch)
	})
}

// Stop stops unit and waits for the job result. A unit that is not loaded is an error (systemd's).
func (c *Conn) Stop(ctx context.Context, unit string) error {
	return c.job(ctx, "stop", unit, func(ctx context.Context, conn *sd.Conn, ch chan<- string) (int, error) {
		return conn.StopUnitContext(ctx, unit, "replace", ch)
	})
}

// Enqueue queues a start or stop job for unit (mode "replace") and returns without waiting for its result
// (systemctl --no-block): for units that can only finish starting together, such as etcd members.
func (c *Conn) Enqueue(ctx context.Context, verb, unit string) error {
	conn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	enqueue := conn.StartUnitContext
	if verb == "stop" {
		enqueue = conn.StopUnitContext
	}
	if _, err := enqueue(ctx, unit, "replace", nil); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, busError(err))
	}
	return nil
}

// Restart restarts unit (starts it when stopped) and waits for the job result.
func (c *Conn) Restart(ctx context.Context, unit string) error {
	return c.job(ctx, "restart", unit, func(ctx context.Context, conn *sd.Conn, ch chan<- string) (int, error) {
		return conn.RestartUnitContext(ctx, unit, "replace", ch)
	})
}

// Property is one property of a transient unit (go-systemd's dbus.Property).
type Property = sd.Property

// Prop makes a property from a name and a value of the D-Bus type systemd expects for it
// (string, bool, uint64 for Limit*, []string for dependencies ...).
func Prop(name string, value any) Property {
	return Property{Name: name, Value: godbus.MakeVariant(value)}
}

// PropExecStart is the ExecStart of a transient service: argv[0] is the binary's path. A non-zero exit
// counts as a failure: go-systemd's second argument is systemd's "ignore failure" flag (the "-" prefix
// of ExecStart=), whatever its parameter name says.
func PropExecStart(argv []string) Property { return sd.PropExecStart(argv, false) }

// StartTransient creates and starts a transient unit (gone when it stops, or at reboot) with the given
// properties, and waits for the job result. systemd starts its processes: they are no child of the
// caller, nor part of its session.
func (c *Conn) StartTransient(ctx context.Context, unit string, props []Property) error {
	return c.job(ctx, "start transient unit", unit, func(ctx context.Context, conn *sd.Conn, ch chan<- string) (int, error) {
		return conn.StartTransientUnitContext(ctx, unit, "fail", props, ch)
	})
}

// ResetFailed resets a unit's failed state; a failed transient unit is then unloaded.
func (c *Conn) ResetFailed(ctx context.Context, unit string) error {
	conn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	if err := conn.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("reset-failed %s: %w", unit, busError(err))
	}
	return nil
}

// DaemonReload makes systemd reload its unit files and drop-ins (systemctl daemon-reload); systemd
// answers once the reload is done.
func (c *Conn) DaemonReload(ctx context.Context) error {
	conn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", busError(err))
	}
	return nil
}

// UnitInfo are the properties of a unit modules look at.
type UnitInfo struct {
	Name        string
	LoadState   string // loaded, not-found, masked, ...
	ActiveState string // active, activating, deactivating, inactive, failed, ...
	SubState    string // running, exited, dead, ...
	// ActiveEnter is when the unit last became active (ActiveEnterTimestampMonotonic, µs): a new value is a
	// new activation, e.g. a restart after a crash (systemd 219 of RHEL 7 has it, not NRestarts).
	ActiveEnter uint64
	// When the unit last became active and last left it (ActiveEnterTimestamp, ActiveExitTimestamp:
	// wall clock, zero when never): a consumer's outage is from the exit of its stop to the enter of its start.
	ActiveEnterTime, ActiveExitTime time.Time
	Transient                       bool
	Description                     string
	InvocationID                    string // hex; names this run of the unit in the journal (_SYSTEMD_INVOCATION_ID)
	ControlGroup                    string
	// Service properties (zero for other unit types).
	MainPID                uint32
	ExecMainStartTimestamp time.Time // zero when never started
	NRestarts              uint32
	ExecStart              [][]string // argv of each ExecStart= line
	User, Group            string
}

// Loaded reports whether systemd has the unit loaded (a unit that does not exist reads "not-found").
func (u UnitInfo) Loaded() bool { return u.LoadState == "loaded" }

// Running reports whether the unit is active or on its way (activating, reloading).
func (u UnitInfo) Running() bool {
	return u.ActiveState == "active" || u.ActiveState == "activating" || u.ActiveState == "reloading"
}

// Binary is the path of the first ExecStart= line's program ("" without one).
func (u UnitInfo) Binary() string {
	if len(u.ExecStart) == 0 || len(u.ExecStart[0]) == 0 {
		return ""
	}
	return u.ExecStart[0][0]
}

// Unit reads a unit's properties. A unit that does not exist is no error: its LoadState is not-found.
func (c *Conn) Unit(ctx context.Context, unit string) (UnitInfo, error) {
	conn, err := c.conn(ctx)
	if err != nil {
		return UnitInfo{}, err
	}
	u := UnitInfo{Name: unit}
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return u, fmt.Errorf("properties of %s: %w", unit, busError(err))
	}
	u.LoadState, _ = props["LoadState"].(string)
	u.ActiveState, _ = props["ActiveState"].(string)
	u.SubState, _ = props["SubState"].(string)
	u.ActiveEnter, _ = props["ActiveEnterTimestampMonotonic"].(uint64)
	u.ActiveEnterTime = wallClock(props["ActiveEnterTimestamp"])
	u.ActiveExitTime = wallClock(props["ActiveExitTimestamp"])
	u.Transient, _ = props["Transient"].(bool)
	u.Description, _ = props["Description"].(string)
	if id, ok := props["InvocationID"].([]byte); ok && len(id) > 0 {
		u.InvocationID = hex.EncodeToString(id)
	}
	if len(unit) > 8 && unit[len(unit)-8:] == ".service" && u.LoadState != "not-found" {
		svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
		if err != nil {
			return u, fmt.Errorf("service properties of %s: %w", unit, busError(err))
		}
		u.ControlGroup, _ = svc["ControlGroup"].(string)
		u.MainPID, _ = svc["MainPID"].(uint32)
		u.NRestarts, _ = svc["NRestarts"].(uint32)
		u.ExecMainStartTimestamp = wallClock(svc["ExecMainStartTimestamp"])
		u.User, _ = svc["User"].(string)
		u.Group, _ = svc["Group"].(string)
		u.ExecStart = execStarts(svc["ExecStart"])
	}
	return u, nil
}

// wallClock reads one of systemd's realtime timestamps (µs since the epoch); zero when never.
func wallClock(v any) time.Time {
	if us, ok := v.(uint64); ok && us > 0 {
		return time.UnixMicro(int64(us))
	}
	return time.Time{}
}

// execStarts decodes the ExecStart property, a(sasbttttuii): path, argv, ignore-failure, timestamps...
func execStarts(v any) [][]string {
	lines, _ := v.([][]any)
	var out [][]string
	for _, l := range lines {
		if len(l) < 2 {
			continue
		}
		path, _ := l[0].(string)
		argv, _ := l[1].([]string)
		if len(argv) == 0 {
			argv = []string{path}
		} else if path != "" {
			argv = append([]string{path}, argv[1:]...) // argv[0] may be a name; the path is what runs
		}
		out = append(out, argv)
	}
	return out
}

// Active reports whether the unit is active (systemctl is-active).
func (c *Conn) Active(ctx context.Context, unit string) (bool, error) {
	u, err := c.Unit(ctx, unit)
	if err != nil {
		return false, err
	}
	return u.ActiveState == "active", nil
}
