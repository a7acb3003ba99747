package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
	"github.com/etcdops/etcd/pkg/etcdconn"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// tempMember is etcd_temp_member's result.
type tempMember struct {
	Unit      string   `json:"unit"`
	Active    bool     `json:"active"`
	MainPID   int      `json:"main_pid"`
	ClientURL string   `json:"client_url"`
	DataDir   string   `json:"data_dir"`
	MemberID  string   `json:"member_id"`
	Version   string   `json:"version"`
	Command   []string `json:"command"`
	Msg       string   `json:"msg"`
}

// sdTask runs one task of module on host through ansible-playbook over SSH (ignore_errors, so a
// failure is returned, not fatal) and returns its result.
func sdTask(t testing.TB, l *lab.Lab, env map[string]string, host, module string, args map[string]any, check bool) lab.TaskResult {
	t.Helper()
	play := []map[string]any{{"hosts": host, "gather_facts": false, "tasks": []any{map[string]any{
		"name": "under test", "etcdops.etcd." + module: args, "check_mode": check, "ignore_errors": true}}}}
	b, _ := json.Marshal(play)
	path := filepath.Join(t.TempDir(), "play.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := l.Playbook(ctx, lab.Run{Playbook: path, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	found := res.Find("under test")
	if len(found) != 1 {
		t.Fatalf("%s: %d results\n%s", module, len(found), res.Raw)
	}
	t.Logf("%s check=%v: changed=%v failed=%v in %s: %v", module, check, found[0].Changed(), found[0].Failed(),
		res.Duration.Round(10*time.Millisecond), found[0].Values["msg"])
	return found[0]
}

// unitShow reads properties of a unit inside the host with systemctl show.
func unitShow(t *testing.T, l *lab.Lab, h *lab.Host, unit string, props ...string) map[string]string {
	t.Helper()
	out, err := l.Exec(h, "systemctl", "show", "-p", strings.Join(props, ","), unit)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// etcd_temp_member on a lab host, through ansible-playbook over SSH: check mode, start, start again,
// start with other settings (refused), bad input, a start that fails, stop, stop again.
func TestTempMember(t *testing.T) {
	l := lab.Up(t, lab.Spec{Hosts: 1})
	env := lab.EnvMap(ansibletest.Install(t))
	h := l.Members()[0]
	const unit, dataDir = "etcdops-temp-etcd.service", "/var/lib/etcd-migration"
	clientURL := "https://" + h.Addr + ":3000"
	args := func(extra ...any) map[string]any {
		a := map[string]any{
			"data_dir": dataDir, "client_url": clientURL, "peer_url": "https://" + h.Addr + ":2999",
			"cert_file": "/etc/etcd/server.crt", "key_file": "/etc/etcd/server.key", "trusted_ca_file": "/etc/etcd/ca.crt",
			"peer_cert_file": "/etc/etcd/peer.crt", "peer_key_file": "/etc/etcd/peer.key", "peer_trusted_ca_file": "/etc/etcd/ca.crt",
			"client_cert": "/etc/etcd/client.crt", "client_key": "/etc/etcd/client.key",
		}
		for i := 0; i < len(extra); i += 2 {
			a[extra[i].(string)] = extra[i+1]
		}
		return a
	}
	decode := func(r lab.TaskResult) tempMember {
		var tm tempMember
		if err := r.Decode(&tm); err != nil {
			t.Fatal(err)
		}
		return tm
	}
	notLoaded := func(when string) {
		if s := unitShow(t, l, h, unit, "LoadState"); s["LoadState"] != "not-found" {
			t.Fatalf("%s: %s is %v, want not loaded", when, unit, s)
		}
	}

	// Check mode: predicts a start, starts nothing, creates nothing.
	r := sdTask(t, l, env, h.Name, "etcd_temp_member", args(), true)
	if r.Failed() || !r.Changed() {
		t.Fatalf("check mode: %v", r.Values)
	}
	if tm := decode(r); tm.Active || len(tm.Command) == 0 || tm.Command[0] != "/usr/bin/etcd" {
		t.Errorf("check mode result: %+v (want the host unit's /usr/bin/etcd in command)", tm)
	}
	notLoaded("after check mode")
	if _, err := os.Stat(filepath.Join(h.Root(), dataDir)); !os.IsNotExist(err) {
		t.Fatalf("check mode created the data dir: %v", err)
	}

	// Start.
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args(), false)
	if r.Failed() || !r.Changed() {
		t.Fatalf("start: %v", r.Values)
	}
	started := decode(r)
	if !started.Active || started.MainPID == 0 || started.MemberID == "" || started.Version != "3.4.23" || started.Unit != unit {
		t.Fatalf("start result: %+v", started)
	}
	// From outside, after the playbook (and its SSH session) ended: a transient unit of systemd's.
	show := unitShow(t, l, h, unit, "Transient", "ActiveState", "SubState", "MainPID", "ControlGroup", "User", "Description")
	if show["Transient"] != "yes" || show["ActiveState"] != "active" || show["MainPID"] != strconv.Itoa(started.MainPID) ||
		show["ControlGroup"] != "/system.slice/"+unit || show["User"] != "etcd" || !strings.Contains(show["Description"], "etcdops") {
		t.Errorf("systemctl show %s: %v", unit, show)
	}
	if out, err := l.Exec(h, "ps", "-o", "ppid=", "-p", strconv.Itoa(started.MainPID)); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("the instance's parent is %q (%v), want systemd (1)", out, err)
	}
	if out, err := l.Exec(h, "stat", "-c", "%U %a", dataDir); err != nil || strings.TrimSpace(string(out)) != "etcd 700" {
		t.Errorf("data dir owner and mode: %q %v, want etcd 700", out, err)
	}
	o := etcdconn.Options{Endpoints: []string{clientURL}, CACert: l.CACert, ClientCert: l.ClientCert, ClientKey: l.ClientKey,
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := o.V3()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := cli.Status(ctx, clientURL)
	if err != nil || fmt.Sprintf("%x", st.Header.MemberId) != started.MemberID {
		t.Fatalf("status from outside: %v %v (module said member %s)", st, err, started.MemberID)
	}
	if ml, err := cli.MemberList(ctx); err != nil || len(ml.Members) != 1 || ml.Members[0].Name != "etcdops-temp" {
		t.Errorf("member list: %v %v", ml, err)
	}
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	keys := clientv2.NewKeysAPI(v2)
	if _, err := keys.Set(ctx, "/kubernetes.io/temp-member/probe", "v2-value", nil); err != nil {
		t.Fatalf("v2 write: %v", err)
	}
	if got, err := keys.Get(ctx, "/kubernetes.io/temp-member/probe", nil); err != nil || got.Node.Value != "v2-value" {
		t.Fatalf("v2 read: %v %v", got, err)
	}
	if own := l.Conn(); own.ReadProbe(5*time.Second) != nil {
		t.Errorf("the host's own member does not answer after the start")
	}

	// Again: unchanged, the same process.
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args(), false)
	if again := decode(r); r.Failed() || r.Changed() || again.MainPID != started.MainPID || again.MemberID != started.MemberID {
		t.Errorf("second start: changed=%v %+v", r.Changed(), again)
	}

	// Other settings while it runs: refused, nothing changed.
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("name", "other-temp"), false)
	if msg := fmt.Sprint(r.Values["msg"]); !r.Failed() || r.Changed() || !strings.Contains(msg, "state: stopped") ||
		!strings.Contains(msg, "--name etcdops-temp, asked other-temp") {
		t.Errorf("other settings: %v", r.Values)
	}
	if show := unitShow(t, l, h, unit, "MainPID", "ActiveState"); show["MainPID"] != strconv.Itoa(started.MainPID) || show["ActiveState"] != "active" {
		t.Errorf("after the refused start: %v", show)
	}

	// Stop in check mode, then for real (data dir kept), then again (unchanged).
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("state", "stopped"), true)
	if r.Failed() || !r.Changed() || !l.UnitActive(h, unit) {
		t.Errorf("stop in check mode: %v", r.Values)
	}
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("state", "stopped"), false)
	if r.Failed() || !r.Changed() || decode(r).Active {
		t.Fatalf("stop: %v", r.Values)
	}
	notLoaded("after stop")
	if _, err := l.Exec(h, "test", "-d", dataDir+"/member"); err != nil {
		t.Errorf("data dir not kept: %v", err)
	}
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("state", "stopped"), false)
	if r.Failed() || r.Changed() {
		t.Errorf("second stop: %v", r.Values)
	}

	// Bad input: refused naming the option, nothing started.
	for param, a := range map[string]map[string]any{
		"client_url": args("client_url", "https://"+h.Addr+":2379"), // the host member's port
		"data_dir":   args("data_dir", "var/lib/x"),
		"unit":       args("unit", "../../../tmp/x"),
		"peer_url":   args("peer_url", "http://"+h.Addr+":2999"), // http with peer TLS files
	} {
		r = sdTask(t, l, env, h.Name, "etcd_temp_member", a, false)
		if !r.Failed() || r.Changed() || !strings.Contains(fmt.Sprint(r.Values["msg"]), "parameter "+param) {
			t.Errorf("bad %s: %v", param, r.Values)
		}
	}
	notLoaded("after bad input")

	// A start that cannot become healthy fails with the unit's log, and leaves no unit behind.
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("binary", "/bin/false", "timeout", "20s"), false)
	if msg := fmt.Sprint(r.Values["msg"]); !r.Failed() || !strings.Contains(msg, "did not become healthy") ||
		!strings.Contains(msg, "status=1/FAILURE") || strings.Contains(msg, "serving client requests") {
		// the log lines are this run's (/bin/false fails), not the earlier runs' of the same unit
		t.Errorf("failing start: %v", r.Values)
	}
	notLoaded("after the failed start")

	// The kept data dir is reused: a new start resumes with the v2 key written above.
	r = sdTask(t, l, env, h.Name, "etcd_temp_member", args(), false)
	if r.Failed() || !r.Changed() || decode(r).MemberID != started.MemberID {
		t.Fatalf("restart on the kept data dir: %v", r.Values)
	}
	v2b, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second) // ctx may have run out under load
	defer cancel2()
	if got, err := clientv2.NewKeysAPI(v2b).Get(ctx2, "/kubernetes.io/temp-member/probe", nil); err != nil || got.Node.Value != "v2-value" {
		t.Errorf("v2 key after the restart on the kept data dir: %v %v", got, err)
	}
	if r = sdTask(t, l, env, h.Name, "etcd_temp_member", args("state", "stopped"), false); r.Failed() || !r.Changed() {
		t.Errorf("final stop: %v", r.Values)
	}
}
