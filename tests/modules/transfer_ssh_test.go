package modules

import (
	"path/filepath"
	"testing"
)

// The offline migration's db transfer runs ssh without its compression (role etcd_v2v3_migrate, vars/main.yml):
// the ssh_args in force less -C, after Compression=no, through control sockets of its own; asked for, as they are.
func TestTransferSSHWithoutCompression(t *testing.T) {
	vars, err := filepath.Abs("../../roles/etcd_v2v3_migrate/vars/main.yml")
	if err != nil {
		t.Fatal(err)
	}
	inv, book := playFiles(t, `[etcd]
default ssh_args="-C -o ControlMaster=auto -o ControlPersist=60s"
last ssh_args="-o ControlPersist=60s -C"
none ssh_args="-o ControlPersist=30m"
flags ssh_args="-CA -o ControlPersist=60s"
kept ssh_args="-C -o ControlPersist=60s" etcd_v2v3_migrate_transfer_ssh_compression=true

[etcd:vars]
ansible_connection=local
etcd_v2v3_migrate_transfer_ssh_compression=false
`, `- hosts: etcd
  gather_facts: false
  tasks:
    - name: Load the role's vars
      ansible.builtin.include_vars: `+vars+`
    - name: Args
      ansible.builtin.debug:
        msg: "{{ _etcd_v2v3_migrate_transfer_ssh_args }} | {{ _etcd_v2v3_migrate_transfer_control_path_dir }}"
      vars:
        _etcd_v2v3_migrate_ssh_args: "{{ ssh_args }}"
        _etcd_v2v3_migrate_control_path_dir: /cp
`)
	want := map[string]string{
		"default": "-o Compression=no -o ControlMaster=auto -o ControlPersist=60s | /cp/uncompressed",
		"last":    "-o Compression=no -o ControlPersist=60s | /cp/uncompressed",
		"none":    "-o Compression=no -o ControlPersist=30m | /cp/uncompressed",
		// Compression=no comes first: ssh keeps an option's first value, so a combined -CA compresses nothing.
		"flags": "-o Compression=no -CA -o ControlPersist=60s | /cp/uncompressed",
		"kept":  "-C -o ControlPersist=60s | /cp",
	}
	wantMessages(t, book, inv, "Args", want)
}
