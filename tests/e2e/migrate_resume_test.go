package e2e

import (
	"strings"
	"testing"
	"time"
)

// A run that fails after `etcdctl migrate` wrote v3 data into the stopped first member (the point
// where the documented procedure says "roll back, contact support") is re-run to completion: the
// re-run restores the first member from the run's verified backup (the half-migrated dir is kept
// aside) and migrates again, losing nothing.
func TestMigrateInterruptedThenResumed(t *testing.T) {
	l, m := migrationLab(t, migrationKeys)
	res := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{
		"etcd_v2v3_migrate_command": "sh -c 'etcdctl migrate --data-dir=/var/lib/etcd && echo interrupted >&2 && exit 3'",
	})
	if res.Err == nil {
		t.Fatal("the sabotaged run went through")
	}
	if st := migrationState(t, l); st["status"] != "offline" {
		t.Fatalf("state after the interruption: %v", st)
	}
	for _, h := range l.Members() {
		if l.UnitActive(h, "etcd") {
			t.Fatalf("%s: etcd runs; the run should have stopped at the migration of the first member", h.Name)
		}
	}

	res = playbook(t, l, "migrate_v2_to_v3.yml", nil)
	mustSucceed(t, res)
	if msg := res.Find("etcdops.etcd.etcd_preflight : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "Resuming") {
		t.Fatalf("the re-run did not resume: %v", msg)
	}
	t.Logf("resumed run took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	checkMigrated(t, l, m)
	if out, err := l.Exec(l.Members()[0], "sh", "-c", "ls -d /var/lib/etcd/member.pre-rollback-*"); err != nil {
		t.Errorf("the half-migrated member dir was not kept aside: %s %v", out, err)
	}
}
