package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The documented offline procedure end to end on 20k OpenShift-shaped v2 keys, the first member's db given
// to the others through the controller (transfer), then a second run (changes nothing, says so), then the
// rollback (the original v2 data served again, v3 untouched). make test runs the same on etcd 3.2 and 2000
// keys with the default rebuild, every member migrating its own store (TestMigrateOnEtcd32).
func TestSoakMigrateOfflineRerunAndRollback(t *testing.T) {
	soak(t)
	l, m := migrationLab(t, migrationKeys)
	migrateOffline(t, l, m, "transfer")
}

// transformTask is step 5: etcd_v2_migrate on every member at one index (rebuild local), else on the first.
const transformTask = "etcdops.etcd.etcd_v2v3_migrate : Transform the v2 store into v3, on every member at one index or on the first (judged by the data once etcd runs)"

// ranOnly leaves out the hosts a task skipped.
func ranOnly(results []lab.TaskResult) []lab.TaskResult {
	var ran []lab.TaskResult
	for _, r := range results {
		if r.Values["skipped"] != true {
			ran = append(ran, r)
		}
	}
	return ran
}

// migrateOffline runs the migration in check mode (nothing changes), migrates the lab offline with Ansible's
// default connection settings (pipelining off; the other lab tests pipeline; ssh_args with -C) and the given
// etcd_v2v3_migrate_rebuild (local or transfer), checks the data, the state file, the backups and the member
// dirs kept, runs the migration again (nothing changes), then rolls it back. It returns the first run.
func migrateOffline(t *testing.T, l *lab.Lab, m *dataset.Manifest, rebuild string) *lab.Result {
	// Control sockets of this test's own (a short path: a socket's name has a length limit), to see which the
	// db's transfer used.
	sockets, err := os.MkdirTemp("", "cp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	playbook := func(t *testing.T, l *lab.Lab, name string, extra map[string]any) *lab.Result {
		t.Helper()
		return runPlaybook(t, l, name, lab.Run{ExtraVars: extra,
			Env: map[string]string{"ANSIBLE_PIPELINING": "False", "ANSIBLE_SSH_CONTROL_PATH_DIR": sockets}})
	}

	rebuildVars := map[string]any{"etcd_v2v3_migrate_rebuild": rebuild}
	checkMigrationPredicted(t, l, m, rebuildVars)
	before := memberIDs(context.Background(), t, l.V3Client(t))
	res := playbook(t, l, "migrate_v2_to_v3.yml", rebuildVars)
	mustSucceed(t, res)
	t.Logf("migration took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	checkMigrated(t, l, m)
	checkBackups(t, res, false)
	// transfer: the db went through ssh without compression, on connections of its own
	// (etcd_v2v3_migrate_transfer_ssh_compression); local: nothing crossed the controller.
	if st, err := os.Stat(filepath.Join(sockets, "uncompressed")); (rebuild == "transfer") != (err == nil && st.IsDir()) {
		t.Errorf("rebuild %s: the uncompressed control sockets %s/uncompressed: %v", rebuild, sockets, err)
	}
	// Every member keeps its identity: each migrated its own store or was given the first member's data, no
	// member was removed.
	if after := memberIDs(context.Background(), t, l.V3Client(t)); after != before {
		t.Errorf("members before the migration %s, after %s: want the same", before, after)
	}
	st := migrationState(t, l)
	if st["status"] != "complete" || st["mode"] != "offline" {
		t.Fatalf("state file after the migration: %v", st)
	}
	// The consumers' outage by systemd's clock lies within steps 1-11: this run stopped and started the masters.
	if outage, steps := stateSeconds(t, st, "outage_seconds"), stateSeconds(t, st, "steps_seconds"); outage <= 0 || outage >= steps {
		t.Errorf("outage %.1f s, steps 1-11 %.1f s: want 0 < outage < steps", outage, steps)
	}
	for _, h := range l.Members() {
		if out, err := l.Exec(h, "sh", "-c", "stat -c %a /var/lib/etcd-backup/pre-migration-*/ /var/lib/etcd-backup/pre-migration-*/member/snap/db"); err != nil || strings.TrimSpace(string(out)) != "700\n600" {
			t.Errorf("%s: backup modes %q (%v), want 700 and 600", h.Name, out, err)
		}
	}
	for _, h := range l.Members()[1:] {
		if out, err := l.Exec(h, "sh", "-c", "ls /var/lib/etcd/member/snap/db.*~"); (rebuild == "transfer") != (err == nil) {
			t.Errorf("%s: rebuild %s, replaced db kept: %s %v", h.Name, rebuild, out, err)
		}
	}
	// transfer: the controller's copy is named by the backup, in the cluster's own directory (0700, kept;
	// other labs may be migrating beside it, and earlier ones on the same address).
	if rebuild == "transfer" {
		dir := controllerDir(t, l, "migration")
		if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("the controller's directory %s: %v %v, want a 0700 directory", dir, info, err)
		}
		if db := filepath.Join(dir, fmt.Sprint(st["backup"])+".db"); !isGone(db) {
			t.Errorf("the migrated data is left on the controller: %s", db)
		}
	}

	again := playbook(t, l, "migrate_v2_to_v3.yml", rebuildVars)
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "already migrated") {
		t.Fatalf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}

	// The rollback in check mode first: it says what it would restore and changes nothing.
	units := activations(t, l)
	check := runPlaybook(t, l, "rollback_migration.yml", lab.Run{Check: true})
	mustSucceed(t, check)
	if found := check.Find("etcdops.etcd.etcd_v2v3_migrate : Summary"); len(found) != 1 ||
		!strings.Contains(fmt.Sprint(found[0].Values["msg"]), "Check mode: the rollback would restore backup "+fmt.Sprint(st["backup"])) {
		t.Errorf("the rollback's check mode: summary %v", found)
	}
	if after := activations(t, l); after != units {
		t.Errorf("the rollback's check mode started or stopped units:\nbefore %s\nafter  %s", units, after)
	}
	if after := migrationState(t, l); after["status"] != "complete" {
		t.Errorf("the rollback's check mode changed the state file: %v", after)
	}
	for _, h := range l.Members() {
		if backend, _ := masterStorage(t, h); backend != "etcd3" {
			t.Errorf("%s: storage-backend %q after the rollback's check mode, want etcd3", h.Name, backend)
		}
	}

	back := playbook(t, l, "rollback_migration.yml", nil)
	mustSucceed(t, back)
	checkRolledBack(t, l, m)
	return res
}

// checkRolledBack asserts the cluster serves the original v2 data with an untouched v3 store, three
// healthy members, and consumers running on etcd2 again.
func checkRolledBack(t *testing.T, l *lab.Lab, m *dataset.Manifest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := l.Conn()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dataset.VerifyV2(ctx, clientv2.NewKeysAPI(v2), m)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK(false) {
		t.Fatalf("v2 after the rollback: %s", rep)
	}
	cli := l.V3Client(t)
	resp, err := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 || resp.Header.Revision != 1 {
		t.Fatalf("v3 after the rollback: %d keys at revision %d, want none at 1 (a pristine store)", resp.Count, resp.Header.Revision)
	}
	members, err := cli.MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("members after the rollback: %v %v", members, err)
	}
	for _, h := range l.Members() {
		for _, svc := range lab.MasterServices {
			if !l.UnitActive(h, svc) {
				t.Errorf("%s: %s is not running after the rollback", h.Name, svc)
			}
		}
		if backend, _ := masterStorage(t, h); backend != "" {
			t.Errorf("%s: master-config.yaml still sets storage-backend %q", h.Name, backend)
		}
	}
	if st := migrationState(t, l); st != nil {
		t.Errorf("the state file still says %v after the rollback", st)
	}
}
