package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// recover_member.yml on one lab boot (each boot costs CI minutes): bad input and two failing members
// are refused with nothing changed; a member with corrupt data, crash-looping, comes back as a
// healthy voter holding every key, its old member dir kept under a timestamped name, although the
// control node died on the way (member removed and aside), and another run changes nothing; a member
// removed from the membership by hand while it runs is re-added. make soak kills the control node a
// second time (the member added back as a learner, not started).
func TestRecoverMember(t *testing.T) { recoverMember(t, false) }

func TestSoakRecoverMemberKilledTwice(t *testing.T) {
	soak(t)
	recoverMember(t, true)
}

// recoverMember is TestRecoverMember; twice adds the second kill.
func recoverMember(t *testing.T, twice bool) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	etcd1, etcd2, etcd3 := l.Members()[0], l.Members()[1], l.Members()[2]
	cli := l.V3Client(t, etcd1) // etcd1 stays a member throughout
	keys := map[string]string{}
	put := func(n int, tag string) { t.Helper(); putKeys(ctx, t, cli, keys, n, "/recover/"+tag) }
	put(200, "before")
	recoverRun := func(host string) *lab.Result {
		t.Helper()
		return playbook(t, l, "recover_member.yml", map[string]any{"etcd_recover_member": host})
	}

	// 1. Bad input: a host outside the etcd group, refused naming the variable.
	bad := recoverRun("nosuch")
	if msg := failureMsg(bad); bad.Err == nil || !strings.Contains(msg, "etcd_recover_member") {
		t.Fatalf("etcd_recover_member=nosuch: err %v, message %q", bad.Err, msg)
	}
	step("1. a host outside the etcd group refused: %s", failureMsg(bad))

	// 2. Two members failing (etcd3 corrupt, etcd2 stopped): quorum loss, refused with nothing changed.
	membersBefore := memberIDs(ctx, t, cli)
	if _, err := l.CorruptDataDir(etcd3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(etcd2, "systemctl", "stop", "etcd"); err != nil {
		t.Fatal(err)
	}
	dirsBefore := dataDirs(t, l)
	refused := recoverRun(etcd3.Name)
	msg := failureMsg(refused)
	if refused.Err == nil || !strings.Contains(msg, "restore_from_snapshot.yml") || !strings.Contains(msg, etcd2.Name) {
		t.Fatalf("two failing members: err %v, message %q (want it to name %s and restore_from_snapshot.yml)",
			refused.Err, msg, etcd2.Name)
	}
	if n := changedTasks(refused); n != 0 {
		t.Errorf("the refused run changed %d tasks", n)
	}
	if after := dataDirs(t, l); after != dirsBefore {
		t.Errorf("the refused run changed the data dirs:\nbefore %s\nafter  %s", dirsBefore, after)
	}
	if st := readState(t, l, "recover-member-state.json"); st != nil {
		t.Errorf("the refused run wrote a state file: %v", st)
	}
	if _, err := l.Exec(etcd2, "systemctl", "start", "etcd"); err != nil {
		t.Fatal(err)
	}
	if after := memberIDs(ctx, t, cli); after != membersBefore {
		t.Errorf("the refused run changed the members: before %s, after %s", membersBefore, after)
	}
	step("2. two failing members refused, nothing changed: %s", msg)

	// 3. etcd3 crash-loops on its corrupt data (etcd2 is back); writes go on meanwhile. The control node
	// dies once etcd3 is out of the membership with its member dir aside (and, in make soak, once it is
	// back as a learner, not yet started); the next run resumes and recovers it: every key on it, the old
	// member dir kept.
	put(100, "during")
	_, _ = l.Exec(etcd3, "systemctl", "start", "etcd") // fails: the data is corrupt; Restart=on-failure loops
	vars := map[string]any{"etcd_recover_member": etcd3.Name}

	// Check mode first: it runs to its end, says what would happen, and changes nothing.
	dirsBefore, membersBefore = dataDirs(t, l), memberIDs(ctx, t, cli)
	check := runPlaybook(t, l, "recover_member.yml", lab.Run{ExtraVars: vars, Check: true})
	mustSucceed(t, check)
	if s := summary(t, check); !strings.Contains(s, "Check mode: "+etcd3.Name+" would be recovered") {
		t.Errorf("check mode's summary: %q", s)
	}
	if after := dataDirs(t, l); after != dirsBefore {
		t.Errorf("check mode changed the data dirs:\nbefore %s\nafter  %s", dirsBefore, after)
	}
	if after := memberIDs(ctx, t, cli); after != membersBefore {
		t.Errorf("check mode changed the members: before %s, after %s", membersBefore, after)
	}
	if st := readState(t, l, "recover-member-state.json"); st != nil {
		t.Errorf("check mode wrote a state file: %v", st)
	}
	step("3. check mode predicted the recovery of %s and changed nothing", etcd3.Name)
	killed := killedRun(t, l, "recover_member.yml", vars, lab.Kill{Task: "etcdops.etcd.etcd_recover_member : Record the recovery's phase (joining)"})
	if st := readState(t, l, "recover-member-state.json"); st["status"] != "removing" || st["member"] != etcd3.Name {
		t.Fatalf("state after the first kill: %v", st)
	}
	if ids := memberIDs(ctx, t, cli); strings.Contains(ids, etcd3.Name) || strings.Count(ids, "=") != 2 {
		t.Fatalf("members after the first kill: %s (want etcd3 removed)", ids)
	}
	if out, err := l.Exec(etcd3, "sh", "-c", "test ! -e /var/lib/etcd/member && ls -d /var/lib/etcd/member.pre-recover-2*Z"); err != nil ||
		l.UnitActive(etcd3, "etcd") {
		t.Fatalf("etcd3 after the first kill: member dir aside %q %v, etcd active %v", out, err, l.UnitActive(etcd3, "etcd"))
	}
	step("3a. killed in %s with etcd3 removed and its member dir aside (phase removing)", killed.Duration.Round(time.Second))
	if twice {
		killed = killedRun(t, l, "recover_member.yml", vars, lab.Kill{Task: "etcdops.etcd.etcd_member_join : Write the ETCD_INITIAL_CLUSTER* settings etcd_member returned into etcd.conf"})
		if st := readState(t, l, "recover-member-state.json"); st["status"] != "joining" {
			t.Fatalf("state after the second kill: %v", st)
		}
		if ids := memberIDs(ctx, t, cli); strings.Count(ids, " learner") != 1 || strings.Count(ids, "=") != 3 {
			t.Fatalf("members after the second kill: %s (want etcd3 added back as a learner)", ids)
		}
		step("3b. killed again in %s with etcd3 a learner, not started (phase joining)", killed.Duration.Round(time.Second))
	}
	res := recoverRun(etcd3.Name)
	mustResume(t, res, "etcd_recover_member")
	checkRecovered(ctx, t, l, keys)
	out, err := l.Exec(etcd3, "sh", "-c", "ls -d /var/lib/etcd/member.pre-recover-2*Z && ls /var/lib/etcd/member.pre-recover-2*Z/snap/db")
	if err != nil {
		t.Errorf("etcd3's corrupt member dir was not kept aside with a timestamp: %v", err)
	}
	if st := readState(t, l, "recover-member-state.json"); st != nil {
		t.Errorf("the state file was not set aside after the recovery: %v", st)
	}
	step("3c. corrupt etcd3 recovered by the resumed run in %s (%s): %s", res.Duration.Round(time.Second), strings.Fields(string(out))[0], summary(t, res))

	again := recoverRun(etcd3.Name)
	mustSucceed(t, again)
	if n, s := changedTasks(again), summary(t, again); n != 0 || !strings.Contains(s, "nothing changed") {
		t.Errorf("second run: %d changed tasks, summary %q", n, s)
	}
	step("3d. another run in %s: %s", again.Duration.Round(time.Second), summary(t, again))

	// 4. etcd2 removed from the membership by hand while it runs: re-added.
	removeMemberByHand(ctx, t, cli, etcd2.Name)
	put(50, "removed")
	res = recoverRun(etcd2.Name)
	mustSucceed(t, res)
	checkRecovered(ctx, t, l, keys)
	step("4. removed etcd2 re-added in %s: %s", res.Duration.Round(time.Second), summary(t, res))
}

// putKeys writes n keys PREFIX/NNN (values of growing length) and records them in keys.
func putKeys(ctx context.Context, t *testing.T, cli *clientv3.Client, keys map[string]string, n int, prefix string) {
	t.Helper()
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("%s/%03d", prefix, i), fmt.Sprintf("%s-%d-%s", prefix, i, strings.Repeat("x", i))
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		keys[k] = v
	}
}

// removeMemberByHand removes the member named name as an operator would with etcdctl member remove.
func removeMemberByHand(ctx context.Context, t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.Members {
		if m.Name != name {
			continue
		}
		// etcd refuses a removal ("unhealthy cluster") until every member has been connected for a while.
		// An attempt that failed on the client's side (leader change, timeout) may have been applied:
		// the next one then finds no such member, which is the outcome wanted.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			_, err = cli.MemberRemove(ctx, m.ID)
			if errors.Is(err, rpctypes.ErrMemberNotFound) {
				err = nil
			}
			if err == nil || time.Now().After(deadline) {
				break
			}
			t.Logf("removing %s by hand: %v; trying again", name, err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkRecovered asserts three started, healthy voting members etcd1..3, each holding every key of
// want with its value in its own copy (serializable reads through each member).
func checkRecovered(ctx context.Context, t *testing.T, l *lab.Lab, want map[string]string) {
	t.Helper()
	list, err := l.V3Client(t).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list.Members {
		if m.IsLearner || len(m.ClientURLs) == 0 {
			t.Errorf("member %s (%x): learner %v, client URLs %v", m.Name, m.ID, m.IsLearner, m.ClientURLs)
		}
		names = append(names, m.Name)
	}
	if strings.Join(sorted(names), ",") != "etcd1,etcd2,etcd3" {
		t.Errorf("members %v, want etcd1..3", names)
	}
	for _, h := range l.Members() {
		resp, err := l.V3Client(t, h).Get(ctx, "/recover/", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			t.Errorf("%s: %v", h.Name, err)
			continue
		}
		got := map[string]string{}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = string(kv.Value)
		}
		bad := 0
		for k, v := range want {
			if got[k] != v {
				bad++
			}
		}
		if bad > 0 || len(got) != len(want) {
			t.Errorf("%s holds %d keys, %d of the %d written missing or different", h.Name, len(got), bad, len(want))
		}
	}
}

// memberIDs sums up the membership: name=id of every member (" learner" after a learner), sorted.
func memberIDs(ctx context.Context, t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list.Members {
		id := fmt.Sprintf("%s=%x", m.Name, m.ID)
		if m.IsLearner {
			id += " learner"
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// dataDirs lists every member host's /var/lib/etcd entries (a member dir moved aside shows).
func dataDirs(t *testing.T, l *lab.Lab) string {
	t.Helper()
	return hostDirs(t, l.Members())
}

// hostDirs lists the given hosts' /var/lib/etcd entries.
func hostDirs(t *testing.T, hosts []*lab.Host) string {
	t.Helper()
	var out []string
	for _, h := range hosts {
		entries, err := os.ReadDir(filepath.Join(h.Root(), "var/lib/etcd"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, h.Name+":"+e.Name())
		}
	}
	return strings.Join(out, " ")
}
