package e2e

import (
	"strings"
	"testing"
	"time"
)

// Online mode: etcd stays up and etcd_v2_copy writes the v2 keyspace into v3 with leases in the same
// pass; the outcome must be the same as offline.
func TestMigrateOnline(t *testing.T) {
	l, m := migrationLab(t, migrationKeys)
	res := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": "online"})
	mustSucceed(t, res)
	t.Logf("online migration took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	if len(res.Find("etcdops.etcd.etcd_v2v3_migrate : Stop etcd on every member, one at a time")) != 0 {
		t.Error("the online mode stopped etcd")
	}
	checkMigrated(t, l, m)
	if st := migrationState(t, l); st["status"] != "complete" || st["mode"] != "online" {
		t.Fatalf("state file: %v", st)
	}
	again := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": "online"})
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "already migrated") {
		t.Fatalf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}
}
