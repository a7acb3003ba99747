package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// Seed 000 on etcd 3.2 (what OpenShift 3.6-3.11 ran), with the control node killed twice: once after
// every member dir was moved aside (nothing serves the data but the temporary copy), once while the
// second member joins (3.2 has no learners: it is a voter that never started, so the rebuilt cluster
// has lost quorum). Each re-run carries on from the kept copy; the third finishes: no v3 key at
// revision 1, v2 exactly as the masters left it, and the migration after it loses nothing.
// In make soak: 20–48 minutes on 2 cores (etcd 3.2's migration and clean-up are slow), the longest test
// of the e2e layer; make test runs the clean-up on 3.4 with the same checks.
func TestSoakCleanupOnEtcd32KilledTwiceThenResumed(t *testing.T) {
	soak(t)
	step := stepLogger(t)
	l, m := seededLab(t, lab.Spec{Hosts: 3, Masters: true, Etcd: "3.2", SnapshotCount: 5000}, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	want, kapi := failedMigration(ctx, t, l, m)
	step("migrated on 3.2, fell back, %d v2 keys expected, %d v3 keys deleted by hand", len(want.keys), len(want.v3Deleted))

	// Killed once every member dir is aside and the temporary etcd stopped: only the copy holds the data.
	killed := killedRun(t, l, "cleanup_failed_migration.yml", nil, lab.Kill{Task: "etcdops.etcd.etcd_cleanup : Copy the temporary member's dir into the data dir"})
	if st := cleanupState(t, l); st["status"] != "rebuilding" {
		t.Fatalf("state after the first kill: %v", st)
	}
	for _, h := range l.Members() {
		if l.UnitActive(h, "etcd") {
			t.Errorf("%s: etcd runs after the first kill; every member should be stopped", h.Name)
		}
		if out, err := l.Exec(h, "sh", "-c", "ls -d /var/lib/etcd/member.pre-cleanup-*"); err != nil {
			t.Errorf("%s: no member dir moved aside: %s %v", h.Name, out, err)
		}
	}
	step("killed in %s with every member dir aside", killed.Duration.Round(time.Second))

	// Killed while the second member joins: added (a voter on 3.2), not started.
	killed = killedRun(t, l, "cleanup_failed_migration.yml", nil, lab.Kill{Task: "etcdops.etcd.etcd_member_join : Write the ETCD_INITIAL_CLUSTER* settings etcd_member returned into etcd.conf"})
	if st := cleanupState(t, l); st["status"] != "rebuilding" {
		t.Fatalf("state after the second kill: %v", st)
	}
	step("killed again in %s as the second member joined", killed.Duration.Round(time.Second))

	done := playbook(t, l, "cleanup_failed_migration.yml", nil)
	mustSucceed(t, done)
	step("resumed in %s: %s", done.Duration.Round(time.Second), summary(t, done))
	checkCleanedUp(ctx, t, l, kapi, want)
	for _, h := range l.Members() {
		out, err := l.Exec(h, "sh", "-c", "ls -d /var/lib/etcd/member.pre-cleanup-* | wc -l")
		if err != nil || strings.TrimSpace(string(out)) == "0" {
			t.Errorf("%s: moved-aside member dirs: %s %v", h.Name, out, err)
		}
	}

	migrated := playbook(t, l, "migrate_v2_to_v3.yml", longLeases)
	mustSucceed(t, migrated)
	step("migrated after the clean-up in %s", migrated.Duration.Round(time.Second))
	checkV3Equals(ctx, t, l, want)
}

// killedRun runs playbooks/NAME (with the extra vars) until ansible-playbook is killed at k; a run
// that ends otherwise fails the test.
func killedRun(t *testing.T, l *lab.Lab, name string, extra map[string]any, k lab.Kill) *lab.Result {
	t.Helper()
	res := runPlaybook(t, l, name, lab.Run{ExtraVars: extra, KillAt: k})
	if !res.Killed {
		t.Fatalf("%s was not killed at %q: %v\n%s", name, k.Task, res.Err, res.Failures())
	}
	return res
}
