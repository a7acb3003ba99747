package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// recover_member.yml and force_new_cluster.yml on the etcd versions besides Debian's 3.4, which
// TestRecoverMember and TestForceNewCluster cover (make soak): 3.2, OpenShift 3.x's (no learners:
// the member comes back as a voter; v2 data beside v3), and 3.6 (no v2 store: the new cluster holds
// v3 data only). One lab per version: etcd3's data corrupted while it runs, recovered; then etcd2's
// and etcd3's destroyed (quorum lost) and a new cluster forced from etcd1.
func TestSoakRecoveryVersions(t *testing.T) {
	soak(t)
	for _, version := range []string{"3.2", "3.6"} {
		t.Run(version, func(t *testing.T) { recoveryOn(t, version) })
	}
}

func recoveryOn(t *testing.T, version string) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true, Etcd: version})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	etcd1, etcd2, etcd3 := l.Members()[0], l.Members()[1], l.Members()[2]
	cli := l.V3Client(t, etcd1)
	keys := map[string]string{}
	putKeys(ctx, t, cli, keys, 200, "/recover/before")
	var m2 *dataset.Manifest
	if version == "3.2" {
		var err error
		if m2, err = l.SeedV2(ctx, 300, 5); err != nil {
			t.Fatal(err)
		}
	}

	// 1. etcd3 crash-loops on corrupt data; writes go on: recovered, a voter on 3.2 from the start.
	if _, err := l.CorruptDataDir(etcd3); err != nil {
		t.Fatal(err)
	}
	_, _ = l.Exec(etcd3, "systemctl", "start", "etcd") // fails: the data is corrupt
	putKeys(ctx, t, cli, keys, 50, "/recover/during")
	res := playbook(t, l, "recover_member.yml", map[string]any{"etcd_recover_member": etcd3.Name})
	mustSucceed(t, res)
	checkRecovered(ctx, t, l, keys)
	learner := checkJoinedAs(t, res, etcd3, version)
	if out, err := l.Exec(etcd3, "sh", "-c", "ls /var/lib/etcd/member.pre-recover-2*Z/snap/db"); err != nil {
		t.Errorf("etcd3's corrupt member dir was not kept aside: %s %v", out, err)
	}
	if st := readState(t, l, "recover-member-state.json"); st != nil {
		t.Errorf("the state file was not set aside after the recovery: %v", st)
	}
	step("etcd %s: corrupt etcd3 recovered (added as learner: %v) in %s", version, learner, res.Duration.Round(time.Second))

	// 2. Quorum lost: etcd2's and etcd3's data destroyed. etcd1, the only member that answers, is the survivor.
	want, _ := v3Keys(ctx, t, cli)
	for _, h := range []*lab.Host{etcd2, etcd3} {
		if _, err := l.CorruptDataDir(h); err != nil {
			t.Fatal(err)
		}
	}
	res = playbook(t, l, "force_new_cluster.yml", nil)
	mustSucceed(t, res)
	st := readState(t, l, "force-new-cluster-state.json")
	if st["status"] != "complete" || st["member"] != etcd1.Name {
		t.Fatalf("state after the new cluster: %v", st)
	}
	compared := 0
	for _, tr := range res.Find("etcdops.etcd.etcd_force_new_cluster : Every other member's v2 keyspace is the survivor's, node for node") {
		if tr.Values["verified"] == true {
			compared++
		}
	}
	if want := map[bool]int{true: 2, false: 0}[m2 != nil]; compared != want {
		t.Errorf("etcd %s: the verification compared %d members' v2 keyspace with the survivor's, want %d", version, compared, want)
	}
	cli = l.V3Client(t)
	checkRebuilt(ctx, t, l, cli, "/var/lib/etcd/member."+st["backup"].(string), []*lab.Host{etcd2, etcd3})
	checkRecovered(ctx, t, l, keys)
	got, _ := v3Keys(ctx, t, cli)
	checkSameKeys(t, want, got)
	for _, h := range l.Members() {
		if out, err := l.Exec(h, "ls", "/var/lib/etcd-backup/"+st["backup"].(string)+"/MANIFEST.json"); err != nil {
			t.Errorf("%s: no member dir backup: %s %v", h.Name, out, err)
		}
	}
	if m2 != nil {
		o := l.Conn()
		c2, err := o.V2()
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := dataset.VerifyV2(ctx, clientv2.NewKeysAPI(c2), m2); err != nil || !rep.OK(false) {
			t.Fatalf("v2 after the new cluster: %v %v", rep, err)
		}
	}
	step("etcd %s: new cluster from etcd1 in %s: %d v3 keys, v2 checked %v", version, res.Duration.Round(time.Second), len(got), m2 != nil)
}

// checkJoinedAs asserts the join of host in res added it as a learner on etcd 3.4 and later and as a
// voter on 3.2 (no learners there), and returns whether it was a learner.
func checkJoinedAs(t *testing.T, res *lab.Result, host *lab.Host, version string) bool {
	t.Helper()
	added := res.Find("etcdops.etcd.etcd_member_join : Add the member as a learner (a voter before etcd 3.4): " + host.Name)
	var join struct {
		Member struct {
			IsLearner bool `json:"is_learner"`
		} `json:"member"`
	}
	if len(added) != 1 || added[0].Decode(&join) != nil {
		t.Fatalf("the add task's result for %s: %v", host.Name, added)
	}
	if wantLearner := version != "3.2"; join.Member.IsLearner != wantLearner {
		t.Errorf("etcd %s: %s added with is_learner %v, want %v", version, host.Name, join.Member.IsLearner, wantLearner)
	}
	return join.Member.IsLearner
}
