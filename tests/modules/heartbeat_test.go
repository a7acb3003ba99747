package modules

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/playbook"
)

// A module task that runs longer than etcd_module_heartbeat says so on stderr while it runs (stdout is
// the JSON callback's and stays JSON); 0 turns it off; a value that is not whole seconds up to a day (a
// boolean, infinity, too many) fails the task naming the variable, before the module runs. The module
// waits 3 s for an endpoint that never answers.
func TestModuleHeartbeat(t *testing.T) {
	env := ansibletest.Install(t)
	for _, c := range []struct {
		heartbeat string
		lines     int // at least, of STILL RUNNING
		failMsg   string
	}{
		{heartbeat: "1", lines: 2, failMsg: "did not converge"},
		{heartbeat: "0", failMsg: "did not converge"},
		{heartbeat: "soon", failMsg: "etcd_module_heartbeat is 'soon': give the whole seconds"},
		{heartbeat: "-1", failMsg: "etcd_module_heartbeat is -1: give the whole seconds"},
		{heartbeat: "True", failMsg: "etcd_module_heartbeat is True: give the whole seconds"},
		{heartbeat: "inf", failMsg: "etcd_module_heartbeat is 'inf': give the whole seconds"},
		{heartbeat: "1e10", failMsg: "etcd_module_heartbeat is 10000000000.0: give the whole seconds"},
		{heartbeat: "86401", failMsg: "etcd_module_heartbeat is 86401: give the whole seconds between the lines a module task prints while it runs, 1 to 86400 (default 15), or 0 for none"},
	} {
		t.Run("etcd_module_heartbeat="+c.heartbeat, func(t *testing.T) {
			inv, book := playFiles(t, "waiter ansible_connection=local etcd_module_heartbeat="+c.heartbeat+"\n", `- hosts: waiter
  gather_facts: false
  tasks:
    - name: Wait for a cluster that is not there
      etcdops.etcd.etcd_convergence_wait:
        endpoints: http://127.0.0.1:1
        dial_timeout: 200ms
        interval: 200ms
        timeout: 3
`)
			res, err := playbook.Execute(context.Background(), playbook.Run{Playbook: book, Inventory: inv,
				Env: playbook.EnvMap(env), Dir: filepath.Dir(book)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tasks) != 1 || !strings.Contains(fmt.Sprint(res.Tasks[0].Values["msg"]), c.failMsg) {
				t.Fatalf("want one failed task saying %q: %+v\nstderr:\n%s", c.failMsg, res.Tasks, res.Stderr)
			}
			lines := regexp.MustCompile(`(?m)^STILL RUNNING on waiter after \d+ s: Wait for a cluster that is not there$`).
				FindAllString(res.Stderr, -1)
			if len(lines) < c.lines || (c.lines == 0 && len(lines) > 0) {
				t.Fatalf("want at least %d STILL RUNNING lines (none when 0), got %d; stderr:\n%s", c.lines, len(lines), res.Stderr)
			}
		})
	}
}
