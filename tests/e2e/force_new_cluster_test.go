package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// force_new_cluster.yml on one lab boot (v2 and v3 data, masters): a healthy cluster, a survivor outside the etcd
// group and a survivor without a member dir are refused with nothing changed; with two of three members' data
// destroyed (quorum lost) the first run, picking the survivor, is killed before it forces it (every member dir
// backed up, etcd stopped); the next resumes and finishes: three healthy voters, every v2 key (TTL keys still
// with a TTL) and every v3 key with its value, every member dir backed up, the old member dirs kept aside, no
// force-new-cluster drop-in left, the consumers running; another run changes nothing. make soak adds a run
// between them that resumes, forces the survivor but stops at the last join (that host's etcd unit cannot start).
func TestForceNewCluster(t *testing.T) { forceNewCluster(t, false) }

func TestSoakForceNewClusterStoppedAtTheLastJoin(t *testing.T) {
	soak(t)
	forceNewCluster(t, true)
}

// forceNewCluster is TestForceNewCluster; stopAtJoin adds the run stopped at the last join.
func forceNewCluster(t *testing.T, stopAtJoin bool) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	etcd1, etcd2, etcd3 := l.Members()[0], l.Members()[1], l.Members()[2]
	m2, err := l.SeedV2(ctx, 600, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SeedV3(ctx, 300, 4); err != nil {
		t.Fatal(err)
	}
	cli := l.V3Client(t, etcd1)
	want, _ := v3Keys(ctx, t, cli)
	step("seeded %d v2 entries and %d v3 keys", len(m2.Entries), len(want))

	// 1. Refusals, each before changing anything: a cluster that holds quorum; a survivor outside the etcd group.
	membersBefore, dirsBefore := memberIDs(ctx, t, cli), dataDirs(t, l)
	refuse := func(extra map[string]any, wantMsg string) {
		t.Helper()
		res := playbook(t, l, "force_new_cluster.yml", extra)
		if msg := failureMsg(res); res.Err == nil || !strings.Contains(msg, wantMsg) {
			t.Fatalf("%v: err %v, message %q (want %q)", extra, res.Err, msg, wantMsg)
		}
		if n := changedTasks(res); n != 0 {
			t.Errorf("%v: the refused run changed %d tasks", extra, n)
		}
		if after := dataDirs(t, l); after != dirsBefore {
			t.Errorf("%v: the refused run changed the data dirs:\nbefore %s\nafter  %s", extra, dirsBefore, after)
		}
		if st := readState(t, l, "force-new-cluster-state.json"); st != nil {
			t.Errorf("%v: the refused run wrote a state file: %v", extra, st)
		}
		step("refused %v: %s", extra, failureMsg(res))
	}
	refuse(nil, "quorum holds (leader ")
	refuse(map[string]any{"etcd_force_new_cluster_member": "nosuch"}, "etcd_force_new_cluster_member=nosuch")
	if after := memberIDs(ctx, t, cli); after != membersBefore {
		t.Errorf("the refused runs changed the members: before %s, after %s", membersBefore, after)
	}

	// 2. Quorum lost: etcd2's and etcd3's data destroyed, etcd1 alone without a leader. A survivor without a
	// member dir is refused.
	for _, h := range []*lab.Host{etcd2, etcd3} {
		if _, err := l.CorruptDataDir(h); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := l.Exec(etcd2, "mv", "/var/lib/etcd/member", "/var/lib/etcd/member.test-away"); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	dirsBefore = dataDirs(t, l)
	refuse(map[string]any{"etcd_force_new_cluster_member": etcd2.Name}, "has no /var/lib/etcd/member")
	if out, err := l.Exec(etcd2, "mv", "/var/lib/etcd/member.test-away", "/var/lib/etcd/member"); err != nil {
		t.Fatalf("%s %v", out, err)
	}

	// 2a. Check mode: it runs to its end, predicts the force from etcd1, and changes nothing.
	mustPredict(t, l, "force_new_cluster.yml", lab.Run{}, "Check mode: a new cluster would be forced from "+etcd1.Name,
		"force-new-cluster-state.json")
	step("check mode predicted the force from %s and changed nothing", etcd1.Name)

	// 3. Killed as the survivor is about to be forced: every member dir backed up, etcd stopped everywhere.
	killed := killedRun(t, l, "force_new_cluster.yml", nil, lab.Kill{Task: "etcdops.etcd.etcd_first_member : Start it once with force-new-cluster (runtime drop-in, always removed), then normally"})
	st := readState(t, l, "force-new-cluster-state.json")
	if st["status"] != "forcing" || st["member"] != etcd1.Name {
		t.Fatalf("state after the kill: %v", st)
	}
	for _, h := range l.Members() {
		if l.UnitActive(h, "etcd") {
			t.Errorf("%s: etcd runs after the kill; every member should be stopped", h.Name)
		}
		if out, err := l.Exec(h, "ls", "/var/lib/etcd-backup/"+st["backup"].(string)+"/MANIFEST.json"); err != nil {
			t.Errorf("%s: no member dir backup before the survivor is forced: %s %v", h.Name, out, err)
		}
	}
	step("killed in %s before the survivor was forced (phase forcing, every member dir backed up)", killed.Duration.Round(time.Second))

	if stopAtJoin {
		// 4. Resumed, but etcd3's unit cannot start, so its join fails after the survivor was forced.
		repair := breakEtcdUnit(t, l, etcd3)
		first := playbook(t, l, "force_new_cluster.yml", map[string]any{"etcd_force_new_cluster_join_timeout": "40s"})
		if first.Err == nil {
			t.Fatal("the run went through with an etcd unit that cannot start")
		}
		if msg := first.Find("etcdops.etcd.etcd_force_new_cluster : Report the decision"); len(msg) == 0 ||
			!strings.Contains(msg[0].Values["msg"].(string), "Resuming") {
			t.Fatalf("the run after the kill did not resume: %v", msg)
		}
		if st2 := readState(t, l, "force-new-cluster-state.json"); st2["status"] != "joining" || st2["backup"] != st["backup"] {
			t.Fatalf("state after the interrupted run: %v\n%s", st2, failureMsg(first))
		}
		step("resumed, then interrupted after %s at phase joining: %s", first.Duration.Round(time.Second), tail(failureMsg(first), 300))
		repair()
	}

	// 5. The next run resumes and finishes.
	res := playbook(t, l, "force_new_cluster.yml", nil)
	mustResume(t, res, "etcd_force_new_cluster")
	compared := 0
	for _, tr := range res.Find("etcdops.etcd.etcd_force_new_cluster : Every other member's v2 keyspace is the survivor's, node for node") {
		if tr.Values["verified"] == true {
			compared++
		}
	}
	if compared != 2 {
		t.Errorf("the verification compared %d members' v2 keyspace with the survivor's, want 2", compared)
	}
	step("resumed")
	if after := readState(t, l, "force-new-cluster-state.json"); after["status"] != "complete" || after["backup"] != st["backup"] {
		t.Fatalf("state after the re-run: %v (backup before %v)", after, st["backup"])
	}

	cli = l.V3Client(t)
	checkRebuilt(ctx, t, l, cli, "/var/lib/etcd/member."+st["backup"].(string), []*lab.Host{etcd2, etcd3})
	got, _ := v3Keys(ctx, t, cli)
	checkSameKeys(t, want, got)
	o := l.Conn()
	c2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(c2)
	rep, err := dataset.VerifyV2(ctx, kapi, m2)
	if err != nil || !rep.OK(false) {
		t.Fatalf("v2 after the new cluster: %v %v", rep, err)
	}
	ttl := 0
	for _, e := range m2.Keys() {
		if e.TTL == 0 || e.InDir != "" {
			continue
		}
		r, err := kapi.Get(ctx, e.Key, &clientv2.GetOptions{Quorum: true})
		if err != nil || r.Node.TTL <= 0 {
			t.Fatalf("v2 TTL key %s after the new cluster: %v %v", e.Key, r, err)
		}
		ttl++
	}
	step("every v2 entry (%d checked, %d TTL keys with a TTL) and v3 key (%d) present", rep.Checked, ttl, len(want))

	for _, h := range l.Members() {
		if out, err := l.Exec(h, "sh", "-c", "ls /var/lib/etcd-backup/"+st["backup"].(string)+"/MANIFEST.json"); err != nil {
			t.Errorf("%s: no member dir backup: %s %v", h.Name, out, err)
		}
		if _, err := os.Stat(filepath.Join(h.Root(), "run/systemd/system/etcd.service.d/zz-etcdops-force-new-cluster.conf")); !os.IsNotExist(err) {
			t.Errorf("%s: the force-new-cluster drop-in is left: %v", h.Name, err)
		}
	}

	// 6. Another run changes nothing.
	mustChangeNothing(t, l, "force_new_cluster.yml", "already recovered")
	step("another run changed nothing")
}
