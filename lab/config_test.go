package lab

import (
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/etcdops/etcd/pkg/memberconf"
)

// The files a host gets, without booting anything: etcd.conf in the OpenShift 3.x layout, a unit that
// passes no flags, and an inventory with every group and the variables playbooks read.
func TestHostConfigAndInventory(t *testing.T) {
	spec := Spec{Hosts: 3, Masters: true, Groups: map[string]int{"new_etcd": 2}}
	if err := spec.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{Spec: spec, Dir: t.TempDir(), Net: 42, Token: "tok", SSHKey: "/k", CACert: "/ca", ClientCert: "/c", ClientKey: "/ck"}
	l.plan()
	if len(l.Hosts) != 5 || l.Host("new-etcd2") == nil || l.Host("etcd3").Addr != "127.0.42.3" {
		t.Fatalf("hosts: %+v", l.Hosts)
	}
	conf := l.etcdConf(l.Host("etcd2"))
	for _, want := range []string{
		"ETCD_NAME=etcd2\n", "ETCD_DATA_DIR=/var/lib/etcd/\n", "ETCD_LISTEN_CLIENT_URLS=https://127.0.42.2:2379\n",
		"ETCD_INITIAL_CLUSTER=etcd1=https://127.0.42.1:2380,etcd2=https://127.0.42.2:2380,etcd3=https://127.0.42.3:2380\n",
		"ETCD_INITIAL_CLUSTER_STATE=new\n", "ETCD_INITIAL_CLUSTER_TOKEN=tok\n", "ETCD_ENABLE_V2=true\n",
		"ETCD_PEER_CLIENT_CERT_AUTH=true\n", "ETCD_TRUSTED_CA_FILE=/etc/etcd/ca.crt\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("etcd.conf lacks %q:\n%s", want, conf)
		}
	}
	if unit := etcdUnit("/usr/bin/etcd"); !strings.Contains(unit, "ExecStart=/usr/bin/etcd\n") ||
		!strings.Contains(unit, "EnvironmentFile=-/etc/etcd/etcd.conf") {
		t.Errorf("unit must run plain etcd from etcd.conf (3.4 refuses duplicated flags):\n%s", unit)
	}
	l.Spec.Etcd = "3.6"
	if strings.Contains(l.etcdConf(l.Hosts[0]), "V2") {
		t.Error("3.6 etcd.conf enables v2")
	}
	if err := l.writeInventory(); err != nil {
		t.Fatal(err)
	}
	inv, _ := os.ReadFile(l.Inventory)
	for _, want := range []string{
		"[etcd]\netcd1 ansible_host=127.0.42.1 etcd_ip=127.0.42.1\n",
		"[masters]\netcd1 ", "[new_etcd]\nnew-etcd1 ansible_host=127.0.42.4",
		"ansible_ssh_private_key_file=/k\n", "etcd_ca_cert=/etc/etcd/ca.crt\n", "etcd_client_port=2379\n",
		"etcd_service=etcd\n", `openshift_master_services=["atomic-openshift-master-api", "atomic-openshift-master-controllers"]`,
		"etcd_controller_ca_cert=/ca\n",
	} {
		if !strings.Contains(string(inv), want) {
			t.Errorf("inventory lacks %q:\n%s", want, inv)
		}
	}
}

// The drop-in flavour's host: etcd.conf's settings as ExecStart flags, read back by the collection's
// own reader as the same ETCD_* settings; the inventory names the flavour.
func TestDropInFlavour(t *testing.T) {
	spec := Spec{Hosts: 3, Flavour: FlavourDropIn}
	if err := spec.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{Spec: spec, Dir: t.TempDir(), Net: 42, Token: "tok", SSHKey: "/k", CACert: "/ca", ClientCert: "/c", ClientKey: "/ck"}
	l.plan()
	conf := l.etcdConf(l.Host("etcd2"))
	dropIn := etcdDropIn("/usr/bin/etcd", conf)
	if !strings.HasPrefix(dropIn, "[Service]\nExecStart=\nExecStart=/usr/bin/etcd \\\n  --name=\"etcd2\" \\\n") {
		t.Errorf("drop-in:\n%s", dropIn)
	}
	env, cmd, err := memberconf.ReadDropIn([]byte(dropIn))
	if err != nil || cmd != "/usr/bin/etcd" || !maps.Equal(env, memberconf.ParseEnv([]byte(conf))) {
		t.Errorf("drop-in reads as %v, command %q (%v); want etcd.conf's %v", env, cmd, err, memberconf.ParseEnv([]byte(conf)))
	}
	if err := l.writeInventory(); err != nil {
		t.Fatal(err)
	}
	if inv, _ := os.ReadFile(l.Inventory); !strings.Contains(string(inv), "etcd_config_flavour=dropin\netcd_dropin_file="+DropInFile+"\n") {
		t.Errorf("inventory does not name the flavour:\n%s", inv)
	}
	if bad := (Spec{Flavour: "yaml"}); bad.defaults() == nil {
		t.Error("flavour yaml accepted")
	}
}

// The unit flavour's member: its unit's ExecStart names the variables of /etc/etcd.conf and, expanded
// by the collection's own reader, is etcd.conf's settings.
func TestUnitFlavour(t *testing.T) {
	spec := Spec{Hosts: 3, Flavour: FlavourUnit}
	if err := spec.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{Spec: spec, Dir: t.TempDir(), Net: 42, Token: "tok"}
	l.plan()
	conf := l.etcdConf(l.Host("etcd2"))
	unit, nodes := l.storageOSUnit(l.Host("etcd2"), conf)
	for _, want := range []string{"EnvironmentFile=/etc/etcd.conf\n", "    --name etcd2 \\\n",
		"    --listen-peer-urls https://${NODE_IP}:${PEERS_PORT} \\\n", "    --client-cert-auth=true \\\n",
		"    --initial-cluster etcd1=https://${NODE1_IP}:${PEERS_PORT},etcd2=https://${NODE2_IP}:${PEERS_PORT},etcd3=https://${NODE3_IP}:${PEERS_PORT} \\\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("want %q in the unit:\n%s", want, unit)
		}
	}
	f, err := memberconf.ApplyFlags([]byte(unit), "", nil, func(string) ([]byte, error) { return []byte(nodes), nil })
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(f.Env, memberconf.ParseEnv([]byte(conf))) {
		t.Errorf("unit reads as %v (%v); want etcd.conf's %v\n%s", f.Env, err, memberconf.ParseEnv([]byte(conf)), nodes)
	}
}
