package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// The rollback restores every member from copies that need not agree (a live backup's are taken at nearly,
// not exactly, one time): here etcd1's copy holds entries every member had committed that etcd2's and
// etcd3's copies lack. Started without etcd1, those two would elect a leader that writes over those
// entries, and etcd1 could not rejoin (raft: conflict with a committed entry). The rollback starts the
// member whose log ends furthest with one other first (roles/etcd_v2v3_migrate/tasks/restore.yml); every
// member must then serve the keys only etcd1's copy had.
func TestRollbackFromCopiesOfDifferentLength(t *testing.T) {
	l, m := seededLab(t, lab.Spec{Hosts: 3, Masters: true}, 200)
	step := stepLogger(t)
	first, others := l.Members()[0], l.Members()[1:]
	const backup = "copies-of-different-length"
	mustSucceed(t, runTestdataOn(t, l, "backup.yml", others[0].Name+","+others[1].Name, map[string]any{"backup_name": backup}))
	step("%s and %s backed up", others[0].Name, others[1].Name)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	late := map[string]string{}
	kapi := v2Keys(t, l)
	for i := range 50 {
		k, v := fmt.Sprintf("/rollback-order/late-%02d", i), fmt.Sprintf("only in %s's copy %d", first.Name, i)
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
		late[k] = v
	}
	waitV2Applied(ctx, t, l, late)
	mustSucceed(t, runTestdataOn(t, l, "backup.yml", first.Name, map[string]any{"backup_name": backup}))
	step("%d keys written, then %s backed up", len(late), first.Name)

	res := playbook(t, l, "rollback_migration.yml", map[string]any{"etcd_rollback_backup": backup})
	mustSucceed(t, res)
	step("rolled back in %s", res.Duration.Round(time.Second))
	var startedFirst []string
	for _, r := range res.Find("etcdops.etcd.etcd_v2v3_migrate : Start etcd on those two") {
		if r.Values["skipped"] != true {
			startedFirst = append(startedFirst, r.Host)
		}
	}
	if len(startedFirst) != 2 || !slices.Contains(startedFirst, first.Name) {
		t.Errorf("started first: %v, want %s (its log ends furthest) and one other", startedFirst, first.Name)
	}
	checkRolledBack(t, l, m)
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitV2Applied(ctx, t, l, late)
}

// v2Keys is a v2 client of the lab's cluster.
func v2Keys(t *testing.T, l *lab.Lab, hosts ...*lab.Host) clientv2.KeysAPI {
	t.Helper()
	o := l.Conn(hosts...)
	c, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	return clientv2.NewKeysAPI(c)
}

// waitV2Applied waits until every member's own store (a read that is not a quorum read) holds want.
func waitV2Applied(ctx context.Context, t *testing.T, l *lab.Lab, want map[string]string) {
	t.Helper()
	for _, h := range l.Members() {
		kapi := v2Keys(t, l, h)
		for k, v := range want {
			for {
				resp, err := kapi.Get(ctx, k, nil)
				if err == nil && resp.Node.Value == v {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s does not serve %s=%q: %v", h.Name, k, v, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}
