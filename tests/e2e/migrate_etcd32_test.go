package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// OpenShift 3.6-3.11 clusters run etcd 3.2: the migration in both modes on a lab of 3.2.32 members
// with 3.2's etcdctl (whose `migrate` writes the offline mode's v3 store), and the offline one rolled
// back (the members restored from their pre-migration backups). 3.2 does not know
// ignore_value, so the lease attach sends every value again; the data check below reads them all.
// The members snapshot every 5000 writes, so the online copy reads the member's snapshot, proved
// current by a quorum read (3.2 reports no applied index). Online on 3.2 is a soak test
// (TestSoakMigrateOnEtcd32Online, for make test's CPU on two cores); make test runs pkg/v2data and
// pkg/v2disk, the copy and the snapshot read, on 3.2.
func TestMigrateOnEtcd32(t *testing.T) { migrateOnEtcd32(t, "offline", 2000) }

// Online, 8000 keys: past the members' first snapshot.
func TestSoakMigrateOnEtcd32Online(t *testing.T) {
	soak(t)
	migrateOnEtcd32(t, "online", 8000)
}

func migrateOnEtcd32(t *testing.T, mode string, keys int) {
	l, m := seededLab(t, lab.Spec{Hosts: 3, Masters: true, Etcd: "3.2", SnapshotCount: 5000}, keys)
	if st, err := l.V3Client(t).Status(t.Context(), l.Members()[0].ClientURL()); err != nil || !strings.HasPrefix(st.Version, "3.2.") {
		t.Fatalf("status: %v %v, want etcd 3.2", st, err)
	}
	res := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": mode})
	mustSucceed(t, res)
	t.Logf("%s migration on etcd 3.2 took %s: %s", mode, res.Duration.Round(time.Second), summary(t, res))
	checkMigrated(t, l, m)
	if mode == "offline" {
		attached := res.Find("etcdops.etcd.etcd_v2v3_migrate : Attach leases to the keys that had a v2 TTL")
		if len(attached) != 1 || attached[0].Values["resent_values"] != true {
			t.Errorf("the lease attach on etcd 3.2 did not send the values again: %v", attached)
		}
		back := playbook(t, l, "rollback_migration.yml", nil)
		mustSucceed(t, back)
		checkRolledBack(t, l, m)
		return
	}
	copied := res.Find("etcdops.etcd.etcd_v2v3_migrate : Copy the v2 keyspace into v3 on the running cluster (with leases, verified)")
	if len(copied) != 1 || copied[0].Values["source_read"] != "snapshot" || copied[0].Values["verified"] != true {
		t.Errorf("the copy did not read the member's snapshot, verified: %v", copied)
	}
}
