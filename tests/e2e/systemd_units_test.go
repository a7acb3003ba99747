package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
)

// etcd_backup (stop_service) and etcd_force_new_cluster drive systemd over D-Bus: on a 2-host lab, a
// backup stops and starts etcd1's unit, a bad unit name is refused, and force-new-cluster turns etcd1
// into a one-member cluster and leaves no runtime drop-in; etcd_units stops and starts etcd2's.
func TestUnitsOverDBus(t *testing.T) {
	l := lab.Up(t, lab.Spec{Hosts: 2})
	env := lab.EnvMap(ansibletest.Install(t))
	h, other := l.Members()[0], l.Members()[1]
	conn := map[string]any{"endpoints": []string{h.ClientURL()}, "ca_cert": "/etc/etcd/ca.crt",
		"client_cert": "/etc/etcd/client.crt", "client_key": "/etc/etcd/client.key"}
	with := func(extra map[string]any) map[string]any {
		a := maps.Clone(conn)
		maps.Copy(a, extra)
		return a
	}
	before := unitShow(t, l, h, "etcd.service", "MainPID")["MainPID"]
	r := sdTask(t, l, env, h.Name, "etcd_backup", with(map[string]any{"name": "dbus-check", "stop_service": "etcd"}), false)
	if r.Failed() || !r.Changed() || r.Values["verified"] != true {
		t.Fatalf("backup with stop_service: %v", r.Values)
	}
	if after := unitShow(t, l, h, "etcd.service", "MainPID", "ActiveState"); after["ActiveState"] != "active" || after["MainPID"] == before {
		t.Errorf("etcd.service after the backup: %v (MainPID before %s): want stopped and started again", after, before)
	}

	for module, param := range map[string]string{"etcd_force_new_cluster": "service", "etcd_backup": "stop_service"} {
		args := with(map[string]any{param: "../../../tmp/x"})
		if module == "etcd_backup" {
			args["name"] = "x"
		}
		r = sdTask(t, l, env, h.Name, module, args, false)
		if !r.Failed() || r.Changed() || !strings.Contains(fmt.Sprint(r.Values["msg"]), "parameter "+param) {
			t.Errorf("%s with %s ../../../tmp/x: %v", module, param, r.Values)
		}
	}
	if out, _ := l.Exec(h, "sh", "-c", "ls -d /run/systemd/tmp /tmp/x.d /tmp/x.service.d 2>/dev/null"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("a bad unit name reached the file system: %s", out)
	}

	// etcd_units on the other host: check mode acts on nothing; a unit the host lacks fails the task before
	// any job (etcd, named first, still runs); stop, stop again (no change), start (checked), stop.
	units := func(state string, check bool, names ...string) lab.TaskResult {
		return sdTask(t, l, env, other.Name, "etcd_units", map[string]any{"name": names, "state": state, "settle": "1s"}, check)
	}
	active := func() string { return unitShow(t, l, other, "etcd.service", "ActiveState")["ActiveState"] }
	if r = units("stopped", true, "etcd"); r.Failed() || !r.Changed() || active() != "active" {
		t.Errorf("etcd_units stop in check mode: %v, etcd %s", r.Values, active())
	}
	if r = units("stopped", false, "etcd", "no-such-master"); !r.Failed() || r.Changed() || active() != "active" ||
		!strings.Contains(fmt.Sprint(r.Values["msg"]), "parameter name: no-such-master.service is not-found") {
		t.Errorf("etcd_units with a unit the host lacks: %v, etcd %s", r.Values, active())
	}
	for i, want := range []struct {
		state           string
		changed         bool
		activeAfterward string
	}{{"stopped", true, "inactive"}, {"stopped", false, "inactive"}, {"started", true, "active"}, {"stopped", true, "inactive"}} {
		if r = units(want.state, false, "etcd"); r.Failed() || r.Changed() != want.changed || active() != want.activeAfterward {
			t.Errorf("etcd_units %d (%s): %v, etcd %s", i, want.state, r.Values, active())
		}
	}
	r = sdTask(t, l, env, h.Name, "etcd_force_new_cluster", with(map[string]any{"timeout": "90s"}), false)
	if r.Failed() || !r.Changed() {
		t.Fatalf("force-new-cluster: %v", r.Values)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ml, err := l.V3Client(t, h).MemberList(ctx); err != nil || len(ml.Members) != 1 || ml.Members[0].Name != h.Name {
		t.Errorf("members after force-new-cluster: %v %v", ml, err)
	}
	if show := unitShow(t, l, h, "etcd.service", "DropInPaths", "ActiveState"); strings.Contains(show["DropInPaths"], "etcdops") ||
		show["ActiveState"] != "active" {
		t.Errorf("etcd.service after force-new-cluster: %v", show)
	}
	if out, _ := l.Exec(h, "sh", "-c", "ls -A /run/systemd/system/etcd.service.d/ 2>/dev/null"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("runtime drop-in dir not empty: %s", out)
	}
	if r = sdTask(t, l, env, h.Name, "etcd_force_new_cluster", conn, false); r.Failed() || r.Changed() {
		t.Errorf("force-new-cluster again: %v", r.Values)
	}
}
