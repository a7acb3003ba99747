package e2e

import (
	"strings"
	"testing"

	"github.com/etcdops/etcd/lab"
)

// With openshift_master_services empty, role openshift_master probes each master's units: the
// Enterprise split units on etcd1, Origin's on etcd2, a 3.6 single master's unit on etcd3. The
// fall-back playbook (stop, switch, start) restarts exactly those units on each host; a unit that
// exits at once fails its host's start check; a candidate that is a glob is refused naming
// openshift_master_unit_candidates; a master with none of them is refused with a message naming
// openshift_master_services.
func TestMasterUnitsProbed(t *testing.T) {
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true})
	hosts := l.Members()
	rename := func(h *lab.Host, to map[string]string) {
		t.Helper()
		var sh []string
		for from, unit := range to {
			sh = append(sh, "systemctl disable --now "+from,
				"sed s/"+from+"/"+unit+"/g /etc/systemd/system/"+from+".service > /etc/systemd/system/"+unit+".service",
				"rm /etc/systemd/system/"+from+".service")
		}
		sh = append(sh, "systemctl daemon-reload")
		for _, unit := range to {
			sh = append(sh, "systemctl enable --now "+unit)
		}
		if out, err := l.Exec(h, "sh", "-ec", strings.Join(sh, "\n")); err != nil {
			t.Fatalf("%s: %v\n%s", h.Name, err, out)
		}
	}
	api, ctl := lab.MasterServices[0], lab.MasterServices[1]
	rename(hosts[1], map[string]string{api: "origin-master-api", ctl: "origin-master-controllers"})
	rename(hosts[2], map[string]string{api: "atomic-openshift-master"})
	if out, err := l.Exec(hosts[2], "sh", "-ec", "systemctl disable --now "+ctl+"\nrm /etc/systemd/system/"+ctl+".service\nsystemctl daemon-reload"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := map[string][]string{
		hosts[0].Name: {api, ctl},
		hosts[1].Name: {"origin-master-api", "origin-master-controllers"},
		hosts[2].Name: {"atomic-openshift-master"},
	}
	before := map[string]string{}
	for _, h := range hosts {
		for _, unit := range want[h.Name] {
			before[h.Name+"/"+unit] = unitShow(t, l, h, unit, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"]
		}
	}

	res := runTestdata(t, l, "fallback.yml", map[string]any{"fallback_backend": "etcd3", "openshift_master_services": []string{}})
	mustSucceed(t, res)
	for _, h := range hosts {
		for _, unit := range want[h.Name] {
			after := unitShow(t, l, h, unit, "ActiveState", "ActiveEnterTimestampMonotonic")
			if after["ActiveState"] != "active" || after["ActiveEnterTimestampMonotonic"] == before[h.Name+"/"+unit] {
				t.Errorf("%s: %s %v: want stopped and started again by the probe", h.Name, unit, after)
			}
		}
		if backend, _ := masterStorage(t, h); backend != "etcd3" {
			t.Errorf("%s: storage-backend %q", h.Name, backend)
		}
	}

	// A master unit that does not keep running fails the start on its host.
	repair := breakUnit(t, l, hosts[0], ctl)
	res = runTestdata(t, l, "fallback.yml", map[string]any{"fallback_backend": "etcd3", "openshift_master_services": []string{}})
	if res.Err == nil {
		t.Fatalf("the start went through with %s on %s exiting at once", ctl, hosts[0].Name)
	}
	var failed []string
	for _, r := range res.Tasks {
		if r.Failed() {
			failed = append(failed, r.Host+": "+r.Task)
		}
	}
	// Restarted every 100 ms, the unit is active for moments: the look 3 s later finds another activation.
	if len(failed) != 1 || failed[0] != hosts[0].Name+": etcdops.etcd.openshift_master : Start the master services and check they keep running" ||
		!strings.Contains(failureMsg(res), ctl+".service did not keep running") {
		t.Errorf("failed tasks %q (%s), want only %s's start, naming %s", failed, failureMsg(res), hosts[0].Name, ctl)
	}
	repair()

	// A candidate systemctl would read as a glob: refused on every master, naming the variable, before
	// anything stops or changes.
	res = runTestdata(t, l, "fallback.yml", map[string]any{"openshift_master_services": []string{},
		"openshift_master_unit_candidates": [][]string{{"origin-master-*"}}})
	if msg := failureMsg(res); res.Err == nil || !strings.Contains(msg, "openshift_master_unit_candidates: origin-master-* is not a unit name") {
		t.Errorf("a glob among the candidates: err %v, message %q", res.Err, msg)
	}
	for _, h := range hosts {
		if backend, _ := masterStorage(t, h); backend != "etcd3" {
			t.Errorf("%s: storage-backend %q after the refusal, want etcd3 untouched", h.Name, backend)
		}
	}

	// No known unit: refused on that host, naming the variable, before its master-config changes.
	rename(hosts[2], map[string]string{"atomic-openshift-master": "some-master"})
	res = runTestdata(t, l, "fallback.yml", map[string]any{"openshift_master_services": []string{}})
	if res.Err == nil {
		t.Fatal("the fall-back ran with a master that has no known master unit")
	}
	if msg := failureMsg(res); !strings.Contains(msg, "openshift_master_services") || !strings.Contains(msg, hosts[2].Name) {
		t.Errorf("refusal %q does not name openshift_master_services and %s", msg, hosts[2].Name)
	}
	// fallback.yml switches to etcd2: the refused host was not switched.
	if backend, _ := masterStorage(t, hosts[2]); backend != "etcd3" {
		t.Errorf("%s: storage-backend %q after the refusal, want etcd3 untouched", hosts[2].Name, backend)
	}
}
