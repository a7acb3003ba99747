package modules

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// The action plugin's choice of executable, unit-tested in Python (testdata/etcd_module_plugin_test.py):
// uname -m to Go arch, the digest file read instead of hashing the executable, a stale digest refused,
// and the messages naming an architecture without an executable.
func TestActionPluginPicksTheHostArch(t *testing.T) {
	root := ansibletest.Root(t)
	cmd := exec.Command("/usr/bin/python3", filepath.Join(root, "tests/modules/testdata/etcd_module_plugin_test.py"),
		filepath.Join(root, "plugins/action/etcd_module.py"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// Through Ansible, from the installed collection (executables packed): a host runs the executable for
// its own architecture, unpacked into the controller's cache; so do the paths where Ansible copies the
// module itself (etcd_module_cache false, for hosts without Python, and async tasks), which unpack it
// under the module's name; and a host whose architecture the collection has no executable for (i686,
// through setarch for Python and the shell) fails naming it, writing nothing.
func TestModuleRunsItsHostsArchExecutable(t *testing.T) {
	env := ansibletest.Install(t)
	cache := t.TempDir()
	env = append(env, "XDG_CACHE_HOME="+cache)
	state := filepath.Join(t.TempDir(), "state.json")
	inv, book := playFiles(t, `native ansible_connection=local
binary ansible_connection=local etcd_module_cache=false
i686 ansible_connection=local ansible_python_interpreter="/usr/bin/setarch i686 /usr/bin/python3" ansible_shell_executable="/usr/bin/setarch i686 /bin/sh"
`, `- hosts: all
  gather_facts: false
  tasks:
    - name: Record
      etcdops.etcd.etcd_run_state:
        path: `+state+`-{{ inventory_hostname }}
        state: recorded
        status: started
      ignore_errors: true
    - name: Record async
      etcdops.etcd.etcd_run_state:
        path: `+state+`-{{ inventory_hostname }}-async
        state: recorded
        status: started
      async: 60
      poll: 1
      when: inventory_hostname == 'native'
`)
	tasks := ansibletest.Playbook(t, book, inv, nil, env)
	if len(tasks) != 2 {
		t.Fatalf("tasks: %v", tasks)
	}
	for _, h := range []string{"native", "binary"} {
		if r := tasks[0].Hosts[h]; r.Failed() || !r.Changed() {
			t.Errorf("%s host: %v", h, r)
		}
		if _, err := os.Stat(state + "-" + h); err != nil {
			t.Errorf("the %s host's state file was not written: %v", h, err)
		}
	}
	if r := tasks[1].Hosts["native"]; r.Failed() || !r.Changed() {
		t.Errorf("async: %v", r)
	}
	if _, err := os.Stat(state + "-native-async"); err != nil {
		t.Errorf("the async task's state file was not written: %v", err)
	}
	// The binary module copies ran the amd64 executable unpacked under the module's name.
	links, _ := filepath.Glob(filepath.Join(cache, "etcdops-etcd/controller/*/etcd_run_state"))
	if len(links) != 1 {
		t.Errorf("controller cache: %v, want one etcd_run_state", links)
	} else if target, _ := os.Readlink(links[0]); target != "etcdops" {
		t.Errorf("%s links to %q, not etcdops", links[0], target)
	}
	r := tasks[0].Hosts["i686"]
	if msg, _ := r["msg"].(string); !r.Failed() || !strings.Contains(msg, "architecture i686 (uname -m) is not one the collection builds for") {
		t.Errorf("i686 host: %v", r)
	}
	if _, err := os.Stat(state + "-i686"); err == nil {
		t.Error("the i686 host's state file was written")
	}
}
