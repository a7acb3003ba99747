package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// A run that fails after `etcdctl migrate` wrote v3 data into the stopped first member (the point
// where the documented procedure says "roll back, contact support") is re-run to completion: the
// re-run restores the first member from the run's verified backup (the half-migrated dir is kept
// aside) and migrates again, losing nothing. A soak test (20k keys, two runs): make test's resume is
// TestFaultMatrixMigrateOfflineSample's.
func TestSoakMigrateInterruptedThenResumed(t *testing.T) {
	soak(t)
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
	if msg := res.Find("etcdops.etcd.etcd_v2v3_migrate : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "Resuming") {
		t.Fatalf("the re-run did not resume: %v", msg)
	}
	t.Logf("resumed run took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	checkMigrated(t, l, m)
	if out, err := l.Exec(l.Members()[0], "sh", "-c", "ls -d /var/lib/etcd/member.pre-rollback-*"); err != nil {
		t.Errorf("the half-migrated member dir was not kept aside: %s %v", out, err)
	}
}

// A run interrupted once the data is in v3 on the rebuilt cluster (here a master's API unit fails to
// start again) is re-run once the unit is fixed: it resumes from that phase, only switches and starts
// the consumers and verifies — no second copy, nothing lost. A soak test: make test resumes the migration
// killed at step 11 (TestFaultMatrixMigrateOfflineSample), and TestMasterUnitsProbed fails a start.
func TestSoakMigrateResumesAfterTheRebuild(t *testing.T) {
	soak(t)
	l, m := migrationLab(t, 4000)
	online := map[string]any{"etcd_migration_mode": "online"}
	h, unit := l.Members()[1], "/etc/systemd/system/"+lab.MasterServices[0]+".service.d"
	broken := "mkdir -p " + unit + " && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > " + unit + "/broken.conf && systemctl daemon-reload"
	if out, err := l.Exec(h, "sh", "-c", broken); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	res := playbook(t, l, "migrate_v2_to_v3.yml", online)
	if res.Err == nil {
		t.Fatal("the run went through with a broken master unit")
	}
	if st := migrationState(t, l); st["status"] != "migrated" {
		t.Fatalf("state after the interruption: %v\n%s", st, res.Failures())
	}
	if out, err := l.Exec(h, "sh", "-c", "rm -r "+unit+" && systemctl daemon-reload"); err != nil {
		t.Fatalf("%s: %v", out, err)
	}

	res = playbook(t, l, "migrate_v2_to_v3.yml", online)
	mustSucceed(t, res)
	if msg := res.Find("etcdops.etcd.etcd_v2v3_migrate : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "Resuming") {
		t.Fatalf("the re-run did not resume: %v", msg)
	}
	for _, c := range res.Find("etcdops.etcd.etcd_v2v3_migrate : Copy the v2 keyspace into v3 on the running cluster (with leases, verified)") {
		if c.Values["skipped"] != true {
			t.Errorf("the resumed run copied again on %s", c.Host)
		}
	}
	checkMigrated(t, l, m)
	if st := migrationState(t, l); st["status"] != "complete" {
		t.Fatalf("state after the resumed run: %v", st)
	}
}
