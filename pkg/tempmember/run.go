package tempmember

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Systemd is what the module needs of systemd (*systemd.Conn).
type Systemd interface {
	Unit(ctx context.Context, unit string) (systemd.UnitInfo, error)
	StartTransient(ctx context.Context, unit string, props []systemd.Property) error
	Stop(ctx context.Context, unit string) error
	ResetFailed(ctx context.Context, unit string) error
}

// Result is what the module returns.
type Result struct {
	Unit      string   `json:"unit"`
	Active    bool     `json:"active"`
	MainPID   int      `json:"main_pid"`
	ClientURL string   `json:"client_url"`
	PeerURL   string   `json:"peer_url"`
	DataDir   string   `json:"data_dir"`
	MemberID  string   `json:"member_id"`
	Version   string   `json:"version"`
	Command   []string `json:"command"`
	Msg       string   `json:"msg"`
}

// Run brings the instance to p.State.
func Run(ctx context.Context, t *module.Task, p Params, sd Systemd) (Result, error) {
	r := Result{Unit: p.unit, ClientURL: p.ClientURL, PeerURL: p.PeerURL, DataDir: p.DataDir, Command: []string{}}
	u, err := sd.Unit(ctx, p.unit)
	if err != nil {
		return r, err
	}
	if u.Loaded() && !u.Transient {
		return r, perr("unit", "%s is a unit from a file, not a transient unit this module started; it is left alone "+
			"- choose another unit name, e.g. etcdops-temp-etcd.service", p.unit)
	}
	if len(u.ExecStart) > 0 {
		r.Command = u.ExecStart[0]
	}
	if p.State == "stopped" {
		return stop(ctx, t, p, sd, u, r)
	}
	return start(ctx, t, p, sd, u, r)
}

func stop(ctx context.Context, t *module.Task, p Params, sd Systemd, u systemd.UnitInfo, r Result) (Result, error) {
	if !u.Loaded() {
		r.Msg = p.unit + " is not loaded (not running); nothing to stop; the data dir is kept"
		return r, nil
	}
	t.Changed()
	if t.CheckMode {
		r.Active, r.MainPID = u.Running(), int(u.MainPID)
		r.Msg = fmt.Sprintf("would stop %s (%s); the data dir is kept", p.unit, u.ActiveState)
		return r, nil
	}
	if u.ActiveState != "failed" {
		if err := sd.Stop(ctx, p.unit); err != nil {
			return r, err
		}
	}
	if after, err := sd.Unit(ctx, p.unit); err == nil && after.Loaded() {
		// A failed transient unit stays loaded until its failed state is reset.
		if err := sd.ResetFailed(ctx, p.unit); err != nil {
			return r, err
		}
	}
	r.Msg = fmt.Sprintf("stopped %s (was %s); the data dir %s is kept", p.unit, u.ActiveState, p.DataDir)
	return r, nil
}

func start(ctx context.Context, t *module.Task, p Params, sd Systemd, u systemd.UnitInfo, r Result) (Result, error) {
	svc, err := sd.Unit(ctx, p.service)
	if err != nil {
		return r, err
	}
	binary, err := etcdBinary(t, p, svc)
	if err != nil {
		return r, err
	}
	cmd := p.Command(binary)
	runAs := ""
	if svc.Loaded() {
		runAs = svc.User
	}
	if u.Running() {
		if !slices.Equal(r.Command, cmd) || u.User != runAs {
			diff := argDiff(r.Command, cmd)
			if u.User != runAs {
				diff = append(diff, fmt.Sprintf("user %q, asked %q", u.User, runAs))
			}
			return r, fmt.Errorf("%s already runs a temporary member with other settings (%s); stop it first with "+
				"state: stopped (its data dir is kept), then start it again", p.unit, strings.Join(diff, "; "))
		}
		r.Active, r.MainPID = true, int(u.MainPID)
		if err := r.waitHealthy(ctx, p, sd, nil); err != nil {
			return r, fmt.Errorf("%s runs with these settings but does not answer: %w", p.unit, err)
		}
		r.Msg = fmt.Sprintf("%s already runs with these settings (pid %d)", p.unit, u.MainPID)
		return r, nil
	}
	r.Command = cmd
	for param, raw := range map[string]string{"client_url": p.ClientURL, "peer_url": p.PeerURL} {
		if err := portFree(param, raw); err != nil {
			return r, err
		}
	}
	uid, gid, err := ids(svc.User, svc.Group, runAs)
	if err != nil {
		return r, err
	}
	t.Changed()
	if t.CheckMode {
		r.Msg = fmt.Sprintf("would start %s as a transient unit (as user %q) with data dir %s", p.unit, runAs, p.DataDir)
		return r, nil
	}
	if u.Loaded() { // failed, or on its way down
		if err := sd.ResetFailed(ctx, p.unit); err != nil {
			return r, err
		}
	}
	if err := dataDir(p.DataDir, uid, gid); err != nil {
		return r, err
	}
	props := []systemd.Property{
		systemd.Prop("Description", "etcdops.etcd temporary etcd member "+p.Name+" (etcd_temp_member)"),
		systemd.Prop("Type", "simple"),
		systemd.PropExecStart(cmd),
		systemd.Prop("Restart", "no"),
		systemd.Prop("LimitNOFILE", uint64(65536)),
	}
	if runAs != "" {
		props = append(props, systemd.Prop("User", runAs))
	}
	if svc.Loaded() && svc.Group != "" {
		props = append(props, systemd.Prop("Group", svc.Group))
	}
	if err := sd.StartTransient(ctx, p.unit, props); err != nil {
		return r, fmt.Errorf("%w%s", err, journal(p.unit, ""))
	}
	invocation := ""
	if now, err := sd.Unit(ctx, p.unit); err == nil {
		invocation = now.InvocationID
	}
	if err := r.waitHealthy(ctx, p, sd, func() error { return gone(ctx, sd, p.unit) }); err != nil {
		stopErr := sd.Stop(context.Background(), p.unit)
		if after, e := sd.Unit(context.Background(), p.unit); e == nil && after.Loaded() {
			_ = sd.ResetFailed(context.Background(), p.unit)
		}
		msg := fmt.Sprintf("%s did not become healthy: %v; it was stopped", p.unit, err)
		if stopErr != nil && !strings.Contains(stopErr.Error(), "not loaded") {
			msg += fmt.Sprintf(" (stopping it: %v)", stopErr)
		}
		return r, &module.Error{Err: errors.New(msg + journal(p.unit, invocation)), Result: r}
	}
	after, err := sd.Unit(ctx, p.unit)
	if err != nil {
		return r, err
	}
	r.Active, r.MainPID = after.Running(), int(after.MainPID)
	r.Msg = fmt.Sprintf("started %s (pid %d) with data dir %s", p.unit, after.MainPID, p.DataDir)
	return r, nil
}

// argDiff lists what differs between the running and the asked command line, flag by flag
// ("--name etcdops-temp, asked other-temp").
func argDiff(running, asked []string) []string {
	flags := func(argv []string) ([]string, map[string]string) {
		var order []string
		m := map[string]string{}
		add := func(k, v string) {
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = v
		}
		if len(argv) > 0 {
			add("binary", argv[0])
		}
		for i := 1; i < len(argv); i++ {
			k, v, hasValue := strings.Cut(argv[i], "=")
			if !hasValue && strings.HasPrefix(k, "--") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
				v, i = argv[i+1], i+1
			}
			add(k, v)
		}
		return order, m
	}
	runOrder, run := flags(running)
	askOrder, ask := flags(asked)
	var out []string
	for _, k := range askOrder {
		if rv, ok := run[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s not set, asked", k, ask[k]))
		} else if rv != ask[k] {
			out = append(out, fmt.Sprintf("%s %s, asked %s", k, rv, ask[k]))
		}
	}
	for _, k := range runOrder {
		if _, ok := ask[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s set, not asked", k, run[k]))
		}
	}
	return out
}

// gone reports an error once the unit is no longer running (etcd exited), so a failed start does not
// wait for the whole timeout.
func gone(ctx context.Context, sd Systemd, unit string) error {
	u, err := sd.Unit(ctx, unit)
	if err != nil {
		return err
	}
	if !u.Running() {
		return fmt.Errorf("etcd exited (unit %s, %s)", u.ActiveState, u.SubState)
	}
	return nil
}

// etcdBinary is binary, else the etcd that the host's unit runs, else etcd on PATH.
func etcdBinary(t *module.Task, p Params, svc systemd.UnitInfo) (string, error) {
	if p.Binary != "" {
		return p.Binary, nil
	}
	if svc.Loaded() && len(svc.ExecStart) > 0 {
		argv := svc.ExecStart[0]
		if strings.HasPrefix(filepath.Base(argv[0]), "etcd") {
			return argv[0], nil
		}
		// e.g. ExecStart=/bin/bash -c "GOMAXPROCS=$(nproc) /usr/bin/etcd ..." (openshift-ansible)
		for _, arg := range argv[1:] {
			for _, w := range strings.Fields(arg) {
				if filepath.IsAbs(w) && filepath.Base(w) == "etcd" {
					return w, nil
				}
			}
		}
		t.Warn("%s runs %s, not an etcd binary; using etcd from PATH (set binary to choose)", p.service, argv[0])
	}
	for _, cand := range []string{"etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"} {
		if path, err := exec.LookPath(cand); err == nil {
			abs, _ := filepath.Abs(path)
			return abs, nil
		}
	}
	return "", perr("binary", "no etcd binary: %s is not loaded or runs no etcd binary, and etcd is not on PATH; "+
		"set binary to the etcd binary's path", p.service)
}

// ids resolves the user (and group) the instance runs as; root when the host unit names none.
func ids(userName, group, runAs string) (int, int, error) {
	if runAs == "" {
		return 0, 0, nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return 0, 0, perr("service", "its unit runs as user %q, which cannot be looked up: %v", userName, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, perr("service", "its unit runs as group %q, which cannot be looked up: %v", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

// dataDir creates the data dir (0700, owned by the instance's user) or makes an existing one so; its
// contents are kept (a non-empty dir is how a re-run resumes).
func dataDir(path string, uid, gid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return perr("data_dir", "%s exists and is not a directory; give a directory path", path)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// portFree tells a port something else listens on (the host member's 2379/2380, usually) from one
// that is free, before etcd fails on it.
func portFree(param, raw string) error {
	u, _ := url.Parse(raw)
	ln, err := net.Listen("tcp", u.Host)
	if err == nil {
		return ln.Close()
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return perr(param, "%s: port %s is in use on this host (the host's etcd member listens on 2379/2380); "+
			"choose a free port, e.g. 3000 for clients and 2999 for peers", raw, u.Port())
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return perr(param, "%s: this host has no address %s; use one of its own addresses", raw, u.Hostname())
	}
	return perr(param, "%s: cannot listen there: %v", raw, err)
}

// waitHealthy waits until the instance answers a v3 status and a linearizable read (and, with v2, a
// GET /v2/keys), filling member_id and version. check, when set, fails the wait early.
func (r *Result) waitHealthy(ctx context.Context, p Params, sd Systemd, check func() error) error {
	o := etcdconn.Options{Endpoints: []string{p.ClientURL}, CACert: p.CACert, ClientCert: p.ClientCert,
		ClientKey: p.ClientKey, DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second}
	deadline := time.Now().Add(p.Timeout)
	for {
		err := r.health(ctx, o, p.EnableV2)
		if err == nil {
			return nil
		}
		if check != nil {
			if cErr := check(); cErr != nil {
				return fmt.Errorf("%v (last check: %v)", cErr, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy answer from %s within %s: %w", p.ClientURL, p.Timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (r *Result) health(ctx context.Context, o etcdconn.Options, v2 bool) error {
	ep := o.Endpoints[0]
	cli, err := o.V3Single(ep)
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := o.Ctx(ctx)
	defer cancel()
	st, err := cli.Status(cctx, ep)
	if err != nil {
		return o.Explain(ep, err)
	}
	if _, err := cli.Get(cctx, "etcdops-temp-member-probe"); err != nil {
		return o.Explain(ep, err)
	}
	r.MemberID, r.Version = fmt.Sprintf("%x", st.Header.MemberId), st.Version
	if !v2 {
		return nil
	}
	tr, err := o.V2Transport()
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, ep+"/v2/keys", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return o.Explain(ep, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/v2/keys: %s (is the v2 API on? etcd 3.6 has none: set enable_v2=false)", ep, resp.Status)
	}
	return nil
}

// journal returns the last log lines of this run of the unit (its invocation; else of the unit), or
// "" when journalctl has none to give quickly.
func journal(unit, invocation string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	args := []string{"--no-pager", "-o", "cat", "-n", "20", "-u", unit}
	if invocation != "" {
		// etcd's own lines, and systemd's about this run of the unit.
		args = []string{"--no-pager", "-o", "cat", "-n", "20", "_SYSTEMD_INVOCATION_ID=" + invocation, "+", "INVOCATION_ID=" + invocation}
	}
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 || strings.HasPrefix(string(out), "-- No entries") {
		return ""
	}
	return "; last log lines of " + unit + ":\n" + strings.TrimSpace(string(out))
}
