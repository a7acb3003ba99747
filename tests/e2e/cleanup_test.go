package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Seed 000 end to end: a cluster migrated by this collection whose masters were put back on etcd2
// without restoring data, then written through v2 (new, changed, deleted, TTL and hidden keys) while
// someone deleted keys in v3 by hand. The migration refuses it; a plain `etcdctl migrate` would lose
// data (shown on a copy of a member); the clean-up rebuilds the cluster from the v2 keyspace alone
// (v3 empty at revision 1, v2 exactly as the masters left it; killed at its end, a re-run finishes it) and says
// "already clean" on a second run.
// make test checks the state the migration needs (checkCleanedUp: no v3 key at revision 1, a v2 snapshot on
// every member); make soak then migrates the cleaned-up cluster.
func TestCleanupAfterFailedMigration(t *testing.T) { cleanupAfterFailedMigration(t, false) }

func TestSoakCleanupAfterFailedMigrationThenMigrated(t *testing.T) {
	soak(t)
	cleanupAfterFailedMigration(t, true)
}

// cleanupAfterFailedMigration is TestCleanupAfterFailedMigration; thenMigrate adds the migration after it.
func cleanupAfterFailedMigration(t *testing.T, thenMigrate bool) {
	step := stepLogger(t)
	l, m := migrationLab(t, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()

	// 1-4. Migrated with this collection; fallen back as the operator did (master-config to etcd2, no
	// data restored, masters started); the masters write through v2; keys deleted in v3 by hand
	// (tombstones: the v3 revision moves), one of them also changed in v2 after the fall-back.
	want, kapi := failedMigration(ctx, t, l, m)
	for _, h := range l.Members() {
		if backend, _ := masterStorage(t, h); backend != "" && backend != "etcd2" {
			t.Fatalf("%s: master-config.yaml storage-backend %q after the fall-back", h.Name, backend)
		}
	}
	before := v3Shape(ctx, t, l)
	step("1-4. migrated, fallen back; v2 after it: %d keys expected; written %v, deleted %v; deleted %d keys in v3 by hand: %s",
		len(want.keys), want.written, want.deleted, len(want.v3Deleted), before)

	// 5. The migration refuses, changing nothing.
	refused := playbook(t, l, "migrate_v2_to_v3.yml", longLeases)
	if refused.Err == nil {
		t.Fatalf("the migration ran through on a fallen-back cluster: %s", summary(t, refused))
	}
	msg := failureMsg(refused)
	if !strings.Contains(msg, "cleanup_failed_migration.yml") {
		t.Errorf("the refusal does not point to the clean-up playbook: %q", msg)
	}
	if n := changedTasks(refused); n != 0 {
		t.Errorf("the refused migration changed %d tasks", n)
	}
	if after := v3Shape(ctx, t, l); after != before {
		t.Errorf("the refused migration changed the cluster: before %s, after %s", before, after)
	}
	step("5. the migration refused in %s: %s", refused.Duration.Round(time.Second), msg)

	// 6. The trap: `etcdctl migrate` on a copy of a member loses v2 writes.
	showTrap(ctx, t, l, want)
	step("6. trap shown")

	// 7. The clean-up: predicted by check mode, changing nothing; then run.
	mustPredict(t, l, "cleanup_failed_migration.yml", lab.Run{}, "Check mode: the clean-up would run", "cleanup-state.json")
	if after := v3Shape(ctx, t, l); after != before {
		t.Errorf("the clean-up's check mode changed the cluster: before %s, after %s", before, after)
	}
	// Killed as its last change starts (the failed migration's state set aside; it used to come after the
	// clean-up was recorded complete, and the re-run then did nothing more): the re-run finishes the job.
	killed := killedRun(t, l, "cleanup_failed_migration.yml", nil,
		lab.Kill{Task: "etcdops.etcd.etcd_cleanup : Set the failed migration's state file aside (kept, timestamped)"})
	clean := playbook(t, l, "cleanup_failed_migration.yml", nil)
	mustSucceed(t, clean)
	step("7. cleaned up: killed at its end after %s, the re-run took %s: %s", killed.Duration.Round(time.Second),
		clean.Duration.Round(time.Second), summary(t, clean))
	checkCleanedUp(ctx, t, l, kapi, want)

	// 8. A second run changes nothing and says so.
	again := playbook(t, l, "cleanup_failed_migration.yml", nil)
	mustSucceed(t, again)
	if n, s := changedTasks(again), summary(t, again); n != 0 || !strings.Contains(s, "already clean") {
		t.Errorf("second clean-up: %d changed tasks, summary %q", n, s)
	}
	step("8. second clean-up in %s: %s", again.Duration.Round(time.Second), summary(t, again))

	if !thenMigrate {
		return
	}
	// 9. The migration now passes its preflight and loses nothing of the v2 keyspace.
	migrated := playbook(t, l, "migrate_v2_to_v3.yml", longLeases)
	if migrated.Err != nil {
		snaps, _ := l.Exec(l.Members()[0], "ls", "-l", "/var/lib/etcd/member/snap", "/var/lib/etcd/member/wal")
		t.Fatalf("the migration after the clean-up failed: %v\n%s\nsnap and wal of %s:\n%s",
			migrated.Err, failureMsg(migrated), l.Members()[0].Name, snaps)
	}
	step("9. migrated after the clean-up in %s: %s", migrated.Duration.Round(time.Second), summary(t, migrated))
	checkV3Equals(ctx, t, l, want)
}

// checkV3Equals asserts v3 holds the v2 keyspace after a migration: every key (hidden ones too) with
// its value, TTL keys on a lease, keys deleted in v2 absent.
func checkV3Equals(ctx context.Context, t *testing.T, l *lab.Lab, want *keyspace) {
	t.Helper()
	resp, err := l.V3Client(t).Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*mvccKV{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = &mvccKV{value: string(kv.Value), lease: kv.Lease}
	}
	bad := 0
	report := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 10 {
			t.Errorf("v3 after the migration: "+format, args...)
		}
	}
	for k, w := range want.keys {
		switch kv := got[k]; {
		case kv == nil:
			report("%s is missing", k)
		case kv.value != w.value:
			report("%s has another value (%d bytes, want %d)", k, len(kv.value), len(w.value))
		case w.ttl && kv.lease == 0:
			report("%s has no lease", k)
		}
	}
	for _, k := range want.deleted {
		if got[k] != nil {
			report("%s, deleted in v2 after the fall-back, is back", k)
		}
	}
	if bad == 0 {
		t.Logf("v3 holds the %d keys of the v2 keyspace, hidden ones and leases included", len(want.keys))
	}
}

type mvccKV struct {
	value string
	lease int64
}

// checkCleanupRefusedOnEtcd3 runs the clean-up on a cluster whose masters run on etcd3 (set up by
// TestEtcd3ConsumersWithoutRecordedMigration, which shares its lab): it must refuse, since it would
// discard their live v3 data, before changing anything.
func checkCleanupRefusedOnEtcd3(t *testing.T, l *lab.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The masters on etcd3 write v3 keys (as after a migration).
	cli := l.V3Client(t)
	for i := 0; i < 5; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("/kubernetes.io/pods/default/live-on-v3-%d", i), "live"); err != nil {
			t.Fatal(err)
		}
	}
	before := v3Shape(ctx, t, l)

	res := playbook(t, l, "cleanup_failed_migration.yml", nil)
	if res.Err == nil {
		t.Fatalf("the clean-up ran through with the masters on etcd3: %s", summary(t, res))
	}
	msg := failureMsg(res)
	if !strings.Contains(msg, "etcd3") {
		t.Errorf("the refusal does not say the masters run on etcd3: %q", msg)
	}
	if n := changedTasks(res); n != 0 {
		t.Errorf("%d tasks changed something", n)
	}
	if after := v3Shape(ctx, t, l); after != before {
		t.Errorf("the refused clean-up changed the cluster: before %s, after %s", before, after)
	}
	if st := cleanupState(t, l); st != nil {
		t.Errorf("a clean-up state file was written: %v", st)
	}
	for _, h := range l.Members() {
		for _, unit := range append([]string{"etcd"}, lab.MasterServices...) {
			if !l.UnitActive(h, unit) {
				t.Errorf("%s: %s is not running", h.Name, unit)
			}
		}
		if backend, _ := masterStorage(t, h); backend != "etcd3" {
			t.Errorf("%s: master-config.yaml storage-backend %q, want etcd3 untouched", h.Name, backend)
		}
		if out, err := l.Exec(h, "sh", "-c", "ls -d /var/lib/etcd/member.pre-cleanup-* 2>/dev/null || true"); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("%s: member dirs moved aside: %s %v", h.Name, out, err)
		}
	}
	if state := cleanupUnitState(t, l); state != "not-found" {
		t.Errorf("%s on %s: LoadState %s", cleanupUnit, l.Members()[0].Name, state)
	}
	t.Logf("refused in %s: %s", res.Duration.Round(time.Second), msg)
}

// longLeases gives every TTL prefix a lease of an hour or more, so no key expires from v3 while a
// test compares revisions and keys (the 10 s defaults of two prefixes would).
var longLeases = map[string]any{"etcd_v2v3_migrate_ttl_defaults": map[string]int{
	"/kubernetes.io/events": 3600, "/kubernetes.io/masterleases": 3600, "/openshift.io/oauth/accesstokens": 86400,
	"/openshift.io/oauth/authorizetokens": 3600, "/openshift.io/leases/controllers": 3600}}

const cleanupUnit = "etcdops-cleanup-etcd.service"

// runTestdata runs testdata/NAME against the lab with the collection installed.
func runTestdata(t testing.TB, l *lab.Lab, name string, extra map[string]any) *lab.Result {
	t.Helper()
	return runTestdataOn(t, l, name, "", extra)
}

// runTestdataOn is runTestdata on the hosts limit names (--limit; all when empty).
func runTestdataOn(t testing.TB, l *lab.Lab, name, limit string, extra map[string]any) *lab.Result {
	t.Helper()
	env := lab.EnvMap(ansibletest.Install(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := l.Playbook(ctx, lab.Run{Playbook: filepath.Join("testdata", name), Limit: limit, ExtraVars: extra, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// v2Key is one key the v2 keyspace must hold.
type v2Key struct {
	value string
	ttl   bool // a TTL of its own (keys in TTL directories expire with the directory)
}

// keyspace is the v2 keyspace as the masters left it after the fall-back.
type keyspace struct {
	keys      map[string]v2Key
	dirs      map[string]bool // directory → has a TTL
	written   []string        // set in v2 after the fall-back (new or changed)
	deleted   []string        // deleted in v2 after the fall-back
	v3Deleted []string        // deleted in v3 by hand
	untouched []string        // of v3Deleted, those v2 did not change after the fall-back
}

// failedMigration brings a lab to seed 000's situation: migrated with this collection, the masters
// back on etcd2 without a restore, v2 written after it and v3 keys deleted by hand. It returns the v2
// keyspace the masters left and a v2 client.
func failedMigration(ctx context.Context, t testing.TB, l *lab.Lab, m *dataset.Manifest) (*keyspace, clientv2.KeysAPI) {
	t.Helper()
	for _, res := range []*lab.Result{playbook(t, l, "migrate_v2_to_v3.yml", longLeases), runTestdata(t, l, "fallback.yml", nil)} {
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Failures())
		}
	}
	o := l.Conn()
	c2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(c2)
	want := writeAfterFallback(ctx, t, kapi, m)
	for _, k := range want.v3Deleted {
		if _, err := l.V3Client(t).Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	return want, kapi
}

// writeAfterFallback writes through v2 as the masters would after the fall-back and returns the
// keyspace v2 must hold then: the manifest with new keys, changed values, deleted keys, TTL keys and
// hidden keys (new and changed).
func writeAfterFallback(ctx context.Context, t testing.TB, kapi clientv2.KeysAPI, m *dataset.Manifest) *keyspace {
	t.Helper()
	ks := &keyspace{keys: map[string]v2Key{}, dirs: map[string]bool{}}
	var plain []string
	var event, hidden string
	for _, e := range m.Entries {
		if e.Dir {
			ks.dirs[e.Key] = e.TTL > 0
			continue
		}
		ks.keys[e.Key] = v2Key{value: string(e.Value()), ttl: e.TTL > 0}
		switch {
		case e.Hidden && e.TTL > 0 && hidden == "":
			hidden = e.Key
		case !e.Hidden && e.TTL > 0 && strings.HasPrefix(e.Key, "/kubernetes.io/events/") && event == "":
			event = e.Key
		case !e.Hidden && e.TTL == 0 && e.InDir == "" && e.Kind == dataset.KindJSON:
			plain = append(plain, e.Key)
		}
	}
	if len(plain) < 9 || event == "" || hidden == "" {
		t.Fatalf("the dataset lacks keys to change: %d plain, event %q, hidden %q", len(plain), event, hidden)
	}
	set := func(key, value string, ttl time.Duration) {
		t.Helper()
		if _, err := kapi.Set(ctx, key, value, &clientv2.SetOptions{TTL: ttl}); err != nil {
			t.Fatalf("v2 set %s: %v", key, err)
		}
		ks.keys[key] = v2Key{value: value, ttl: ttl > 0}
		ks.written = append(ks.written, key)
	}
	// Changed values of existing keys (plain, TTL, hidden).
	for _, k := range plain[:3] {
		set(k, `{"kind":"ConfigMap","apiVersion":"v1","changed":"after the fall-back","key":"`+k+`"}`, 0)
	}
	set(event, `{"kind":"Event","apiVersion":"v1","message":"changed after the fall-back"}`, time.Hour)
	set(hidden, `{"kind":"OAuthAccessToken","apiVersion":"v1","changed":"after the fall-back"}`, time.Hour)
	// New keys: plain, with a TTL, hidden (with and without a TTL).
	set("/kubernetes.io/configmaps/default/after-fallback", `{"kind":"ConfigMap","apiVersion":"v1","new":true}`, 0)
	set("/openshift.io/routes/app-prod/after-fallback", `{"kind":"Route","apiVersion":"v1","new":true}`, 0)
	set("/kubernetes.io/events/default/after-fallback", `{"kind":"Event","apiVersion":"v1","new":true}`, time.Hour)
	set("/openshift.io/oauth/accesstokens/_after-fallback-token", `{"kind":"OAuthAccessToken","new":true}`, time.Hour)
	set("/kubernetes.io/_internal/after-fallback", `{"new":true,"hidden":true}`, 0)
	// Deleted keys.
	for _, k := range plain[3:6] {
		if _, err := kapi.Delete(ctx, k, nil); err != nil {
			t.Fatalf("v2 delete %s: %v", k, err)
		}
		delete(ks.keys, k)
		ks.deleted = append(ks.deleted, k)
	}
	// For the hand deletes in v3: one key changed in v2 after the fall-back, three not touched.
	ks.untouched = append([]string{}, plain[6:9]...)
	ks.v3Deleted = append([]string{plain[0]}, ks.untouched...)
	return ks
}

// v3Shape sums up what a refused run must not change: member IDs, v3 key count and revision.
func v3Shape(ctx context.Context, t *testing.T, l *lab.Lab) string {
	t.Helper()
	cli := l.V3Client(t)
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d v3 keys at revision %d, members %s", resp.Count, resp.Header.Revision, memberIDs(ctx, t, cli))
}

// showTrap runs seed 000's trap on a copy of the first member's data dir: `etcdctl migrate` there,
// the copy served by a throwaway single-member etcd, and its v3 compared with the v2 keyspace. It
// must lose keys written after the fall-back (or keep old values, or bring deleted keys back).
//
// etcdctl 3.4's migrate rebuilds the v2 store from the last v2 snapshot plus the WAL after it, and
// panics replaying membership changes (the migration's force-new-cluster and re-added members) from
// a WAL without snapshot; seed 000 forces a snapshot with a low snapshot count. The throwaway etcd
// does the same: started once on the copy with --snapshot-count 1 it writes a v2 snapshot.
func showTrap(ctx context.Context, t *testing.T, l *lab.Lab, want *keyspace) {
	t.Helper()
	const copyDir = "/var/tmp/trap-copy"
	h := l.Members()[0]
	exec := func(args ...string) string {
		t.Helper()
		out, err := l.Exec(h, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	exec("systemctl", "stop", "etcd")
	exec("sh", "-c", "rm -rf "+copyDir+" && cp -a /var/lib/etcd "+copyDir)
	exec("systemctl", "start", "etcd")
	defer func() {
		l.Exec(h, "systemctl", "stop", "trap-etcd")
		l.Exec(h, "systemctl", "reset-failed", "trap-etcd")
		l.Exec(h, "rm", "-rf", copyDir)
	}()
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}

	client := fmt.Sprintf("http://%s:23790", h.Addr)
	peer := fmt.Sprintf("http://%s:23800", h.Addr)
	trapEtcd := func(extra ...string) {
		t.Helper()
		l.Exec(h, "systemctl", "reset-failed", "trap-etcd")
		exec(append([]string{"systemd-run", "--unit", "trap-etcd", "/usr/bin/etcd", "--name", "trap", "--data-dir", copyDir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer}, extra...)...)
	}
	snaps := func() string {
		out, _ := l.Exec(h, "sh", "-c", "ls "+copyDir+"/member/snap/*.snap 2>/dev/null | tail -n1")
		return strings.TrimSpace(string(out))
	}
	old := snaps()
	trapEtcd("--force-new-cluster", "--snapshot-count", "1")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if s := snaps(); s != "" && s != old {
			// etcd writes the .snap file in place: give it time to finish before stopping.
			time.Sleep(3 * time.Second)
			t.Logf("v2 snapshot of the copy: %s (before: %q)", s, old)
			break
		}
		if time.Now().After(deadline) {
			log, _ := l.Exec(h, "journalctl", "-u", "trap-etcd", "--no-pager", "-n", "30")
			t.Fatalf("the throwaway etcd wrote no v2 snapshot in %s:\n%s", copyDir, log)
		}
	}
	exec("systemctl", "stop", "trap-etcd")
	if b := exec("sh", "-c", "ls "+copyDir+"/member/snap/"); strings.Contains(b, "broken") {
		t.Fatalf("a broken v2 snapshot in the copy: %s", b)
	}
	out, err := l.Exec(h, "env", "ETCDCTL_API=3", "etcdctl", "migrate", "--data-dir="+copyDir)
	if err != nil {
		msg, _, _ := strings.Cut(string(out), "goroutine")
		t.Fatalf("etcdctl migrate on a copy of %s's data dir: %v\n%s", h.Name, err, tail(msg, 1500))
	}
	t.Logf("etcdctl migrate on a copy of %s's data dir: %s", h.Name, tail(string(out), 300))
	trapEtcd()

	trap, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	var resp *clientv3.GetResponse
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err = trap.Get(c, "/", clientv3.WithPrefix())
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := l.Exec(h, "journalctl", "-u", "trap-etcd", "--no-pager", "-n", "30")
			t.Fatalf("the throwaway etcd on the migrated copy does not answer: %v\n%s", err, log)
		}
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	lost := func(keys []string) []string {
		var out []string
		for _, k := range keys {
			if v, ok := got[k]; !ok {
				out = append(out, k+" (missing)")
			} else if v != want.keys[k].value {
				out = append(out, k+" (old value)")
			}
		}
		return out
	}
	var back []string
	for _, k := range want.deleted {
		if _, ok := got[k]; ok {
			back = append(back, k)
		}
	}
	lostWritten, lostUntouched := lost(want.written), lost(want.untouched)
	t.Logf("trap: v3 of the migrated copy holds %d keys (v2: %d); of the keys written after the fall-back it lost %v; "+
		"of the v2 keys deleted in v3 by hand it lost %v; keys deleted in v2 still there: %v",
		len(got), len(want.keys), lostWritten, lostUntouched, back)
	if len(lostWritten) == 0 {
		t.Errorf("etcdctl migrate on the copy kept every key written after the fall-back: the trap is not shown")
	}
	if len(lostUntouched) == 0 {
		t.Errorf("etcdctl migrate on the copy restored the keys deleted in v3 by hand: their tombstones did not hide them")
	}
}

// checkCleanedUp asserts the outcome of the clean-up.
func checkCleanedUp(ctx context.Context, t *testing.T, l *lab.Lab, kapi clientv2.KeysAPI, want *keyspace) {
	t.Helper()
	cli := l.V3Client(t)
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 || resp.Header.Revision != 1 {
		t.Errorf("v3 after the clean-up: %d keys at revision %d, want none at 1", resp.Count, resp.Header.Revision)
	}
	checkV2Equals(ctx, t, kapi, want)

	members, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mem := range members.Members {
		if mem.IsLearner {
			t.Errorf("member %s is a learner", mem.Name)
		}
		names = append(names, mem.Name)
	}
	if strings.Join(sorted(names), ",") != "etcd1,etcd2,etcd3" {
		t.Errorf("members after the clean-up %v, want etcd1..3 voting", names)
	}
	for _, h := range l.Members() {
		if _, err := cli.Status(ctx, h.ClientURL()); err != nil {
			t.Errorf("%s does not answer: %v", h.Name, err)
		}
		for _, svc := range lab.MasterServices {
			if !l.UnitActive(h, svc) {
				t.Errorf("%s: %s is not running after the clean-up", h.Name, svc)
			}
		}
		if backend, _ := masterStorage(t, h); backend != "" && backend != "etcd2" {
			t.Errorf("%s: master-config.yaml storage-backend %q after the clean-up", h.Name, backend)
		}
		if out, err := l.Exec(h, "sh", "-c", "ls /var/lib/etcd/member/snap/*.snap"); err != nil {
			t.Errorf("%s: no v2 snapshot: %s %v", h.Name, out, err)
		}
		if out, err := l.Exec(h, "sh", "-c", "ls -d /var/lib/etcd/member.pre-cleanup-*"); err != nil {
			t.Errorf("%s: the old member dir was not kept: %s %v", h.Name, out, err)
		}
	}
	if state := cleanupUnitState(t, l); state != "not-found" {
		t.Errorf("%s is still loaded on %s (LoadState %s)", cleanupUnit, l.Members()[0].Name, state)
	}
	if st := cleanupState(t, l); st["status"] != "complete" {
		t.Errorf("cleanup-state.json: %v", st)
	}
	if st := migrationState(t, l); st != nil {
		t.Errorf("the migration's state file was not archived: %v", st)
	}
	if out, err := l.Exec(l.Members()[0], "sh", "-c", "ls /var/lib/etcd-backup/migration-state.cleaned-up-*.json"); err != nil {
		t.Errorf("no archived migration state: %s %v", out, err)
	}
}

// checkV2Equals asserts v2 holds exactly the keyspace: every key with its value (hidden ones, which
// v2 listings leave out, one by one), TTL keys and TTL directories with a TTL, no key deleted after
// the fall-back, and no other key under the listed prefixes.
func checkV2Equals(ctx context.Context, t *testing.T, kapi clientv2.KeysAPI, want *keyspace) {
	t.Helper()
	listed := map[string]*clientv2.Node{}
	var walk func(n *clientv2.Node)
	walk = func(n *clientv2.Node) {
		if !n.Dir {
			listed[n.Key] = n
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	for _, p := range []string{"/kubernetes.io", "/openshift.io"} {
		resp, err := kapi.Get(ctx, p, &clientv2.GetOptions{Recursive: true, Quorum: true})
		if err != nil {
			t.Fatalf("v2 get %s: %v", p, err)
		}
		walk(resp.Node)
	}
	bad := 0
	report := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 10 {
			t.Errorf("v2 after the clean-up: "+format, args...)
		}
	}
	for k, w := range want.keys {
		n := listed[k]
		if n == nil {
			if !strings.Contains(k, "/_") {
				report("%s is not listed", k)
				continue
			}
			resp, err := kapi.Get(ctx, k, &clientv2.GetOptions{Quorum: true})
			if err != nil {
				report("hidden key %s: %v", k, err)
				continue
			}
			n = resp.Node
		}
		if n.Value != w.value {
			report("%s has another value (%d bytes, want %d)", k, len(n.Value), len(w.value))
		}
		if w.ttl && n.TTL <= 0 {
			report("%s lost its TTL", k)
		}
	}
	for k := range listed {
		if _, ok := want.keys[k]; !ok {
			report("%s is there and should not be", k)
		}
	}
	for _, k := range want.deleted {
		if _, err := kapi.Get(ctx, k, nil); !clientv2.IsKeyNotFound(err) {
			report("%s, deleted after the fall-back, is back (%v)", k, err)
		}
	}
	for d, ttl := range want.dirs {
		resp, err := kapi.Get(ctx, d, nil)
		if err != nil || !resp.Node.Dir {
			report("directory %s: %v", d, err)
			continue
		}
		if ttl && resp.Node.TTL <= 0 {
			report("directory %s lost its TTL", d)
		}
	}
	if bad > 10 {
		t.Errorf("… %d differences in all", bad)
	}
	if bad == 0 {
		t.Logf("v2 holds the %d keys and %d directories expected, hidden ones included", len(want.keys), len(want.dirs))
	}
}

// cleanupState reads the clean-up's state file on the first etcd host (nil when there is none).
func cleanupState(t testing.TB, l *lab.Lab) map[string]any {
	t.Helper()
	return readState(t, l, "cleanup-state.json")
}

// cleanupUnitState is the LoadState of the clean-up's temporary etcd unit on the first etcd host.
func cleanupUnitState(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Exec(l.Members()[0], "systemctl", "show", "-p", "LoadState", "--value", cleanupUnit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// readState reads a JSON state file of /var/lib/etcd-backup on the first etcd host (nil when absent).
func readState(t testing.TB, l *lab.Lab, name string) map[string]any {
	t.Helper()
	return readStateOn(t, l.Members()[0], name)
}

// readStateOn reads a JSON state file of /var/lib/etcd-backup on host h (nil when absent).
func readStateOn(t testing.TB, h *lab.Host, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Root(), "var/lib/etcd-backup", name))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]any{}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return st
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
