package modules

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// On a host without Python (CoreOS Container Linux, hosted etcd's pods) etcd_exec cannot run the cached
// executable: the module still runs, copied for the task as a binary module, with its result as usual.
func TestModuleRunsOnAHostWithoutPython(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	inv, book := playFiles(t, "nopython ansible_connection=local ansible_python_interpreter=/nonexistent/python3\n", `- hosts: nopython
  gather_facts: false
  tasks:
    - name: Record
      etcdops.etcd.etcd_run_state:
        path: `+state+`
        state: recorded
        status: started
`)
	for _, tr := range ansibletest.Playbook(t, book, inv, nil, nil) {
		if r := tr.Hosts["nopython"]; tr.Name == "Record" && (r.Failed() || !r.Changed()) {
			t.Fatalf("etcd_run_state without Python: %v", r)
		}
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the state file was not written: %v", err)
	}
}
