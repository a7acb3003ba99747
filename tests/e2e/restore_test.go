package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Quorum lost: two of three members' data destroyed (lab fault), the third still answering. The first
// run restores every member from a fresh snapshot of the survivor but stops at the start (one host's etcd
// unit cannot start); the re-run resumes with the recorded snapshot and token and finishes: three healthy
// voters of a new cluster, every key written before the snapshot with its value, the revision bumped past
// the snapshot's, the old member dirs kept aside, the consumers running; another run changes nothing.
// make soak kills a run between them as the restored members start.
func TestRestoreFromSnapshot(t *testing.T) { restoreFromSnapshot(t, false) }

func TestSoakRestoreFromSnapshotKilledAsMembersStart(t *testing.T) {
	soak(t)
	restoreFromSnapshot(t, true)
}

// restoreFromSnapshot is TestRestoreFromSnapshot; killed adds the run killed as the members start.
func restoreFromSnapshot(t *testing.T, killed bool) {
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := l.SeedV3(ctx, 2000, 1); err != nil {
		t.Fatal(err)
	}
	cli := l.V3Client(t)
	want, before := v3Keys(ctx, t, cli)
	oldCluster := before.Header.ClusterId

	for _, h := range l.Members()[1:] {
		if _, err := l.CorruptDataDir(h); err != nil {
			t.Fatal(err)
		}
	}

	// Check mode first: it runs to its end, says what it would restore from, and changes nothing.
	mustPredict(t, l, "restore_from_snapshot.yml", lab.Run{}, "Check mode: every member would be restored from", "restore-state.json")

	repair := breakEtcdUnit(t, l, l.Members()[2])
	first := playbook(t, l, "restore_from_snapshot.yml", map[string]any{"etcd_restore_start_timeout": "40s"})
	if first.Err == nil {
		t.Fatal("the run went through with an etcd unit that cannot start")
	}
	st := readState(t, l, "restore-state.json")
	snap, _ := st["snapshot"].(map[string]any)
	if st["status"] != "restored" || st["token"] == nil || snap == nil {
		t.Fatalf("state after the interrupted run: %v\n%s", st, failureMsg(first))
	}
	if snap["keys"] != float64(len(want)) || snap["revision"].(float64) < float64(before.Header.Revision) {
		t.Fatalf("the snapshot holds %v keys at revision %v; %d keys at revision %d were written", snap["keys"], snap["revision"],
			len(want), before.Header.Revision)
	}
	repair()

	if killed {
		// The re-run is killed once the restored members have started, before they are seen to agree.
		killedRun(t, l, "restore_from_snapshot.yml", nil, lab.Kill{Task: "etcdops.etcd.etcd_restore : Wait until the members elect a leader, agree and answer"})
		if mid := readState(t, l, "restore-state.json"); mid["status"] != "restored" || mid["token"] != st["token"] {
			t.Fatalf("state after the killed run: %v (token before %v)", mid, st["token"])
		}
	}

	mustResume(t, playbook(t, l, "restore_from_snapshot.yml", nil), "etcd_restore")
	if after := readState(t, l, "restore-state.json"); after["status"] != "complete" || after["token"] != st["token"] {
		t.Fatalf("state after the re-run: %v (token before %v)", after, st["token"])
	}

	cli = l.V3Client(t)
	got, after := v3Keys(ctx, t, cli)
	checkSameKeys(t, want, got)
	if after.Header.Revision < int64(snap["revision"].(float64))+1000000000 || after.Header.ClusterId == oldCluster {
		t.Fatalf("revision %d (snapshot %v), cluster %x (old %x): want the bumped revision of a new cluster",
			after.Header.Revision, snap["revision"], after.Header.ClusterId, oldCluster)
	}
	checkRebuilt(ctx, t, l, cli, "/var/lib/etcd/member.pre-restore-*", l.Members())
	// The fresh snapshot went through the controller in this cluster's own directory (other labs may be
	// restoring beside it), which is gone with it, and with what a killed run may have left there.
	if relay := controllerDir(t, l, "restore"); !isGone(relay) {
		left, _ := os.ReadDir(relay)
		t.Errorf("the controller's relay directory is left: %s holds %v", relay, left)
	}
	mustChangeNothing(t, l, "restore_from_snapshot.yml", "already restored")
}

// On the shared lab (healthy, v2 data): the restore refuses a cluster that holds quorum, and, forced past
// that, a cluster with v2 data (pointing to force_new_cluster.yml) and a member with ETCD_WAL_DIR - each
// before changing anything.
func TestRestoreRefusals(t *testing.T) {
	l := shared
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cli := l.V3Client(t)
	shape := func() string {
		r, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		m, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("cluster %x revision %d keys %d members %d", r.Header.ClusterId, r.Header.Revision, r.Count, len(m.Members))
	}
	before := shape()
	walDir := l.Members()[1]
	setWALDir := func(on bool) {
		t.Helper()
		cmd := "sed -i '/^ETCD_WAL_DIR=/d' /etc/etcd/etcd.conf"
		if on {
			cmd = "echo ETCD_WAL_DIR=/var/lib/etcd-wal >> /etc/etcd/etcd.conf"
		}
		if out, err := l.Exec(walDir, "sh", "-c", cmd); err != nil {
			t.Fatalf("%s: %s %v", walDir.Name, out, err)
		}
	}
	for _, tc := range []struct {
		extra  map[string]any
		walDir bool
		want   string
	}{
		{nil, false, "quorum holds (leader "},
		{map[string]any{"etcd_restore_force": true}, false, "force_new_cluster.yml"},
		{map[string]any{"etcd_restore_force": true}, true, "ETCD_WAL_DIR=/var/lib/etcd-wal"},
	} {
		setWALDir(tc.walDir)
		res := playbook(t, l, "restore_from_snapshot.yml", tc.extra)
		setWALDir(false)
		if res.Err == nil {
			t.Fatalf("%v: the restore ran on a healthy cluster with v2 data", tc.extra)
		}
		if msg := failureMsg(res); !strings.Contains(msg, tc.want) {
			t.Errorf("%v: the refusal does not say %q: %s", tc.extra, tc.want, msg)
		}
		if n := changedTasks(res); n != 0 {
			t.Errorf("%v: the refused restore changed %d tasks", tc.extra, n)
		}
	}
	if after := shape(); after != before {
		t.Errorf("the refused restores changed the cluster: before %s, after %s", before, after)
	}
	for _, h := range l.Members() {
		if _, err := os.Stat(filepath.Join(h.Root(), "var/lib/etcd-restore")); !os.IsNotExist(err) {
			t.Errorf("%s: a refused restore made the snapshot directory: %v", h.Name, err)
		}
		if !l.UnitActive(h, "etcd") {
			t.Errorf("%s: etcd does not run after a refused restore", h.Name)
		}
	}
	if st := readState(t, l, "restore-state.json"); st != nil {
		t.Errorf("a refused restore wrote its state file: %v", st)
	}
}

// etcd 3.6, every member down, no masters: no member answers, so the restore refuses until told the cluster holds no
// v2 data (changing nothing), then restores from the newest verified backup of etcd_backup: the keys as
// they were when it was taken, the later writes gone, three healthy voters. make soak then forces a restore
// of the healthy cluster from a snapshot file on the controller (etcd_restore_snapshot, etcd_restore_force).
func TestRestoreFromBackupWhenNoMemberAnswers(t *testing.T) { restoreFromBackup(t, false) }

func TestSoakRestoreFromBackupThenFromTheController(t *testing.T) {
	soak(t)
	restoreFromBackup(t, true)
}

// restoreFromBackup is TestRestoreFromBackupWhenNoMemberAnswers; fromController adds the forced restore.
func restoreFromBackup(t *testing.T, fromController bool) {
	l := lab.Up(t, lab.Spec{Hosts: 3, Etcd: "3.6"})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if _, err := l.SeedV3(ctx, 300, 1); err != nil {
		t.Fatal(err)
	}
	cli := l.V3Client(t)
	mustSucceed(t, runTestdata(t, l, "backup.yml", map[string]any{"backup_name": "pre-upgrade-1"}))
	backedUp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/after-the-backup", "lost"); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Members() {
		if out, err := l.Exec(h, "systemctl", "stop", "etcd"); err != nil {
			t.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}

	refused := playbook(t, l, "restore_from_snapshot.yml", nil)
	if msg := failureMsg(refused); refused.Err == nil || !strings.Contains(msg, "etcd_restore_v2_checked") {
		t.Fatalf("the restore did not refuse an unknown v2 state: %v %s", refused.Err, msg)
	}
	if n := changedTasks(refused); n != 0 || readState(t, l, "restore-state.json") != nil {
		t.Errorf("the refused restore changed %d tasks, state %v", n, readState(t, l, "restore-state.json"))
	}

	res := playbook(t, l, "restore_from_snapshot.yml", map[string]any{"etcd_restore_v2_checked": true})
	mustSucceed(t, res)
	if msg := res.Find("etcdops.etcd.etcd_restore : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "pre-upgrade-1/snapshot.db") {
		t.Fatalf("the restore did not use the backup: %v", msg)
	}
	t.Logf("restored from the backup in %s: %s", res.Duration.Round(time.Second), summary(t, res))

	cli = l.V3Client(t)
	after, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Kvs) != len(backedUp.Kvs) {
		t.Fatalf("%d keys after the restore, %d when the backup was taken", len(after.Kvs), len(backedUp.Kvs))
	}
	for i, kv := range backedUp.Kvs {
		if string(after.Kvs[i].Key) != string(kv.Key) || string(after.Kvs[i].Value) != string(kv.Value) {
			t.Fatalf("key %d: %s after the restore, %s in the backup", i, after.Kvs[i].Key, kv.Key)
		}
	}
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}

	if !fromController {
		return
	}
	// Forced on the healthy cluster, from a snapshot file on the controller: rolled back to it once more,
	// the finished restore's state file archived.
	name, _ := readState(t, l, "restore-state.json")["snapshot"].(map[string]any)["name"].(string)
	b, err := os.ReadFile(filepath.Join(l.Members()[1].Root(), "var/lib/etcd-restore", name))
	if err != nil {
		t.Fatal(err)
	}
	named := filepath.Join(t.TempDir(), "named.db")
	if err := os.WriteFile(named, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/after-the-restore", "lost"); err != nil {
		t.Fatal(err)
	}
	res = playbook(t, l, "restore_from_snapshot.yml", map[string]any{"etcd_restore_force": true, "etcd_restore_snapshot": named})
	mustSucceed(t, res)
	if msg := res.Find("etcdops.etcd.etcd_restore : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "controller:"+named) {
		t.Fatalf("the forced restore did not use the named file: %v", msg)
	}
	cli = l.V3Client(t)
	again, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || again.Count != int64(len(backedUp.Kvs)) {
		t.Fatalf("%v keys after the forced restore (%v), want %d", again, err, len(backedUp.Kvs))
	}
	if out, err := l.Exec(l.Members()[0], "sh", "-c", "ls /var/lib/etcd-backup/restore-state.superseded-*"); err != nil {
		t.Errorf("the finished restore's state file was not archived: %s %v", out, err)
	}
}
