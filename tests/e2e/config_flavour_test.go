package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
	"github.com/etcdops/etcd/pkg/memberconf"
	"go.yaml.in/yaml/v3"
)

// The drop-in flavour (seed 004, CoreOS etcd-member) on one lab boot: every member's flags live in
// 20-clct-etcd-member.conf's ExecStart and there is no etcd.conf. A member with corrupt data is
// recovered (recover_member.yml) and comes back a healthy voter with every key, its drop-in now
// joining the existing cluster; then 3 → 5 → 3 (scale_cluster.yml): the joining hosts get a drop-in
// with their own flags, the members are exactly group etcd, every key intact. No etcd.conf appears.
// make test runs the recovery (TestDropInFlavour), make soak all of it (TestSoakDropInFlavour).
func TestDropInFlavour(t *testing.T) { dropInFlavour(t, false) }

func TestSoakDropInFlavour(t *testing.T) {
	soak(t)
	dropInFlavour(t, true)
}

func dropInFlavour(t *testing.T, scaled bool) {
	step := stepLogger(t)
	spec := lab.Spec{Hosts: 3, Flavour: lab.FlavourDropIn}
	if scaled {
		spec.Groups = map[string]int{"spare": 2}
	}
	ctx, l, keys, noEtcdConf := flavourLab(t, spec)
	old, spare := l.Members(), freshHosts(l)
	cli := l.V3Client(t, old[0])
	noEtcdConf()

	// 1. etcd3's data corrupt (crash loop): recover_member.yml brings it back from an empty member dir.
	if _, err := l.CorruptDataDir(old[2]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	mustSucceed(t, playbook(t, l, "recover_member.yml", map[string]any{"etcd_recover_member": old[2].Name}))
	checkMembers(ctx, t, l, cli, old)
	checkKeys(ctx, t, l.V3Client(t, old[2]), keys, "written before the corruption (read through the recovered member)")
	env := dropInFlags(t, old[2], old)
	step("1. recovered %s in %s; its drop-in: --initial-cluster-state=%s --initial-cluster=%s", old[2].Name,
		time.Since(start).Round(time.Second), env["ETCD_INITIAL_CLUSTER_STATE"], env["ETCD_INITIAL_CLUSTER"])

	if !scaled {
		noEtcdConf()
		return
	}

	// 2. 3 → 5: each spare gets a drop-in running /usr/bin/etcd with its own flags.
	all := append(append([]*lab.Host{}, old...), spare...)
	start = time.Now()
	mustSucceed(t, scale(t, l, all))
	checkMembers(ctx, t, l, cli, all)
	for _, h := range spare {
		dropInFlags(t, h, all[:len(all)-len(spare)+1+indexOf(spare, h)])
	}
	step("2. grown to 5 in %s", time.Since(start).Round(time.Second))

	// 3. 5 → 3 without etcd1 and etcd2.
	kept := []*lab.Host{old[2], spare[0], spare[1]}
	keptCli := l.V3Client(t, kept...)
	start = time.Now()
	mustSucceed(t, scale(t, l, kept))
	checkMembers(ctx, t, l, keptCli, kept)
	checkKeys(ctx, t, keptCli, keys, "written before the scaling")
	noEtcdConf()
	step("3. shrunk to 3 in %s; every key intact, no etcd.conf anywhere", time.Since(start).Round(time.Second))
}

// flavourLab boots a lab in a config flavour with 200 keys written through its first member and
// returns the test's 20-minute context, the keys and a check that no host has an etcd.conf (the
// flavour keeps the settings elsewhere).
func flavourLab(t *testing.T, spec lab.Spec) (context.Context, *lab.Lab, map[string]string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	l := lab.Up(t, spec)
	keys := map[string]string{}
	putKeys(ctx, t, l.V3Client(t, l.Members()[0]), keys, 200, "/"+spec.Flavour)
	return ctx, l, keys, func() {
		t.Helper()
		for _, h := range l.Hosts {
			if _, err := os.Stat(filepath.Join(h.Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s has an etcd.conf (%v): the %s flavour must not write one", h.Name, err, spec.Flavour)
			}
		}
	}
}

func indexOf(hosts []*lab.Host, h *lab.Host) int {
	for i, o := range hosts {
		if o == h {
			return i
		}
	}
	return -1
}

// dropInFlags reads h's drop-in as etcd will and checks it joins the existing cluster of members
// (its own name and URLs, the initial cluster naming each of them at its peer URL).
func dropInFlags(t *testing.T, h *lab.Host, members []*lab.Host) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Root(), lab.DropInFile))
	if err != nil {
		t.Fatal(err)
	}
	env, cmd, err := memberconf.ReadDropIn(b)
	if err != nil {
		t.Fatalf("%s's drop-in: %v\n%s", h.Name, err, b)
	}
	var ic []string
	for _, m := range members {
		ic = append(ic, m.Name+"="+m.PeerURL())
	}
	want := map[string]string{"ETCD_NAME": h.Name, "ETCD_INITIAL_CLUSTER_STATE": "existing",
		"ETCD_ADVERTISE_CLIENT_URLS": h.ClientURL(), "ETCD_INITIAL_ADVERTISE_PEER_URLS": h.PeerURL(),
		"ETCD_LISTEN_PEER_URLS": h.PeerURL(), "ETCD_CLIENT_CERT_AUTH": "true", "ETCD_PEER_KEY_FILE": "/etc/etcd/peer.key"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s's drop-in: %s=%q, want %q\n%s", h.Name, k, env[k], v, b)
		}
	}
	if got := strings.Split(env["ETCD_INITIAL_CLUSTER"], ","); !sameSet(got, ic) {
		t.Errorf("%s's drop-in: initial cluster %v, want %v", h.Name, got, ic)
	}
	if cmd != "/usr/bin/etcd" {
		t.Errorf("%s's drop-in runs %q, want /usr/bin/etcd", h.Name, cmd)
	}
	return env
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}

// The unit flavour (seed 003, StorageOS "Migrate Etcd") on one lab boot, with the variables of
// inventory-examples/storageos.yml: every member's flags in etcd.service's ExecStart naming ${NODE_IP},
// ${NODEn_IP}, ${CLIENT_PORT}, ${PEERS_PORT} of /etc/etcd.conf; the 3 fresh new_etcd hosts have no unit.
// 1. replace_nodes.yml 3 → 3 new hosts with the example's consumer task file (kubectl a recording
// stand-in): each new host's /etc/etcd.conf lists every old and new node, its unit is a member's with its
// own flags, the initial cluster of the members before it and itself naming their variables, state
// existing; StorageOS's kvBackend.address patched to the new members before the old ones left; the members
// exactly the new hosts, every key intact. 2. recover_member.yml on a new member with corrupt data: a
// healthy voter with every key, its unit joining the existing three. No etcd.conf anywhere.
//
// A soak test: 10 to 13 min on the shared 2-core machine (the move alone 7 to 11 min under load).
func TestSoakUnitFlavour(t *testing.T) {
	soak(t)
	step := stepLogger(t)
	ctx, l, keys, noEtcdConf := flavourLab(t, lab.Spec{Hosts: 3, Groups: map[string]int{"new_etcd": 3}, Flavour: lab.FlavourUnit})
	old, fresh := l.Members(), freshHosts(l)
	all := append(append([]*lab.Host{}, old...), fresh...)

	vars := exampleVars(t, "storageos.yml", "etcd_config_flavour", "etcd_unit_environment", "storageos_nodes",
		"storageos_cluster", "storageos_namespace")
	dir := t.TempDir()
	kubectl, patches := filepath.Join(dir, "kubectl"), filepath.Join(dir, "patches")
	if err := os.WriteFile(kubectl, []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" >> "+patches+"\necho storageoscluster/x patched\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	vars["storageos_kubectl"] = kubectl
	vars["etcd_consumer_tasks"] = filepath.Join(ansibletest.Root(t), "inventory-examples", "storageos-kv-backend.yml")

	// 1. 3 → 3 new hosts.
	start := time.Now()
	mustSucceed(t, playbook(t, l, "replace_nodes.yml", vars))
	cli := l.V3Client(t, fresh...)
	checkMembers(ctx, t, l, cli, fresh)
	checkKeys(ctx, t, cli, keys, "written before the move")
	for i, h := range fresh {
		unitFlags(t, h, all[:len(old)+i+1], all)
	}
	var addrs []string
	for _, h := range fresh {
		addrs = append(addrs, h.Addr+":2379")
	}
	wantPatch := `patch storageoscluster storageoscluster --namespace=kube-system --type=merge ` +
		`--patch={"spec": {"kvBackend": {"address": "` + strings.Join(addrs, ",") + `"}}}` + "\n"
	if b, err := os.ReadFile(patches); err != nil || string(b) != wantPatch {
		t.Errorf("kubectl ran %q (%v), want once %q", b, err, wantPatch)
	}
	noEtcdConf()
	step("1. moved onto %d new hosts in %s; kvBackend.address %s", len(fresh), time.Since(start).Round(time.Second), strings.Join(addrs, ","))

	// 2. The last new member's data corrupt: recover_member.yml (group etcd = the new hosts).
	if _, err := l.CorruptDataDir(fresh[2]); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	vars["etcd_recover_member"] = fresh[2].Name
	mustSucceed(t, runPlaybook(t, l, "recover_member.yml", lab.Run{Inventory: etcdInventory(t, l, fresh), ExtraVars: vars}))
	checkMembers(ctx, t, l, cli, fresh)
	checkKeys(ctx, t, l.V3Client(t, fresh[2]), keys, "written before the move (read through the recovered member)")
	env := unitFlags(t, fresh[2], fresh, all)
	noEtcdConf()
	step("2. recovered %s in %s; its unit: --initial-cluster-state=%s --initial-cluster=%s", fresh[2].Name,
		time.Since(start).Round(time.Second), env["ETCD_INITIAL_CLUSTER_STATE"], env["ETCD_INITIAL_CLUSTER"])
}

// exampleVars are the named variables of inventory-examples/NAME's all.vars, as written (Jinja
// expressions stay, for Ansible to template against the lab's hosts).
func exampleVars(t *testing.T, name string, keys ...string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ansibletest.Root(t), "inventory-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	var inv struct {
		All struct {
			Vars map[string]any `yaml:"vars"`
		} `yaml:"all"`
	}
	if err := yaml.Unmarshal(b, &inv); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		v, ok := inv.All.Vars[k]
		if !ok {
			t.Fatalf("%s has no variable %s", name, k)
		}
		out[k] = v
	}
	return out
}

// unitFlags reads h's unit as systemd runs it and checks it joins the existing cluster of members: its
// /etc/etcd.conf names every node of all (NODE_IP its own address), its flags its own name and URLs,
// state existing, the initial cluster naming each member at ${NODEn_IP}.
func unitFlags(t *testing.T, h *lab.Host, members, all []*lab.Host) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Root(), lab.UnitFile))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := os.ReadFile(filepath.Join(h.Root(), lab.NodeEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	wantNodes := map[string]string{"NODE_IP": h.Addr, "CLIENT_PORT": "2379", "PEERS_PORT": "2380"}
	index := map[*lab.Host]int{}
	for i, n := range all {
		wantNodes[fmt.Sprintf("NODE%d_IP", i+1)] = n.Addr
		index[n] = i + 1
	}
	for k, v := range wantNodes {
		if !strings.Contains("\n"+string(nodes), "\n"+k+"="+v+"\n") {
			t.Errorf("%s's %s lacks %s=%s:\n%s", h.Name, lab.NodeEnvFile, k, v, nodes)
		}
	}
	f, err := memberconf.ApplyFlags(b, "", nil, func(string) ([]byte, error) { return nodes, nil })
	if err != nil {
		t.Fatalf("%s's unit: %v\n%s", h.Name, err, b)
	}
	var ic []string
	for _, m := range members {
		ic = append(ic, m.Name+"="+m.PeerURL())
		if ref := fmt.Sprintf("%s=https://${NODE%d_IP}:${PEERS_PORT}", m.Name, index[m]); !strings.Contains(string(b), ref) {
			t.Errorf("%s's unit does not name %s in its initial cluster:\n%s", h.Name, ref, b)
		}
	}
	want := map[string]string{"ETCD_NAME": h.Name, "ETCD_INITIAL_CLUSTER_STATE": "existing",
		"ETCD_ADVERTISE_CLIENT_URLS": h.ClientURL(), "ETCD_INITIAL_ADVERTISE_PEER_URLS": h.PeerURL(),
		"ETCD_LISTEN_PEER_URLS": h.PeerURL(), "ETCD_CLIENT_CERT_AUTH": "true", "ETCD_PEER_KEY_FILE": "/etc/etcd/peer.key"}
	for k, v := range want {
		if f.Env[k] != v {
			t.Errorf("%s's unit: %s=%q, want %q\n%s", h.Name, k, f.Env[k], v, b)
		}
	}
	if got := strings.Split(f.Env["ETCD_INITIAL_CLUSTER"], ","); !sameSet(got, ic) {
		t.Errorf("%s's unit: initial cluster %v, want %v", h.Name, got, ic)
	}
	for _, w := range []string{"EnvironmentFile=" + lab.NodeEnvFile + "\n", "--listen-peer-urls https://${NODE_IP}:${PEERS_PORT} \\\n"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s's unit lacks %q (a member's, its variables kept):\n%s", h.Name, w, b)
		}
	}
	if f.Command != "/usr/bin/etcd" {
		t.Errorf("%s's unit runs %q, want /usr/bin/etcd", h.Name, f.Command)
	}
	return f.Env
}

// Issue 17 item 2: etcd in a container (openshift-ansible's etcd_container unit, `docker run
// --env-file=/etc/etcd/etcd.conf`) never sees a runtime drop-in's environment, so force_new_cluster.yml
// would time out after the other members' data was moved aside. On the shared lab, etcd1's unit is
// given that ExecStart (etcd keeps running) and the other two are stopped (quorum lost, the case the
// playbook is for): the run is refused in preflight naming the unit's docker command, nothing changed.
func TestForceNewClusterRefusesContainerizedEtcd(t *testing.T) {
	l := shared
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m := l.Members()
	cli := l.V3Client(t, m[0])
	membersBefore := memberIDs(ctx, t, cli)
	const unit = "/etc/systemd/system/etcd.service.d/zz-test-container.conf"
	docker := "/usr/bin/docker run --name etcd_container --rm -v /var/lib/etcd:/var/lib/etcd:z -v /etc/etcd:/etc/etcd:ro " +
		"--env-file=/etc/etcd/etcd.conf --net=host --entrypoint=/usr/bin/etcd registry.access.redhat.com/rhel7/etcd"
	if out, err := l.Exec(m[0], "sh", "-c", fmt.Sprintf("mkdir -p %s && printf '[Service]\\nExecStart=\\nExecStart=%s\\n' > %s && systemctl daemon-reload",
		filepath.Dir(unit), docker, unit)); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		l.Exec(m[0], "sh", "-c", "rm -f "+unit+" && systemctl daemon-reload")
		for _, h := range m[1:] {
			l.Exec(h, "systemctl", "start", "etcd")
		}
		if err := l.WaitHealthy(); err != nil {
			t.Errorf("the shared lab did not come back: %v", err)
		}
	})
	for _, h := range m[1:] {
		if out, err := l.Exec(h, "systemctl", "stop", "etcd"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	dirsBefore := dataDirs(t, l)
	res := playbook(t, l, "force_new_cluster.yml", nil)
	msg := failureMsg(res)
	if res.Err == nil || !strings.Contains(msg, "runs etcd in a container") || !strings.Contains(msg, "docker run") ||
		!strings.Contains(msg, m[0].Name) {
		t.Fatalf("want a refusal naming %s's docker run: err %v, message %q", m[0].Name, res.Err, msg)
	}
	if n := changedTasks(res); n != 0 {
		t.Errorf("the refused run changed %d tasks", n)
	}
	if after := dataDirs(t, l); after != dirsBefore {
		t.Errorf("the refused run changed the data dirs:\nbefore %s\nafter  %s", dirsBefore, after)
	}
	for _, h := range m {
		if st := readStateOn(t, h, "force-new-cluster-state.json"); st != nil {
			t.Errorf("the refused run wrote a state file on %s: %v", h.Name, st)
		}
	}
	if !l.UnitActive(m[0], "etcd") {
		t.Error("the refused run stopped etcd on the survivor")
	}
	for _, h := range m[1:] {
		if out, err := l.Exec(h, "systemctl", "start", "etcd"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	if after := memberIDs(ctx, t, cli); after != membersBefore {
		t.Errorf("the refused run changed the members: before %s, after %s", membersBefore, after)
	}
	t.Logf("refused: %s", msg)
}
