package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// Online mode: etcd stays up and etcd_v2_copy writes the v2 keyspace into v3 with leases in the same
// pass; the outcome must be the same as offline. The members have snapshotted, as long-lived ones have,
// so the copy reads the member's v2 snapshot and the API for the rest. make test moves 2000 keys (members
// snapshotting every 500 writes), then rolls it back: the backup copied each member while it ran, and the
// rollback restores it. make soak moves 20k (every 5000) and runs it again: nothing changes (make test's
// second run of the migration is TestMigrateOnEtcd32's).
func TestMigrateOnline(t *testing.T) { migrateOnline(t, 2000, 500, false) }

func TestSoakMigrateOnline20k(t *testing.T) {
	soak(t)
	migrateOnline(t, migrationKeys, 5000, true)
}

// migrateOnline is TestMigrateOnline on keys v2 keys, the members snapshotting every snapshotCount writes;
// rerun adds the second run, else the rollback follows.
func migrateOnline(t *testing.T, keys, snapshotCount int, rerun bool) {
	l, m := seededLab(t, lab.Spec{Hosts: 3, Masters: true, SnapshotCount: snapshotCount}, keys)
	checkMigrationPredicted(t, l, m, map[string]any{"etcd_migration_mode": "online"})
	res := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": "online"})
	mustSucceed(t, res)
	t.Logf("online migration took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	// Online, nothing stops etcd: the backup copies every member while it runs. The all-stopped backup's
	// tasks are there, skipped; the offline mode's own stop is not included at all.
	backupStops := []string{
		"etcdops.etcd.etcd_backup : Hand the leadership to etcd_backup_stop_last (etcd 3.3 and later)",
		"etcdops.etcd.etcd_backup : Stop etcd on the other members (together when etcd_backup_stop_last leads)",
		"etcdops.etcd.etcd_backup : Stop etcd on etcd_backup_stop_last",
	}
	for _, task := range append(backupStops,
		"etcdops.etcd.etcd_v2v3_migrate : Stop etcd on every member (the backup stopped them on a first run; one at a time on a resume)") {
		found := res.Find(task)
		if len(found) == 0 && slices.Contains(backupStops, task) {
			t.Errorf("no task %q in the run (renamed?)", task)
		}
		for _, r := range found {
			if r.Values["skipped"] != true {
				t.Errorf("the online mode stopped etcd (%s on %s)", task, r.Host)
			}
		}
	}
	checkBackups(t, res, true)
	copied := res.Find("etcdops.etcd.etcd_v2v3_migrate : Copy the v2 keyspace into v3 on the running cluster (with leases, verified)")
	if len(copied) != 1 || copied[0].Values["source_read"] != "snapshot" || copied[0].Values["verified"] != true {
		t.Errorf("the copy did not read the member's snapshot, verified: %v", copied)
	}
	checkMigrated(t, l, m)
	if st := migrationState(t, l); st["status"] != "complete" || st["mode"] != "online" {
		t.Fatalf("state file: %v", st)
	}
	if !rerun {
		mustSucceed(t, playbook(t, l, "rollback_migration.yml", nil))
		checkRolledBack(t, l, m)
		return
	}
	again := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": "online"})
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "already migrated") {
		t.Fatalf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}
}
