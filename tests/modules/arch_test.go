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

// Through Ansible: a host runs the executable for its own architecture, whichever the module's link
// names (here another architecture's, which cannot run on this host), and a host whose architecture
// the collection has no executable for (i686, through setarch for Python and the shell) fails naming it.
func TestModuleRunsItsHostsArchExecutable(t *testing.T) {
	env := ansibletest.Install(t)
	root := ansibletest.Root(t)
	installed := filepath.Join(root, "build/collections/ansible_collections/etcdops/etcd")
	var other string
	for _, a := range []string{"arm64", "ppc64le", "s390x"} {
		if _, err := os.Stat(filepath.Join(installed, "bin/linux_"+a, "etcdops")); err == nil {
			other = a
			break
		}
	}
	if other == "" {
		t.Fatal("the installed collection holds no executable besides linux_amd64 (make install builds BUILD_ARCHES)")
	}
	// A copy of the installed collection (hard links) whose etcd_run_state links to the other arch's executable.
	colls := t.TempDir()
	copyDir := filepath.Join(colls, "ansible_collections/etcdops/etcd")
	if err := os.MkdirAll(filepath.Dir(copyDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-al", installed, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	link := filepath.Join(copyDir, "plugins/modules/etcd_run_state")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../bin/linux_"+other+"/etcdops", link); err != nil {
		t.Fatal(err)
	}
	env = append(env, "ANSIBLE_COLLECTIONS_PATH="+colls)
	state := filepath.Join(t.TempDir(), "state.json")
	inv, book := playFiles(t, `native ansible_connection=local
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
`)
	tasks := ansibletest.Playbook(t, book, inv, nil, env)
	if len(tasks) != 1 {
		t.Fatalf("tasks: %v", tasks)
	}
	if r := tasks[0].Hosts["native"]; r.Failed() || !r.Changed() {
		t.Errorf("x86_64 host, module linked to linux/%s: %v", other, r)
	}
	if _, err := os.Stat(state + "-native"); err != nil {
		t.Errorf("the x86_64 host's state file was not written: %v", err)
	}
	r := tasks[0].Hosts["i686"]
	if msg, _ := r["msg"].(string); !r.Failed() || !strings.Contains(msg, "architecture i686 (uname -m) is not one the collection builds for") {
		t.Errorf("i686 host: %v", r)
	}
	if _, err := os.Stat(state + "-i686"); err == nil {
		t.Error("the i686 host's state file was written")
	}
}
