package modules

import (
	"path/filepath"
	"testing"
)

// The offline migration's db transfer runs ssh without its compression (role etcd_v2v3_migrate, vars/main.yml):
// the ssh_args, ssh_common_args and ssh_extra_args in force without -C (alone or in a group of flags), after
// Compression=no, through control sockets of its own; asked for, as they are.
func TestTransferSSHWithoutCompression(t *testing.T) {
	vars, err := filepath.Abs("../../roles/etcd_v2v3_migrate/vars/main.yml")
	if err != nil {
		t.Fatal(err)
	}
	inv, book := playFiles(t, `[etcd]
default ssh_args="-C -o ControlMaster=auto -o ControlPersist=60s"
last ssh_args="-o ControlPersist=60s -C"
none ssh_args="-o ControlPersist=30m"
flags ssh_args="-CA -o ControlPersist=60s" common="-4C -o StrictHostKeyChecking=no" extra="-C"
kept ssh_args="-C -o ControlPersist=60s" common="-C" etcd_v2v3_migrate_transfer_ssh_compression=true

[etcd:vars]
ansible_connection=local
etcd_v2v3_migrate_transfer_ssh_compression=false
common=""
extra=""
`, `- hosts: etcd
  gather_facts: false
  tasks:
    - name: Load the role's vars
      ansible.builtin.include_vars: `+vars+`
    - name: Args
      ansible.builtin.debug:
        msg: "{{ _s.args }} | {{ _s.common_args }} | {{ _s.extra_args }} | {{ _s.control_path_dir }}"
      vars:
        _etcd_v2v3_migrate_ssh_args: "{{ ssh_args }}"
        _etcd_v2v3_migrate_ssh_common_args: "{{ common }}"
        _etcd_v2v3_migrate_ssh_extra_args: "{{ extra }}"
        _etcd_v2v3_migrate_control_path_dir: /cp
        _s: "{{ _etcd_v2v3_migrate_transfer_ssh }}"
`)
	want := map[string]string{
		"default": "-o Compression=no -o ControlMaster=auto -o ControlPersist=60s |  |  | /cp/uncompressed",
		"last":    "-o Compression=no -o ControlPersist=60s |  |  | /cp/uncompressed",
		"none":    "-o Compression=no -o ControlPersist=30m |  |  | /cp/uncompressed",
		// -C turns compression on wherever it stands, in a group of flags and in the common or extra args too.
		"flags": "-o Compression=no -A -o ControlPersist=60s | -4 -o StrictHostKeyChecking=no |  | /cp/uncompressed",
		"kept":  "-C -o ControlPersist=60s | -C |  | /cp",
	}
	wantMessages(t, book, inv, "Args", want)
}
