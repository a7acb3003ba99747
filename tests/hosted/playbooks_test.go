package hosted

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/playbook"
	"github.com/etcdops/etcd/lab/k8s"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// hangGuard bounds one test's playbook runs: it catches a hang, it is no speed target. Under CI's load
// (the three e2e shards beside this lane on two cores) TestHostedRecoverMemberPlaybook ran past 15 minutes
// (16 min, 2026-12-07, twice its time alone), so it sits far above that; the package's go test timeout
// (mk/k8s.mk) is above the sum of the tests.
const hangGuard = 40 * time.Minute

// hosted_etcd_recover_member.yml: bad input refused and a healthy member left alone (nothing changed);
// a member crash-looping on a corrupt WAL is recovered (a new member ID, every key on it, its old data
// dir kept on its claim) and a re-run changes nothing.
func TestHostedRecoverMemberPlaybook(t *testing.T) {
	l, h, cli, before, _, step := hostedLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	// Bad input and a healthy member: refused or left alone, nothing changed.
	res := h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-7"}, playbook.Kill{})
	if res.Err == nil || !strings.Contains(res.Failures(), "hosted_etcd_member=etcd-7 is no member pod") || changed(res) != 0 {
		t.Fatalf("recover etcd-7: err %v, changed %d, want a refusal naming the option:\n%s", res.Err, changed(res), res.Failures())
	}
	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"}, playbook.Kill{})
	h.ok(res)
	if changed(res) != 0 || !strings.Contains(summary(res), "nothing changed") {
		t.Fatalf("recover of healthy etcd-2: changed %d, summary %q", changed(res), summary(res))
	}
	step("bad input refused, healthy member left alone (nothing changed)")

	// Seed 002, single node recovery: etcd-2 crash-loops on corrupt data. The first run meets a
	// broken reset-member init container: it stops at step 4 naming the container and its log, with
	// the two other members serving every key; once the script is fixed, the re-run recovers etcd-2.
	h.corrupt("etcd-2")
	step("etcd-2 crash-loops on a corrupt WAL")
	h.checkOnly(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"},
		"Check mode: etcd-2 in "+k8s.ControlPlaneNamespace+" would be recovered", "nothing changed")
	if m := members(t, ctx, cli); fmt.Sprint(m) != fmt.Sprint(before) {
		t.Fatalf("members after the check mode: %x, want %x", m, before)
	}
	step("check mode predicted the recovery and changed nothing")
	fix := h.breakResetMember("lab: the way back is broken")
	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2", "hosted_etcd_recover_timeout": 60}, playbook.Kill{})
	if why := res.Failures(); res.Err == nil || !strings.Contains(why, "etcd-2 is not Ready") ||
		!strings.Contains(why, "reset-member") || !strings.Contains(why, "lab: the way back is broken") {
		t.Fatalf("recovery with a broken init container: err %v; want step 4 to name the init container and its log:\n%s", res.Err, why)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := map[uint64]bool{}
	for _, m := range ml.Members {
		left[m.ID] = true
	}
	if len(left) != 2 || !left[before["etcd-0"]] || !left[before["etcd-1"]] {
		t.Fatalf("members after the failed recovery: %v, want etcd-0 and etcd-1 unchanged (etcd-2 removed by step 1)", ml.Members)
	}
	h.assertKeys("etcd-0")
	step("a broken init container named by step 4 (%s), every key still served", res.Duration.Round(time.Second))
	fix()
	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"}, playbook.Kill{})
	h.ok(res)
	step("recovered by the re-run in %s", res.Duration.Round(time.Second))
	after := members(t, ctx, cli)
	if after["etcd-2"] == before["etcd-2"] || after["etcd-0"] != before["etcd-0"] || after["etcd-1"] != before["etcd-1"] {
		t.Errorf("members %x → %x: want etcd-2 re-added with a new ID, the others unchanged", before, after)
	}
	assertHealthy(t, l, "etcd-0")
	h.assertKeys("etcd-2")
	// The corrupt data dir is kept on the claim, beside the new one.
	// One dir set aside, the corrupt one: no data dir made by the old pod's etcd while the move went on.
	out, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "exec", "etcd-2", "-c", "etcd", "--", "/bin/sh", "-c", "ls -d /var/lib/data.pre-recover-*")
	if aside := strings.Fields(string(out)); err != nil || len(aside) != 1 {
		t.Errorf("etcd-2's dirs set aside: %q %v, want one", out, err)
	}
	out, err = l.Kubectl("-n", k8s.ControlPlaneNamespace, "exec", "etcd-2", "-c", "etcd", "--", "/bin/sh", "-c", "ls -d /var/lib/data.pre-recover-*/member/wal")
	if err != nil || !strings.Contains(string(out), "/var/lib/data.pre-recover-") {
		t.Errorf("etcd-2's old data dir not kept: %q %v", out, err)
	}
	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"}, playbook.Kill{})
	h.ok(res)
	if changed(res) != 0 || fmt.Sprint(members(t, ctx, cli)) != fmt.Sprint(after) {
		t.Errorf("re-run of the recovery: changed %d; want nothing changed", changed(res))
	}
	step("re-run changed nothing")
}

// hosted_etcd_recover_member.yml, issue 20's gaps: while another live run holds the control plane's run
// lock the recovery is refused naming it, nothing changed; etcd-2 removed from the membership by hand
// while it runs is re-added, through a recovery killed as it lets the pod go (its lock and phase left
// behind, the pod held Terminating by the recovery's finalizer) and re-run: the lock taken over, a new
// member ID for etcd-2, the others unchanged, three healthy voters, every key on etcd-2 itself, the lock
// released.
func TestHostedRecoverRemovedMemberKilledPlaybook(t *testing.T) {
	l, h, cli, before, _, step := hostedLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	// Another run of this controller (this live test process) holds the lock.
	lock := filepath.Join(h.stateDir, k8s.ControlPlaneNamespace+"-run.lock")
	owner, err := ansibletest.RunLockOwner(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	held, _ := json.Marshal(map[string]any{"owner": owner, "started": time.Now().UTC().Format(time.RFC3339),
		"user": "alice", "controller": "bastion", "pid": os.Getpid(), "playbook": "hosted_etcd_restore.yml"})
	if err := os.MkdirAll(h.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, held, 0o600); err != nil {
		t.Fatal(err)
	}
	// etcd refuses a removal ("unhealthy cluster") until every member has been connected for a few
	// seconds, which a lab just up may not be yet: the operator's retry.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
		_, err := l.EtcdctlIn("etcd-0", "member", "remove", fmt.Sprintf("%x", before["etcd-2"]))
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	step("etcd-2 removed from the membership by hand, the lock held by another run")
	uids := h.podUIDs()
	res := h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"}, playbook.Kill{})
	for _, w := range []string{"Another run holds the run lock " + lock, "owner " + owner, "alice", "hosted_etcd_restore.yml", "This run changed nothing"} {
		if res.Err == nil || !strings.Contains(res.Failures(), w) {
			t.Fatalf("recovery beside a live run: err %v, want a refusal naming %q:\n%s", res.Err, w, res.Failures())
		}
	}
	if b, _ := os.ReadFile(lock); changed(res) != 0 || h.podUIDs() != uids || string(b) != string(held) {
		t.Fatalf("the refused run changed something: changed %d, lock %s", changed(res), b)
	}
	os.Remove(lock)
	step("refused beside a live run, nothing changed")

	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"},
		playbook.Kill{Task: "etcdops.etcd.hosted_etcd_recover_member : Step 3: let the member pod go (the StatefulSet creates it again; its reset-member init container adds the member back)"})
	if !res.Killed {
		t.Fatalf("the recovery was not killed as it lets the pod go: %v\n%s", res.Err, res.Failures())
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("the killed run's lock: %v", err)
	}
	// Held: deleted, its object kept by the finalizer, so the StatefulSet has not created it again.
	if held := h.heldPods(); !strings.HasPrefix(held, "etcd-2@2") {
		t.Fatalf("pods held after the kill: %q, want etcd-2, deleted", held)
	}
	step("recovery killed as it lets the pod go (etcd-2 held, deleted, its data dir aside)")
	res = h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-2"}, playbook.Kill{})
	h.ok(res)
	// The first of the lock's tasks to run is the take-over (the release skips it).
	if r := res.Find("etcdops.etcd.etcd_facts : Take over the lock of a run of this controller that is gone"); len(r) == 0 || r[0].Values["why"] != "takeover" {
		t.Errorf("the re-run did not take the killed run's lock over: %v", r)
	}
	step("re-run took the lock over and finished in %s", res.Duration.Round(time.Second))
	after := members(t, ctx, cli)
	if len(after) != 3 || after["etcd-2"] == 0 || after["etcd-2"] == before["etcd-2"] || after["etcd-0"] != before["etcd-0"] || after["etcd-1"] != before["etcd-1"] {
		t.Errorf("members %x → %x: want etcd-2 re-added with a new ID, the others unchanged", before, after)
	}
	assertHealthy(t, l, "etcd-0")
	h.assertKeys("etcd-2")
}

// hosted_etcd_restore.yml: two of three members' claims destroyed (quorum lost; the StatefulSet gives
// them new empty claims, on which etcd refuses to bootstrap as the member etcd-0 still lists): the
// recovery refuses changing nothing; the restore, killed mid-way and re-run, takes its snapshot from
// etcd-0, the one member with data, and brings back every key at a bumped revision under a new cluster
// ID with three healthy voters, the API servers and reconciliation back; a re-run changes nothing.
func TestHostedRestorePlaybook(t *testing.T) {
	l, h, cli, _, first, step := hostedLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	h.loseQuorum()
	step("quorum lost")
	uids := h.podUIDs()
	res := h.run(ctx, "hosted_etcd_recover_member.yml", map[string]any{"hosted_etcd_member": "etcd-1"}, playbook.Kill{})
	if res.Err == nil || !strings.Contains(res.Failures(), "hosted_etcd_restore.yml") || changed(res) != 0 || h.podUIDs() != uids {
		t.Fatalf("recover under quorum loss: err %v, changed %d; want a refusal naming the restore, nothing changed:\n%s", res.Err, changed(res), res.Failures())
	}
	step("recovery refused (quorum lost), nothing changed")
	h.checkOnly(ctx, "hosted_etcd_restore.yml", nil, "Check mode: "+k8s.ControlPlaneNamespace+" would be restored",
		"saved in member pod etcd-0", "nothing changed")
	step("check mode predicted the restore and changed nothing")

	// The restore, killed once while the second member's data dir is being restored, then re-run.
	res = h.run(ctx, "hosted_etcd_restore.yml", nil, playbook.Kill{Task: "etcdops.etcd.hosted_etcd_restore : Step 5: copy the snapshot into the helper pod", Nth: 2})
	if !res.Killed {
		t.Fatalf("the restore was not killed at the second member's restore: %v\n%s", res.Err, res.Failures())
	}
	states, _ := filepath.Glob(filepath.Join(h.stateDir, "*-restore.json"))
	if len(states) != 1 {
		t.Fatalf("state files after the kill: %v; want the restore's", states)
	}
	// The snapshot's source: etcd-0, the one running member that holds the data.
	var st map[string]any
	if b, err := os.ReadFile(states[0]); err != nil || json.Unmarshal(b, &st) != nil || st["source"] != "etcd-0" {
		t.Fatalf("state file %s: source %v (%v); want etcd-0", states[0], st["source"], err)
	}
	step("restore killed mid-way (%s recorded)", states[0])
	h.checkOnly(ctx, "hosted_etcd_restore.yml", nil, "resuming at phase restoring", "nothing changed")
	step("check mode predicted the resumed restore and changed nothing")
	res = h.run(ctx, "hosted_etcd_restore.yml", nil, playbook.Kill{})
	h.ok(res)
	step("restore resumed and finished in %s", res.Duration.Round(time.Second))
	h.assertRestored(ctx, cli, first)
	out, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "exec", "etcd-0", "-c", "etcd", "--", "/bin/sh", "-c", "ls -d /var/lib/data/member.pre-restore-*/wal")
	if err != nil || !strings.Contains(string(out), "member.pre-restore-") {
		t.Errorf("etcd-0's old member dir not kept: %q %v", out, err)
	}
	res = h.run(ctx, "hosted_etcd_restore.yml", nil, playbook.Kill{})
	h.ok(res)
	if changed(res) != 0 || !strings.Contains(summary(res), "nothing changed") {
		t.Errorf("re-run of the restore: changed %d, summary %q; want nothing changed", changed(res), summary(res))
	}
	step("re-run changed nothing")
}

// hosted_etcd_restore.yml, seed 002's snapshot source (c), and the run lock's Lease. Quorum lost and no
// member's etcd running (all three crash-loop on corrupt WALs), no snapshot file given. While another
// controller's Lease is held the restore is refused naming its holder, nothing changed; once that Lease
// is stale it is taken over, and a hosted_etcd_snapshot_claim that is no member's claim is refused
// naming it, nothing changed; the re-run takes its own failed run's Lease over, copies the member/snap/db
// of the claim with the highest revision (no SHA-256 trailer: verified with skip_hash_check) and brings
// every key back at a bumped revision, the API servers and reconciliation back, the Lease released.
func TestHostedRestoreFromClaimPlaybook(t *testing.T) {
	_, h, cli, _, first, step := hostedLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	h.corrupt("etcd-0", "etcd-1", "etcd-2")
	step("no member's etcd runs (all three crash-loop)")

	// Another controller's run holds the Lease (renewed now, for 1 h).
	const other = "bastion pid 4242 run m:4242:1"
	h.setLease(other, time.Now())
	uids, lease := h.podUIDs(), h.leaseVersion()
	res := h.run(ctx, "hosted_etcd_restore.yml", nil, playbook.Kill{})
	for _, w := range []string{"Another run holds the run lock Lease " + k8s.ControlPlaneNamespace + "/etcdops-run-lock", "holder " + other, "This run changed nothing"} {
		if res.Err == nil || !strings.Contains(res.Failures(), w) {
			t.Fatalf("restore beside another controller's Lease: err %v, want a refusal naming %q:\n%s", res.Err, w, res.Failures())
		}
	}
	// Its file lock released (the lock's .flock guard file stays), no state file.
	if left, _ := filepath.Glob(filepath.Join(h.stateDir, "*.json")); changed(res) != 0 || h.leaseVersion() != lease || h.podUIDs() != uids || len(left) != 0 {
		t.Fatalf("the refused run changed something: changed %d, Lease %s → %s, state dir %v", changed(res), lease, h.leaseVersion(), left)
	}
	if locks, _ := filepath.Glob(filepath.Join(h.stateDir, "*-run.lock")); len(locks) != 0 {
		t.Fatalf("the run refused by the Lease kept its file lock: %v", locks)
	}
	step("refused beside another controller's Lease, nothing changed")

	// That Lease stale (renewed 7 h ago for 1 h): taken over; an unknown claim refused, nothing changed.
	h.setLease(other, time.Now().Add(-7*time.Hour))
	res = h.run(ctx, "hosted_etcd_restore.yml", map[string]any{"hosted_etcd_snapshot_claim": "data-etcd-7"}, playbook.Kill{})
	if res.Err == nil || !strings.Contains(res.Failures(), "hosted_etcd_snapshot_claim=data-etcd-7 is no claim") ||
		!strings.Contains(res.Failures(), "data-etcd-0, data-etcd-1, data-etcd-2") || changed(res) != 0 || h.podUIDs() != uids {
		t.Fatalf("restore from data-etcd-7: err %v, changed %d; want a refusal naming the option and the claims, nothing changed:\n%s",
			res.Err, changed(res), res.Failures())
	}
	if why := leaseWhy(res); why != "stale" {
		t.Errorf("the stale Lease was taken as %q, want stale", why)
	}
	if _, err := os.Stat(filepath.Join(h.stateDir, k8s.ControlPlaneNamespace+"-restore.json")); err == nil {
		t.Fatal("the refused restore left a state file")
	}
	step("stale Lease taken over, unknown claim refused, nothing changed")

	// Check mode reads the claims (read-only helper pods, deleted again) and names the one it would take.
	h.checkOnly(ctx, "hosted_etcd_restore.yml", nil, "the member/snap/db of the claim of etcd-", "nothing changed")
	step("check mode predicted the restore from a claim and changed nothing")

	// The re-run takes its failed run's locks over and restores from a claim's db.
	res = h.run(ctx, "hosted_etcd_restore.yml", nil, playbook.Kill{})
	h.ok(res)
	if why := leaseWhy(res); why != "takeover" {
		t.Errorf("the re-run took the Lease as %q, want takeover", why)
	}
	copied := ""
	for _, r := range res.Tasks {
		if strings.Contains(r.Task, "Step 3 (c): copy the db to the controller") && r.Changed() {
			copied = r.Task
		}
	}
	if copied == "" {
		t.Errorf("the restore did not copy a claim's db: %s", summary(res))
	}
	step("restored from a claim's db in %s (%s)", res.Duration.Round(time.Second), copied)
	h.assertRestored(ctx, cli, first)
}

type hosted struct {
	t        *testing.T
	l        *k8s.Lab
	inv      string
	stateDir string
	env      map[string]string
}

// newHosted writes the inventory the playbooks take (inventory-examples/hosted.yml's shape) and the
// environment they run in (kubectl of the lab on PATH for the kubectl connection).
func newHosted(t *testing.T, l *k8s.Lab) *hosted {
	dir := t.TempDir()
	h := &hosted{t: t, l: l, inv: filepath.Join(dir, "hosted.yml"), stateDir: filepath.Join(dir, "state")}
	inv := fmt.Sprintf(`hosted_etcd:
  hosts:
    lab:
      ansible_connection: local
      ansible_python_interpreter: /usr/bin/python3
      hosted_etcd_kubeconfig: %s
      hosted_etcd_namespace: %s
      hosted_etcd_state_dir: %s
      hosted_cluster_namespace: %s
      hosted_cluster_name: %s
`, l.Kubeconfig, k8s.ControlPlaneNamespace, h.stateDir, k8s.ClusterNamespace, k8s.ClusterName)
	if err := os.WriteFile(h.inv, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = playbook.EnvMap(ansibletest.Install(t))
	h.env["PATH"] = l.Spec.BinDir() + ":" + os.Getenv("PATH")
	return h
}

func (h *hosted) run(ctx context.Context, name string, extra map[string]any, kill playbook.Kill) *playbook.Result {
	h.t.Helper()
	return h.execute(ctx, playbook.Run{Playbook: name, ExtraVars: extra, KillAt: kill})
}

// execute runs one of the collection's playbooks (run.Playbook its name) against the lab.
func (h *hosted) execute(ctx context.Context, run playbook.Run) *playbook.Result {
	h.t.Helper()
	run.Playbook, run.Inventory, run.Env = filepath.Join(ansibletest.Root(h.t), "playbooks", run.Playbook), h.inv, h.env
	res, err := playbook.Execute(ctx, run)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// checkOnly runs playbook name with --check and asserts that it passed, that its summary says each of
// want, and that nothing changed: the pods (by UID), the StatefulSet's and Deployments' replicas, the
// run lock Lease, and the files of the state dir.
func (h *hosted) checkOnly(ctx context.Context, name string, extra map[string]any, want ...string) *playbook.Result {
	h.t.Helper()
	before := h.world()
	res := h.execute(ctx, playbook.Run{Playbook: name, ExtraVars: extra, Check: true})
	if res.Err != nil {
		h.t.Fatalf("%s --check failed: %v\n%s", name, res.Err, res.Failures())
	}
	for _, w := range want {
		if !strings.Contains(summary(res), w) {
			h.t.Fatalf("%s --check: summary %q, want it to say %q", name, summary(res), w)
		}
	}
	if after := h.world(); after != before {
		h.t.Fatalf("%s --check changed something:\nbefore %s\nafter  %s", name, before, after)
	}
	return res
}

// world is what a check mode must leave as it was: the pods' UIDs, the replicas asked of the StatefulSet
// and the Deployments, the Lease's version, each file of the state dir with its size and modification time.
func (h *hosted) world() string {
	h.t.Helper()
	sizes, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "statefulsets,deployments", "-o",
		"jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} {end}")
	if err != nil {
		h.t.Fatal(err)
	}
	files := ""
	entries, _ := os.ReadDir(h.stateDir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			files += fmt.Sprintf("%s:%d:%s ", e.Name(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		}
	}
	return fmt.Sprintf("pods [%s] replicas [%s] lease [%s] state dir [%s]", h.podUIDs(), sizes, h.leaseVersion(), files)
}

func (h *hosted) ok(res *playbook.Result) {
	h.t.Helper()
	if res.Err != nil {
		h.t.Fatalf("playbook failed: %v\n%s", res.Err, res.Failures())
	}
	// A run that ends well releases its run lock.
	if locks, _ := filepath.Glob(filepath.Join(h.stateDir, "*-run.lock")); len(locks) > 0 {
		h.t.Fatalf("run lock left after a run that ended well: %v", locks)
	}
	if holder := h.lease(); holder != "" {
		h.t.Fatalf("run lock Lease left after a run that ended well, held by %q", holder)
	}
	if held := h.heldPods(); held != "" {
		h.t.Fatalf("member pods still held by the recovery's finalizer after a run that ended well: %s", held)
	}
}

// heldPods names the pods that carry the recovery's finalizer (held while a member's data dir moves),
// with their deletion time: "etcd-2@2026-12-07T18:25:47Z".
func (h *hosted) heldPods() string {
	h.t.Helper()
	out, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "pods", "-o",
		`jsonpath={range .items[*]}{.metadata.name}@{.metadata.deletionTimestamp} {.metadata.finalizers}{"\n"}{end}`)
	if err != nil {
		h.t.Fatal(err)
	}
	var held []string
	for _, line := range strings.Split(string(out), "\n") {
		if pod, finalizers, _ := strings.Cut(line, " "); strings.Contains(finalizers, `"etcdops.etcd/recover-member"`) {
			held = append(held, pod)
		}
	}
	return strings.Join(held, " ")
}

// corrupt overwrites the start of each member's WAL (the running etcd only appends past it) and
// deletes its pod: the new pod's etcd fails to read its WAL and crash-loops.
func (h *hosted) corrupt(pods ...string) {
	h.t.Helper()
	for _, p := range pods {
		if _, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "exec", p, "-c", "etcd", "--", "/bin/sh", "-c",
			"for w in /var/lib/data/member/wal/*.wal; do dd if=/dev/urandom of=$w bs=4096 count=1 conv=notrunc; done; sync"); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := h.l.Kubectl(append([]string{"-n", k8s.ControlPlaneNamespace, "delete", "pod", "--wait=true"}, pods...)...); err != nil {
		h.t.Fatal(err)
	}
	h.waitCrashLooping(pods...)
}

// loseQuorum destroys the claims of etcd-1 and etcd-2 (etcd-0 is alone) and waits until no member pod is Ready.
func (h *hosted) loseQuorum() {
	h.t.Helper()
	h.destroyClaims("etcd-1", "etcd-2")
	if err := k8s.WaitUntil(2*time.Minute, "etcd-0 not ready (quorum lost)", func() error {
		out, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "statefulset", "etcd", "-o", "jsonpath={.status.readyReplicas}")
		if err == nil && strings.Trim(string(out), "0") != "" {
			err = fmt.Errorf("%s ready", out)
		}
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
}

// destroyClaims loses the claims of the StatefulSet's top members at once, as lost volumes: the
// StatefulSet gives them new empty claims, on which etcd crash-loops ("member … has already been
// bootstrapped") while no quorum can add them back. The members go by a scale-down, not by deleting
// pods: a deleted member's new pod can start while another old member still serves, and its
// reset-member init container then adds it back with the quorum that is about to go (CI saw it).
func (h *hosted) destroyClaims(pods ...string) {
	h.t.Helper()
	ns := []string{"-n", k8s.ControlPlaneNamespace}
	keep := 3 - len(pods)
	for i, p := range pods {
		if p != fmt.Sprintf("etcd-%d", keep+i) {
			h.t.Fatalf("destroyClaims(%v): the claims must be the top members', in order", pods)
		}
	}
	kubectl := func(args ...string) {
		if _, err := h.l.Kubectl(append(ns, args...)...); err != nil {
			h.t.Fatal(err)
		}
	}
	kubectl("scale", "statefulset", "etcd", fmt.Sprintf("--replicas=%d", keep))
	gone := []string{"delete", "--wait=true", "--timeout=3m"}
	for _, p := range pods {
		gone = append(gone, "pvc/data-"+p)
	}
	// The claims go once their pods have: the wait covers both.
	kubectl(gone...)
	kubectl("scale", "statefulset", "etcd", "--replicas=3")
	h.waitCrashLooping(pods...)
}

// waitCrashLooping waits until each pod's etcd container has restarted.
func (h *hosted) waitCrashLooping(pods ...string) {
	h.t.Helper()
	for _, p := range pods {
		// A new pod waits for its new claim, which the StatefulSet creates only once the old one is gone.
		if err := k8s.WaitUntil(5*time.Minute, p+" crash-looping", func() error {
			out, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "pod", p, "-o",
				`jsonpath={.status.containerStatuses[?(@.name=="etcd")].restartCount} {.status.phase} {.status.conditions[*].message}`)
			if n, _ := strconv.Atoi(strings.Fields(string(out) + " x")[0]); err == nil && n < 1 {
				err = fmt.Errorf("restarts, phase and conditions %q", out)
			}
			return err
		}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// breakResetMember makes the StatefulSet's reset-member init container fail with msg in its log
// (a new pod mounts the ConfigMap as it is); the returned func puts the script back.
func (h *hosted) breakResetMember(msg string) func() {
	h.t.Helper()
	const key = "reset-member.sh"
	orig, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "configmap", "etcd-scripts", "-o", "jsonpath={.data.reset-member\\.sh}")
	if err != nil || len(orig) == 0 {
		h.t.Fatalf("read %s: %q %v", key, orig, err)
	}
	patch := func(script string) {
		p, _ := json.Marshal(map[string]any{"data": map[string]string{key: script}})
		if _, err := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "patch", "configmap", "etcd-scripts", "--type", "merge", "-p", string(p)); err != nil {
			h.t.Fatal(err)
		}
	}
	patch(fmt.Sprintf("echo %q; exit 3\n", msg))
	return func() { patch(string(orig)) }
}

// assertKeys reads every key serializably from the member itself: its own copy of the data.
func (h *hosted) assertKeys(pod string) {
	h.t.Helper()
	out, err := h.l.EtcdctlIn(pod, "get", "/lab/", "--prefix", "--consistency=s", "--print-value-only")
	if err != nil {
		h.t.Fatal(err)
	}
	if got := strings.Fields(string(out)); len(got) != keys || got[0] != "value-0" {
		h.t.Fatalf("%s holds %d of %d keys", pod, len(got), keys)
	}
}

// assertRestored checks a finished restore: three healthy voters in a new cluster, every key on each
// member, the revision bumped past 1e9, the API-server stand-ins back to 1 replica, reconciliation resumed.
func (h *hosted) assertRestored(ctx context.Context, old *clientv3.Client, first *clientv3.GetResponse) {
	t, l := h.t, h.l
	t.Helper()
	old.Close()
	conn := l.EtcdConn()
	cli, err := conn.V3()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	members(t, ctx, cli)
	assertHealthy(t, l, "etcd-1")
	for _, m := range []string{"etcd-0", "etcd-1", "etcd-2"} {
		h.assertKeys(m)
	}
	get, err := cli.Get(ctx, "/lab/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if get.Count != keys || get.Header.Revision < 1_000_000_000 || get.Header.ClusterId == first.Header.ClusterId {
		t.Errorf("after the restore: %d keys at revision %d in cluster %x (before: %x); want %d at a revision bumped past 1e9 in a new cluster",
			get.Count, get.Header.Revision, get.Header.ClusterId, first.Header.ClusterId, keys)
	}
	for _, d := range []string{"kube-apiserver", "openshift-apiserver", "openshift-oauth-apiserver"} {
		if out, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "deployment", d, "-o", "jsonpath={.spec.replicas}"); err != nil || string(out) != "1" {
			t.Errorf("%s replicas %q %v after the restore; want 1", d, out, err)
		}
	}
	if out, err := l.Kubectl("-n", k8s.ClusterNamespace, "get", "hostedcluster/"+k8s.ClusterName, "-o", "jsonpath={.spec.pausedUntil}"); err != nil || string(out) != "" {
		t.Errorf("HostedCluster spec.pausedUntil %q %v after the restore; want empty", out, err)
	}
}

// lease returns the run lock Lease's holder ("" when there is none); leaseVersion its resourceVersion.
func (h *hosted) lease() string {
	out, _ := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "lease", "etcdops-run-lock", "--ignore-not-found", "-o", "jsonpath={.spec.holderIdentity}")
	return string(out)
}

// setLease writes the run lock Lease as another controller's run would, renewed at renewed for 1 h.
func (h *hosted) setLease(holder string, renewed time.Time) {
	h.t.Helper()
	at := renewed.UTC().Format("2006-01-02T15:04:05.000000Z")
	if _, err := h.l.Apply(fmt.Sprintf(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"etcdops-run-lock","namespace":%q},
"spec":{"holderIdentity":%q,"acquireTime":%q,"renewTime":%q,"leaseDurationSeconds":3600}}`, k8s.ControlPlaneNamespace, holder, at, at)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hosted) leaseVersion() string {
	out, _ := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "lease", "etcdops-run-lock", "--ignore-not-found", "-o", "jsonpath={.metadata.resourceVersion}")
	return string(out)
}

// leaseWhy is how the run took the Lease: free, stale, takeover or break.
func leaseWhy(res *playbook.Result) string {
	for _, r := range res.Find("etcdops.etcd.hosted_etcd_facts : Decide whether the Lease is free for this run") {
		if f, ok := r.Values["ansible_facts"].(map[string]any); ok {
			if run, ok := f["_hosted_etcd_lease_run"].(map[string]any); ok {
				return strings.TrimSpace(fmt.Sprint(run["why"]))
			}
		}
	}
	return ""
}

func (h *hosted) podUIDs() string {
	out, _ := h.l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "pods", "-o", "jsonpath={.items[*].metadata.uid}")
	return string(out)
}

func changed(res *playbook.Result) int {
	n := 0
	for _, s := range res.Stats {
		n += s.Changed
	}
	return n
}

func summary(res *playbook.Result) string {
	for _, r := range res.Find("Summary") {
		if msg, ok := r.Values["msg"].(string); ok {
			return msg
		}
	}
	return ""
}

// hostedLab boots the lab with its hosted etcd, writes the keys and returns the members and the first
// key's response (its header names the cluster).
func hostedLab(t *testing.T) (*k8s.Lab, *hosted, *clientv3.Client, map[string]uint64, *clientv3.GetResponse, func(string, ...any)) {
	start := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%s] %s", time.Since(start).Round(time.Second), fmt.Sprintf(format, args...))
	}
	l := k8s.Up(t, k8s.Spec{})
	if err := l.DeployHosted(); err != nil {
		t.Fatal(err)
	}
	h := newHosted(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := l.EtcdConn()
	cli, err := conn.V3()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	for i := 0; i < keys; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("/lab/key-%03d", i), fmt.Sprintf("value-%d", i)); err != nil {
			t.Fatalf("put through etcd-client: %v", err)
		}
	}
	before := members(t, ctx, cli)
	first, err := cli.Get(ctx, "/lab/key-000")
	if err != nil {
		t.Fatal(err)
	}
	step("lab up, %d keys written", keys)
	return l, h, cli, before, first, step
}
