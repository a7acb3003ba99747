package modules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// playbooks/inventory_check.yml under an ansible-core that runs modules only on Python 3.7 or later (2.17+,
// faked through etcd_controller_ansible_version): a host whose Python is 2.7 (a fake interpreter, as on
// RHEL 7) is refused by name with the fix; a host with this machine's Python 3 passes; under the real
// ansible-core (2.14 here) nothing is probed.
func TestInventoryCheckRefusesOldPythonUnderNewAnsible(t *testing.T) {
	root := ansibletest.Root(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "python2.7")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 2.7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.ini")
	write := func(hosts string) {
		if err := os.WriteFile(inv, []byte("[etcd]\n"+hosts), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	book := filepath.Join(root, "playbooks", "inventory_check.yml")
	results := func(extra map[string]any) map[string]map[string]ansibletest.Result {
		out := map[string]map[string]ansibletest.Result{}
		for _, tr := range ansibletest.Playbook(t, book, inv, extra, nil) {
			out[tr.Name] = tr.Hosts
		}
		return out
	}
	const refusal = "Refuse a host whose Python this ansible-core cannot run modules on"
	newer := map[string]any{"etcd_controller_ansible_version": "2.17.1"}

	write("rhel7 ansible_connection=local ansible_python_interpreter=" + fake + "\nmodern ansible_connection=local\n")
	got := results(newer)
	if r := got[refusal]["rhel7"]; !r.Failed() || !strings.Contains(r.Msg(), "rhel7 runs Python 2.7") ||
		!strings.Contains(r.Msg(), "ansible-core 2.14 to 2.16") {
		t.Errorf("rhel7 under 2.17: %v", r)
	}

	write("modern ansible_connection=local\n")
	if r := results(newer)[refusal]["modern"]; r.Failed() || r["skipped"] == true {
		t.Errorf("modern under 2.17: %v, want checked and passed", r)
	}

	write("rhel7 ansible_connection=local ansible_python_interpreter=" + fake + "\n")
	if r := results(nil)[refusal]["rhel7"]; r["skipped"] != true {
		t.Errorf("rhel7 under this ansible-core: %v, want skipped (nothing probed)", r)
	}
}
