package modules

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// The unit name follows an openshift-ansible 3.x inventory: etcd_container where etcd runs in a container
// (containerized=true, Atomic Host), etcd elsewhere; etcd_is_containerized and etcd_service, when set, win.
func TestServiceNameFromOpenShiftInventory(t *testing.T) {
	inv, book := playFiles(t, `[etcd]
plain ansible_connection=local
containerized containerized=true ansible_connection=local
atomic openshift_is_atomic=True ansible_connection=local
newer openshift_is_containerized=true ansible_connection=local
rpm containerized=false ansible_connection=local
forced etcd_is_containerized=false openshift_is_atomic=true ansible_connection=local
named containerized=true etcd_service=etcd-member ansible_connection=local
`, `- hosts: etcd
  gather_facts: false
  tasks:
    - name: Locate
      ansible.builtin.include_role:
        name: etcdops.etcd.etcd_facts
        tasks_from: locate
        public: true
      vars:
        etcd_config_flavour: dropin
    - name: Unit
      ansible.builtin.debug:
        msg: "{{ etcd_service }} {{ etcd_config.file }}"
`)
	want := map[string]string{
		"plain":         "etcd /etc/systemd/system/etcd.service.d/20-clct-etcd-member.conf",
		"containerized": "etcd_container /etc/systemd/system/etcd_container.service.d/20-clct-etcd-member.conf",
		"atomic":        "etcd_container /etc/systemd/system/etcd_container.service.d/20-clct-etcd-member.conf",
		"newer":         "etcd_container /etc/systemd/system/etcd_container.service.d/20-clct-etcd-member.conf",
		"rpm":           "etcd /etc/systemd/system/etcd.service.d/20-clct-etcd-member.conf",
		"forced":        "etcd /etc/systemd/system/etcd.service.d/20-clct-etcd-member.conf",
		"named":         "etcd-member /etc/systemd/system/etcd-member.service.d/20-clct-etcd-member.conf",
	}
	wantMessages(t, book, inv, "Unit", want)
}

// wantMessages runs the playbook and checks each host's message from the named task.
func wantMessages(t *testing.T, book, inv, task string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, tr := range ansibletest.Playbook(t, book, inv, nil, nil) {
		if tr.Name != task {
			continue
		}
		for h, r := range tr.Hosts {
			got[h] = r.Msg()
		}
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("%s: %q, want %q", h, got[h], w)
		}
	}
}

// playFiles writes an inventory and a playbook into a fresh directory and returns their paths.
func playFiles(t *testing.T, inventory, playbook string) (inv, book string) {
	t.Helper()
	dir := t.TempDir()
	inv, book = filepath.Join(dir, "inventory.ini"), filepath.Join(dir, "book.yml")
	for path, text := range map[string]string{inv: inventory, book: playbook} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return inv, book
}
