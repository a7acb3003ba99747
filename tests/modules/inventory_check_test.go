package modules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// Every playbook, run with an inventory whose etcd group is empty (or missing), stops at its first task
// with a message naming the group, instead of skipping the etcd plays and failing later on a Jinja error.
func TestPlaybooksRefuseInventoryWithoutEtcd(t *testing.T) {
	root := ansibletest.Root(t)
	dir := t.TempDir()
	inventories := map[string]string{
		"empty etcd group": "[etcd]\n\n[masters]\nmaster-1 ansible_connection=local\n",
		"no etcd group":    "[masters]\nmaster-1 ansible_connection=local\nmaster-2 ansible_connection=local\n",
	}
	want := map[string]string{"empty etcd group": "(groups with hosts: masters)", "no etcd group": "(groups with hosts: masters)"}
	playbooks, _ := filepath.Glob(filepath.Join(root, "playbooks", "*.yml"))
	if len(playbooks) < 8 {
		t.Fatalf("playbooks: %v", playbooks)
	}
	for name, text := range inventories {
		inv := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".ini")
		if err := os.WriteFile(inv, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, pb := range playbooks {
			if filepath.Base(pb) == "run_lock.yml" {
				continue // imported by the playbooks after the inventory check, never run alone
			}
			if name == "no etcd group" && filepath.Base(pb) != "migrate_v2_to_v3.yml" {
				continue // one playbook shows it; the check is the same import
			}
			tasks := ansibletest.Playbook(t, pb, inv, nil, nil)
			where := name + ", " + filepath.Base(pb)
			if len(tasks) != 1 {
				names := make([]string, len(tasks))
				for i, tr := range tasks {
					names[i] = tr.Name
				}
				t.Errorf("%s: ran %d tasks %v, want only the inventory check", where, len(tasks), names)
				continue
			}
			r := tasks[0].Hosts["localhost"]
			// The hosted playbooks run on the controller, one host per hosted control plane.
			group, wantAlso := "etcd", want[name]
			if strings.HasPrefix(filepath.Base(pb), "hosted_") {
				group, wantAlso = "hosted_etcd", "inventory-examples/hosted.yml"
			}
			if !r.Failed() || !strings.Contains(r.Msg(), "no host in group '"+group+"'") || !strings.Contains(r.Msg(), wantAlso) {
				t.Errorf("%s: %q failed=%v, want a refusal naming group '%s' and %s", where, r.Msg(), r.Failed(), group, wantAlso)
			}
		}
	}
}
