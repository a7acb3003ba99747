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

	"github.com/etcdops/etcd/lab"
	"github.com/etcdops/etcd/pkg/memberconf"
)

// The drop-in flavour (seed 004, CoreOS etcd-member) on one lab boot: every member's flags live in
// 20-clct-etcd-member.conf's ExecStart and there is no etcd.conf. A member with corrupt data is
// recovered (recover_member.yml) and comes back a healthy voter with every key, its drop-in now
// joining the existing cluster; then 3 → 5 → 3 (scale_cluster.yml): the joining hosts get a drop-in
// with their own flags, the members are exactly group etcd, every key intact. No etcd.conf appears.
func TestDropInFlavour(t *testing.T) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 2}, Flavour: lab.FlavourDropIn})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	old, spare := l.Members(), freshHosts(l)
	cli := l.V3Client(t, old[0])
	keys := map[string]string{}
	putKeys(ctx, t, cli, keys, 200, "/flavour")
	noEtcdConf := func() {
		t.Helper()
		for _, h := range l.Hosts {
			if _, err := os.Stat(filepath.Join(h.Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s has an etcd.conf (%v): the drop-in flavour must not write one", h.Name, err)
			}
		}
	}
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
