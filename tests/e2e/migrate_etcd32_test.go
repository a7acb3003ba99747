package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
)

// OpenShift 3.6-3.11 clusters run etcd 3.2: the migration in both modes on a lab of 3.2.32 members
// with 3.2's etcdctl. Offline is make test's offline migration (every member migrating its own store,
// the default rebuild): with Ansible's default connection settings, run again (nothing changes), then
// rolled back (the members restored from their pre-migration backups); make soak runs the same on
// etcd 3.4 and 20k keys with the transfer rebuild (TestSoakMigrateOfflineRerunAndRollback). 3.2 does not know ignore_value, so
// the lease attach sends every value again; the data check reads them all.
// The members snapshot every 5000 writes, so the online copy reads the member's snapshot, proved
// current by a quorum read (3.2 reports no applied index). Online on 3.2 is a soak test
// (TestSoakMigrateOnEtcd32Online, for make test's CPU on two cores); make test runs pkg/v2data and
// pkg/v2disk, the copy and the snapshot read, on 3.2.
//
// After the rollback the same cluster is migrated again the seed's way (etcd_v2v3_migrate_rebuild: rejoin,
// members re-added as voters on 3.2, and etcd 3.2's etcdctl migrate through etcd_v2v3_migrate_command), so
// make test runs both tools (and, with the fault-matrix sample's transfer, all three rebuilds); check mode
// predicts the rejoin first.
func TestMigrateOnEtcd32(t *testing.T) {
	l, m := etcd32Lab(t, 2000)
	res := migrateOffline(t, l, m, "local")
	// etcd_v2_migrate on every 3.2 member's own dir, all at one index of the log: every key, the hidden ones
	// too (the OAuth tokens' "_" names).
	ran := ranOnly(res.Find(transformTask))
	if len(ran) != 3 {
		t.Errorf("etcd_v2_migrate ran on %d members of etcd 3.2, want 3: %v", len(ran), ran)
	}
	for _, r := range ran {
		if fmt.Sprint(r.Values["keys"]) != "2000" || fmt.Sprint(r.Values["hidden"]) == "0" || fmt.Sprint(r.Values["leases"]) == "0" ||
			fmt.Sprint(r.Values["raft_index"]) != fmt.Sprint(ran[0].Values["raft_index"]) || fmt.Sprint(r.Values["leases"]) != fmt.Sprint(ran[0].Values["leases"]) {
			t.Errorf("etcd_v2_migrate on etcd 3.2: %v (the first: %v)", r.Values, ran[0].Values)
		}
	}
	if len(ran) > 0 {
		t.Logf("etcd_v2_migrate on etcd 3.2: %v keys, %v hidden, at index %v", ran[0].Values["keys"], ran[0].Values["hidden"], ran[0].Values["raft_index"])
	}
	attached := res.Find("etcdops.etcd.etcd_v2v3_migrate : Attach leases to the keys that had a v2 TTL")
	// etcd_v2_migrate leased every key with a v2 TTL: step 9 finds none left to lease (and would send the
	// values again on 3.2, which does not know ignore_value).
	if len(attached) != 1 || attached[0].Values["resent_values"] != true || fmt.Sprint(attached[0].Values["attached"]) != "0" {
		t.Errorf("the lease attach on etcd 3.2: %v; want nothing attached, values to be sent again", attached)
	}
	// 3.2 has no HashKV: the members started on the given db converge, and the result says the data was not compared.
	started := res.Find("etcdops.etcd.etcd_v2v3_migrate : Wait until every member is healthy, converged and holds the same v3 data")
	if len(started) != 1 || started[0].Values["converged"] != true || !strings.Contains(fmt.Sprint(started[0].Values["data_not_compared"]), "no HashKV") {
		t.Errorf("the convergence wait on etcd 3.2: %v", started)
	}

	before := memberIDs(context.Background(), t, l.V3Client(t))
	// The seed's way throughout: its rebuild and its tool, etcd 3.2's own etcdctl migrate.
	rejoin := map[string]any{"etcd_v2v3_migrate_rebuild": "rejoin", "etcd_v2v3_migrate_command": "etcdctl migrate --data-dir=/var/lib/etcd"}
	mustPredict(t, l, "migrate_v2_to_v3.yml", lab.Run{ExtraVars: rejoin}, "Check mode: the offline migration would run", "migration-state.json")
	rejoined := runPlaybook(t, l, "migrate_v2_to_v3.yml", lab.Run{ExtraVars: rejoin})
	mustSucceed(t, rejoined)
	t.Logf("migrated again, rejoin, in %s: %s", rejoined.Duration.Round(time.Second), summary(t, rejoined))
	checkMigrated(t, l, m)
	if joins := rejoined.Find("etcdops.etcd.etcd_member_join : Start etcd on the member"); len(joins) != 2 {
		t.Errorf("rejoin started %d re-added members, want 2", len(joins))
	}
	if after := memberIDs(context.Background(), t, l.V3Client(t)); after == before {
		t.Errorf("members %s: rejoin re-added the others, their IDs should have changed", after)
	}
}

// Online, 8000 keys: past the members' first snapshot.
func TestSoakMigrateOnEtcd32Online(t *testing.T) {
	soak(t)
	l, m := etcd32Lab(t, 8000)
	res := playbook(t, l, "migrate_v2_to_v3.yml", map[string]any{"etcd_migration_mode": "online"})
	mustSucceed(t, res)
	t.Logf("online migration on etcd 3.2 took %s: %s", res.Duration.Round(time.Second), summary(t, res))
	checkMigrated(t, l, m)
	copied := res.Find("etcdops.etcd.etcd_v2v3_migrate : Copy the v2 keyspace into v3 on the running cluster (with leases, verified)")
	if len(copied) != 1 || copied[0].Values["source_read"] != "snapshot" || copied[0].Values["verified"] != true {
		t.Errorf("the copy did not read the member's snapshot, verified: %v", copied)
	}
}

// etcd32Lab is a 3-host lab of etcd 3.2 members (snapshotting every 5000 writes) with masters and keys v2 keys.
func etcd32Lab(t *testing.T, keys int) (*lab.Lab, *dataset.Manifest) {
	l, m := seededLab(t, lab.Spec{Hosts: 3, Masters: true, Etcd: "3.2", SnapshotCount: 5000}, keys)
	if st, err := l.V3Client(t).Status(t.Context(), l.Members()[0].ClientURL()); err != nil || !strings.HasPrefix(st.Version, "3.2.") {
		t.Fatalf("status: %v %v, want etcd 3.2", st, err)
	}
	return l, m
}
