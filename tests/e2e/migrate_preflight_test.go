package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// The preflight refuses, changing nothing, when v2 holds root nodes outside the migrated prefixes (a hidden
// one too) that are not left out knowingly, when v3 already holds keys under the migrated prefixes and
// when the v3 revision moved (keys written and deleted: their tombstones would hide re-migrated keys);
// with no v2 data it reports "no v2 keys to migrate" and succeeds without changes.
func TestMigratePreflight(t *testing.T) {
	l, _ := migrationLab(t, 500)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cli := l.V3Client(t)

	refusedWith := func(extra map[string]any, want ...string) {
		t.Helper()
		res := playbook(t, l, "migrate_v2_to_v3.yml", extra)
		if res.Err == nil {
			t.Fatalf("the playbook ran through; want a refusal mentioning %q", want)
		}
		for _, w := range want {
			if msg := failureMsg(res); !strings.Contains(msg, w) {
				t.Fatalf("refusal %q does not mention %q", msg, w)
			}
		}
		assertUntouched(t, l, res)
	}
	refused := func(want string) { t.Helper(); refusedWith(nil, want) }
	// The seed's etcdctl migrate runs on the first member only: every member migrating its own store needs the module.
	refusedWith(map[string]any{"etcd_v2v3_migrate_command": "etcdctl migrate --data-dir=/var/lib/etcd"},
		"etcd_v2v3_migrate_rebuild local", "-e etcd_v2v3_migrate_rebuild=transfer")

	o := l.Conn()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(v2)
	// Root nodes outside the prefixes: a hidden one (the v2 API never lists it; etcdctl migrate drops it)
	// and a visible one. Refused, naming both; leaving them out knowingly passes this check.
	for _, k := range []string{"/_outside/token", "/registry-old/key"} {
		if _, err := kapi.Set(ctx, k, "v2 only", nil); err != nil {
			t.Fatal(err)
		}
	}
	refusedWith(nil, "/_outside, /registry-old outside etcd_migration_prefixes", "etcd_migration_left_out")
	if _, err := cli.Put(ctx, "/kubernetes.io/pods/default/written-in-v3", "x"); err != nil {
		t.Fatal(err)
	}
	refusedWith(map[string]any{"etcd_migration_left_out": []string{"/_outside", "/registry-old/"}}, "already holds keys under /kubernetes.io")
	for _, k := range []string{"/_outside", "/registry-old"} {
		if _, err := kapi.Delete(ctx, k, &clientv2.DeleteOptions{Recursive: true, Dir: true}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := cli.Delete(ctx, "/kubernetes.io/pods/default/written-in-v3"); err != nil {
		t.Fatal(err)
	}
	refused("not 1: v3 keys were written and deleted")

	for _, dir := range []string{"/kubernetes.io", "/openshift.io"} {
		if _, err := kapi.Delete(ctx, dir, &clientv2.DeleteOptions{Recursive: true, Dir: true}); err != nil {
			t.Fatal(err)
		}
	}
	res := playbook(t, l, "migrate_v2_to_v3.yml", nil)
	mustSucceed(t, res)
	if msg := summary(t, res); !strings.Contains(msg, "no v2 keys to migrate") {
		t.Fatalf("summary %q", msg)
	}
	assertUntouched(t, l, res)
}

// assertUntouched: no task changed anything, no state file, consumers and etcd still running.
func assertUntouched(t *testing.T, l *lab.Lab, res *lab.Result) {
	t.Helper()
	if n := changedTasks(res); n != 0 {
		t.Errorf("%d tasks changed something", n)
	}
	if st := migrationState(t, l); st != nil {
		t.Errorf("a state file was written: %v", st)
	}
	for _, h := range l.Members() {
		for _, unit := range append([]string{"etcd"}, lab.MasterServices...) {
			if !l.UnitActive(h, unit) {
				t.Errorf("%s: %s is not running", h.Name, unit)
			}
		}
	}
}
