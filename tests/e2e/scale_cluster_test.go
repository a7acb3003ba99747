package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// scale_cluster.yml on one lab boot: 3 etcd 3.4 members and 2 fresh hosts (group spare). Refused with
// nothing changed (members, every host's data dir, no etcd.conf on the spares, no state file): group etcd
// of 4 hosts (even size); a cluster without quorum (two members stopped). Then, while a writer outside
// Ansible writes through all five endpoints: 3 → 5; 5 → 3 (etcd1, the leader, and etcd2 leave), killed
// right after the first removal and re-run to the end. No write fails, none is lost, every key written
// before is intact; the members are exactly group etcd, voting; the removed hosts' etcd stopped and
// disabled, their member dirs moved aside. A re-run changes nothing. make soak also refuses a joining host
// that holds a member dir, and grows in two steps: 3 → 4 with etcd_allow_unsafe_size=true, killed right
// after spare1 was added as a learner (not started) and re-run to the end, then 4 → 5.
func TestScaleCluster(t *testing.T) { scaleCluster(t, false) }

func TestSoakScaleClusterInSteps(t *testing.T) {
	soak(t)
	scaleCluster(t, true)
}

// scaleCluster is TestScaleCluster; inSteps adds the member-dir refusal and grows 3 → 4 (killed, re-run) → 5.
func scaleCluster(t *testing.T, inSteps bool) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	old := l.Members()
	spare := freshHosts(l)
	all := append(append([]*lab.Host{}, old...), spare...)
	// The joining hosts listed first in group etcd: the run reads the cluster through a member, and the run
	// lock stays on the first host in sorted order (etcd1) whatever the order.
	spareFirst := append(append([]*lab.Host{}, spare...), old...)
	four := append(append([]*lab.Host{}, old...), spare[0])
	cli := l.V3Client(t, old...)
	before := map[string]string{}
	for i := 0; i < 100; i++ {
		k, v := fmt.Sprintf("/scale/before/%03d", i), fmt.Sprintf("v%d", i)
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		before[k] = v
	}
	step("lab up, 100 keys written; members %s", memberIDs(ctx, t, cli))

	// 1. Refusals, each before anything changes.
	shape := func() string { return memberIDs(ctx, t, cli) + " | " + hostDirs(t, all) }
	refused := func(what, want, shapeBefore string, res *lab.Result) {
		t.Helper()
		if msg := failureMsg(res); res.Err == nil || !strings.Contains(msg, want) {
			t.Fatalf("%s: want a refusal saying %q: err %v, message %q", what, want, res.Err, msg)
		}
		if n := changedTasks(res); n != 0 {
			t.Errorf("%s: the refused run changed %d tasks", what, n)
		}
		if after := shape(); after != shapeBefore {
			t.Errorf("%s: the refused run changed members or data dirs:\nbefore %s\nafter  %s", what, shapeBefore, after)
		}
		for _, h := range spare {
			if _, err := os.Stat(filepath.Join(h.Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the refused run wrote %s's etcd.conf (%v)", what, h.Name, err)
			}
		}
		if st := readStateOn(t, old[0], "scale-cluster-state.json"); st != nil {
			t.Errorf("%s: the refused run wrote a state file: %v", what, st)
		}
		step("1. %s refused, nothing changed: %s", what, failureMsg(res))
	}
	unchanged := shape()
	refused("group etcd of 4", "etcd_allow_unsafe_size", unchanged, scale(t, l, four))

	if inSteps {
		foreign := filepath.Join(spare[1].Root(), "var/lib/etcd/member")
		if err := os.MkdirAll(filepath.Join(foreign, "snap"), 0o700); err != nil {
			t.Fatal(err)
		}
		refused("a joining host with a member dir", spare[1].Name+" has no /etc/etcd/etcd.conf, so it is about to join, but it has a member dir",
			shape(), scale(t, l, all))
		if err := os.RemoveAll(foreign); err != nil {
			t.Fatal(err)
		}
	}

	for _, h := range old[1:] {
		if out, err := l.Exec(h, "systemctl", "stop", "etcd"); err != nil {
			t.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}
	noQuorum := scale(t, l, all)
	for _, h := range old[1:] {
		if out, err := l.Exec(h, "systemctl", "start", "etcd"); err != nil {
			t.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	refused("two of three members stopped", "The cluster has no quorum (", unchanged, noQuorum)

	// Check mode, 3 → 5: it runs to its end, names what would join, and changes nothing (the refusal checks
	// above: members, data dirs, the joining hosts' etcd.conf, the state file).
	check := scaleRun(t, l, spareFirst, lab.Run{Check: true})
	mustSucceed(t, check)
	if s := summary(t, check); !strings.Contains(s, "Check mode: the cluster would be scaled to") ||
		!strings.Contains(s, "joining "+spare[0].Name+", "+spare[1].Name) {
		t.Errorf("check mode's summary: %q", s)
	}
	if after := shape(); after != unchanged {
		t.Errorf("check mode changed members or data dirs:\nbefore %s\nafter  %s", unchanged, after)
	}
	for _, h := range spare {
		if _, err := os.Stat(filepath.Join(h.Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("check mode wrote %s's etcd.conf (%v)", h.Name, err)
		}
	}
	if st := readStateOn(t, old[0], "scale-cluster-state.json"); st != nil {
		t.Errorf("check mode wrote a state file: %v", st)
	}
	step("1. check mode predicted the scaling and changed nothing: %s", summary(t, check))

	// 2. 3 → 5, with one writer through all five endpoints. In make soak: 3 → 4 (allowed by
	// etcd_allow_unsafe_size) killed after the learner was added, re-run; then 4 → 5.
	w := startWriter(t, l, all)
	start := time.Now()
	if inSteps {
		unsafe := map[string]any{"etcd_allow_unsafe_size": true}
		killed := scaleRun(t, l, four, lab.Run{ExtraVars: unsafe, KillAt: lab.Kill{
			Task: "etcdops.etcd.etcd_member_join : Write the ETCD_INITIAL_CLUSTER* settings etcd_member returned into etcd.conf"}})
		if !killed.Killed {
			t.Fatalf("the run was not killed after the learner was added: %v\n%s", killed.Err, killed.Failures())
		}
		ids := memberIDs(ctx, t, cli)
		if st := readStateOn(t, old[0], "scale-cluster-state.json"); st["status"] != "scaling" || strings.Count(ids, " learner") != 1 {
			t.Fatalf("after the kill: state %v, members %s (want one learner, not started)", st, ids)
		}
		step("2a. killed after %s was added as a learner (%s): members %s", spare[0].Name, time.Since(start).Round(time.Second), ids)
		res := scaleRun(t, l, four, lab.Run{ExtraVars: unsafe})
		mustSucceed(t, res)
		checkMembers(ctx, t, l, cli, four)
		step("2b. re-run: 4 members (even size allowed) in %s total: %s", time.Since(start).Round(time.Second), memberIDs(ctx, t, cli))
	}
	res := scale(t, l, spareFirst)
	grown := time.Since(start)
	grow := w.stop()
	mustSucceed(t, res)
	checkMembers(ctx, t, l, cli, all)
	step("2c. grown to 5 in %s: %s; writer: %d writes acknowledged, %d failed, %s, longest write %s", grown.Round(time.Second),
		memberIDs(ctx, t, cli), len(grow.acked), len(grow.failed), grow.retries(), grow.longest)

	// 3. (etcd1 made the leader, outside the measured window) 5 → 3 without etcd1 and etcd2, killed right
	// after the first removal (its member dir aside), re-run; a writer through all five endpoints.
	kept := []*lab.Host{old[2], spare[0], spare[1]}
	keptCli := l.V3Client(t, kept...)
	dirs := hostDirs(t, all)
	shrinkCheck := scaleRun(t, l, kept, lab.Run{Check: true})
	mustSucceed(t, shrinkCheck)
	if s := summary(t, shrinkCheck); !strings.Contains(s, "joining none, removing ") || strings.Contains(s, "not predicted") {
		t.Errorf("check mode's summary of the shrinking: %q", s)
	}
	checkMembers(ctx, t, l, cli, all)
	if after := hostDirs(t, all); after != dirs {
		t.Errorf("check mode of the shrinking changed data dirs:\nbefore %s\nafter  %s", dirs, after)
	}
	if st := readStateOn(t, kept[0], "scale-cluster-state.json"); st != nil {
		t.Errorf("check mode of the shrinking wrote a state file: %v", st)
	}
	step("3. check mode predicted the shrinking and changed nothing: %s", summary(t, shrinkCheck))
	moveLeader(ctx, t, l, all, old[0])
	w = startWriter(t, l, all)
	start = time.Now()
	killed := scaleRun(t, l, kept, lab.Run{KillAt: lab.Kill{
		Task: "etcdops.etcd.etcd_replace_nodes : Wait until every member is healthy and converged"}})
	if !killed.Killed {
		t.Fatalf("the run was not killed after the first removal: %v\n%s", killed.Err, killed.Failures())
	}
	// The leaving members go in member-list order (etcd sorts it by member ID, random per lab): either
	// one may be first; the leader, etcd1, leaves in this run or in the re-run.
	ids := memberIDs(ctx, t, keptCli)
	gone0, gone1 := !strings.Contains(ids, old[0].Name+"="), !strings.Contains(ids, old[1].Name+"=")
	if gone0 == gone1 {
		t.Fatalf("after the kill: members %s, want exactly one of %s and %s removed", ids, old[0].Name, old[1].Name)
	}
	first := old[0].Name
	if gone1 {
		first = old[1].Name
	}
	step("3a. killed after %s's removal (%s): members %s", first, time.Since(start).Round(time.Second), ids)
	res = scaleRun(t, l, kept, lab.Run{})
	shrunk := time.Since(start)
	shrink := w.stop()
	mustSucceed(t, res)
	step("3b. shrunk to 3 in %s since 3a; writer: %d writes acknowledged, %d failed, %s, longest write %s",
		shrunk.Round(time.Second), len(shrink.acked), len(shrink.failed), shrink.retries(), shrink.longest)
	checkWrites(ctx, t, keptCli, grow, before, "the growth")
	checkWrites(ctx, t, keptCli, shrink, before, "the shrinking")
	checkMembers(ctx, t, l, keptCli, kept)
	for _, h := range old[:2] {
		if l.UnitActive(h, "etcd") {
			t.Errorf("etcd still runs on %s", h.Name)
		}
		if out, _ := l.Exec(h, "systemctl", "is-enabled", "etcd"); strings.TrimSpace(string(out)) != "disabled" {
			t.Errorf("etcd on %s is %q, want disabled", h.Name, strings.TrimSpace(string(out)))
		}
		if aside, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd/member.removed-*/snap/db")); len(aside) != 1 {
			t.Errorf("%s: member dir moved aside with its db: %v", h.Name, aside)
		}
	}
	if st := readStateOn(t, old[2], "scale-cluster-state.json"); st != nil {
		t.Errorf("the state file was not set aside: %v", st)
	}
	step("every key intact, members %s", memberIDs(ctx, t, keptCli))

	// 4. Again: the members are group etcd, all voting: nothing changes.
	again := scale(t, l, kept)
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "nothing changed") {
		t.Errorf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}
	step("4. second run: nothing changed (%s)", summary(t, again))
}

// scale runs scale_cluster.yml with group etcd made of the given hosts; every lab host stays in the
// inventory (group lab).
func scale(t *testing.T, l *lab.Lab, etcd []*lab.Host) *lab.Result {
	t.Helper()
	return scaleRun(t, l, etcd, lab.Run{})
}

// scaleRun is scale with extra vars or a kill point.
func scaleRun(t *testing.T, l *lab.Lab, etcd []*lab.Host, run lab.Run) *lab.Result {
	t.Helper()
	run.Inventory = etcdInventory(t, l, etcd)
	return runPlaybook(t, l, "scale_cluster.yml", run)
}

// etcdInventory is the lab's inventory with group etcd = etcd (every host also in group lab).
func etcdInventory(t *testing.T, l *lab.Lab, etcd []*lab.Host) string {
	t.Helper()
	b, err := os.ReadFile(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "[") {
			section = line
		} else if section == "[etcd]" && strings.TrimSpace(line) != "" {
			continue
		}
		out = append(out, line)
		if line == "[etcd]" {
			out = append(out, hostLines(etcd)...)
		}
	}
	out = append(out, "[lab]")
	out = append(out, hostLines(l.Hosts)...)
	inv := filepath.Join(t.TempDir(), "inventory.ini")
	if err := os.WriteFile(inv, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}

func hostLines(hosts []*lab.Host) []string {
	var lines []string
	for _, h := range hosts {
		lines = append(lines, fmt.Sprintf("%s ansible_host=%s etcd_ip=%s", h.Name, h.Addr, h.Addr))
	}
	return lines
}

// moveLeader makes the member of host to the leader, through the current leader's endpoint.
func moveLeader(ctx context.Context, t *testing.T, l *lab.Lab, hosts []*lab.Host, to *lab.Host) {
	t.Helper()
	leader, ids := leaderHost(ctx, t, l, hosts)
	if leader == nil || leader == to {
		return
	}
	if _, err := l.V3Client(t, leader).MoveLeader(ctx, ids[to]); err != nil {
		t.Fatal(err)
	}
}

// leaderHost returns which of the hosts leads (nil: none of them) and each host's member ID, read from
// each host's own status.
func leaderHost(ctx context.Context, t testing.TB, l *lab.Lab, hosts []*lab.Host) (*lab.Host, map[*lab.Host]uint64) {
	t.Helper()
	var leader *lab.Host
	ids := map[*lab.Host]uint64{}
	for _, h := range hosts {
		st, err := l.V3Client(t, h).Status(ctx, h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		ids[h] = st.Header.MemberId
		if st.Leader == st.Header.MemberId {
			leader = h
		}
	}
	return leader, ids
}

// freshHosts returns the lab's hosts that are not members of the initial cluster.
func freshHosts(l *lab.Lab) []*lab.Host {
	var fresh []*lab.Host
	for _, h := range l.Hosts {
		if !h.Member {
			fresh = append(fresh, h)
		}
	}
	return fresh
}

// checkMembers asserts the members are exactly the given hosts, all voting, each with etcd enabled
// and answering a linearizable read.
func checkMembers(ctx context.Context, t *testing.T, l *lab.Lab, cli *clientv3.Client, hosts []*lab.Host) {
	t.Helper()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names, want []string
	for _, m := range list.Members {
		names = append(names, m.Name)
		if m.IsLearner {
			t.Errorf("member %s is a learner", m.Name)
		}
	}
	for _, h := range hosts {
		want = append(want, h.Name)
		if out, _ := l.Exec(h, "systemctl", "is-enabled", "etcd"); strings.TrimSpace(string(out)) != "enabled" {
			t.Errorf("etcd on %s is %q, want enabled", h.Name, strings.TrimSpace(string(out)))
		}
		o := l.Conn(h)
		if err := o.ReadProbe(5 * time.Second); err != nil {
			t.Errorf("%s does not answer a linearizable read: %v", h.Name, err)
		}
	}
	slices.Sort(names)
	slices.Sort(want)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("members %v, want %v", names, want)
	}
}
