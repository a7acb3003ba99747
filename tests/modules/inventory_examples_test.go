package modules

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// The flavour examples parse and give the playbooks what they read, templated by Ansible: the
// StorageOS inventory (flavour unit) a new node's /etc/etcd.conf variables (its own address as
// NODE_IP, every old then new node as NODE1_IP...NODE6_IP, the ports), member names etcd-IP and the
// consumer task file beside it; the CoreOS one the etcd-member drop-in. The lab tests run with these
// variables too (tests/e2e TestSoakUnitFlavour uses storageos.yml's).
func TestInventoryExamples(t *testing.T) {
	root := ansibletest.Root(t)
	pb := filepath.Join(t.TempDir(), "vars.yml")
	if err := os.WriteFile(pb, []byte(`- hosts: all
  gather_facts: false
  tasks:
    - name: Template what the playbooks read
      ansible.builtin.debug:
        msg:
          flavour: "{{ etcd_config_flavour }}"
          file: "{{ {'dropin': etcd_dropin_file | default(''), 'unit': etcd_unit_file | default('')}[etcd_config_flavour] }}"
          service: "{{ etcd_service }}"
          name: "{{ etcd_member_name | default(inventory_hostname) }}"
          environment: "{{ etcd_unit_environment | default({}) }}"
          consumer_tasks: "{{ etcd_consumer_tasks | default('') }}"
          groups: "{{ groups['etcd'] | length }}/{{ groups['new_etcd'] | default([]) | length }}"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for example, want := range map[string]map[string]map[string]any{
		"storageos.yml": {"etcd-5": {"flavour": "unit", "file": "/etc/systemd/system/etcd3.service", "service": "etcd3",
			"name": "etcd-192.168.198.252", "groups": "3/3",
			"consumer_tasks": filepath.Join(root, "inventory-examples", "storageos-kv-backend.yml"),
			"environment": map[string]any{"NODE_IP": "192.168.198.252", "NODE1_IP": "192.168.195.168", "NODE2_IP": "192.168.202.40",
				"NODE3_IP": "192.168.174.117", "NODE4_IP": "192.168.152.142", "NODE5_IP": "192.168.198.252",
				"NODE6_IP": "192.168.150.122", "CLIENT_PORT": 2379.0, "PEERS_PORT": 2380.0}}},
		"coreos-etcd-member.yml": {"demo-etcd-2": {"flavour": "dropin", "service": "etcd-member", "name": "demo-etcd-2",
			"file": "/etc/systemd/system/etcd-member.service.d/20-clct-etcd-member.conf", "groups": "3/0",
			"environment": map[string]any{}, "consumer_tasks": ""}},
	} {
		tasks := ansibletest.Playbook(t, pb, filepath.Join(root, "inventory-examples", example), nil, nil)
		if len(tasks) != 1 {
			t.Fatalf("%s: %d tasks", example, len(tasks))
		}
		for host, w := range want {
			msg, _ := tasks[0].Hosts[host]["msg"].(map[string]any)
			if fmt.Sprint(msg) != fmt.Sprint(w) {
				t.Errorf("%s, host %s:\n got %v\nwant %v", example, host, msg, w)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "inventory-examples", "storageos-kv-backend.yml")); err != nil {
		t.Error(err)
	}
}
