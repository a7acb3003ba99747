package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeInventory writes the lab's INI inventory: groups etcd, masters and the extra ones, each host
// with its address, and the variables a user sets for this collection's playbooks (paths on the hosts,
// ports, service names) plus how Ansible reaches the hosts.
func (l *Lab) writeInventory() error {
	groups := map[string][]*Host{}
	var order []string
	for _, h := range l.Hosts {
		for _, g := range h.Groups {
			if _, ok := groups[g]; !ok {
				order = append(order, g)
			}
			groups[g] = append(groups[g], h)
		}
	}
	if _, ok := groups["masters"]; !ok {
		order = append(order, "masters") // present and empty, so plays targeting it simply skip
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Inventory of etcdops lab %q (written by lab; `make lab-down` removes it).\n", l.Spec.Name)
	for _, g := range order {
		fmt.Fprintf(&b, "\n[%s]\n", g)
		for _, h := range groups[g] {
			fmt.Fprintf(&b, "%s ansible_host=%s etcd_ip=%s\n", h.Name, h.Addr, h.Addr)
		}
	}
	services := `["` + strings.Join(MasterServices, `", "`) + `"]`
	fmt.Fprintf(&b, `
[all:vars]
ansible_user=root
ansible_ssh_private_key_file=%s
ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'
ansible_python_interpreter=/usr/bin/python3
# etcd as configured on every host (paths on the hosts)
etcd_version=%s
etcd_service=etcd
etcd_conf_file=/etc/etcd/etcd.conf
etcd_config_flavour=%s
etcd_dropin_file=%s
etcd_unit_file=%s
etcd_data_dir=/var/lib/etcd
etcd_client_port=2379
etcd_peer_port=2380
etcd_ca_cert=/etc/etcd/ca.crt
etcd_cert_file=/etc/etcd/server.crt
etcd_key_file=/etc/etcd/server.key
etcd_peer_cert_file=/etc/etcd/peer.crt
etcd_peer_key_file=/etc/etcd/peer.key
etcd_client_cert=/etc/etcd/client.crt
etcd_client_key=/etc/etcd/client.key
# OpenShift masters
openshift_master_services=%s
openshift_master_config=/etc/origin/master/master-config.yaml
# The same CA and a client certificate on the controller, for tasks delegated to localhost
etcd_controller_ca_cert=%s
etcd_controller_client_cert=%s
etcd_controller_client_key=%s
`, l.SSHKey, l.Spec.Etcd, l.Spec.Flavour, DropInFile, UnitFile, services, l.CACert, l.ClientCert, l.ClientKey)
	l.Inventory = filepath.Join(l.Dir, "inventory.ini")
	return os.WriteFile(l.Inventory, []byte(b.String()), 0o644)
}
