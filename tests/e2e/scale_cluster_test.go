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

// scale_cluster.yml on one lab boot: 3 etcd 3.4 members and 2 fresh hosts (group spare). Group etcd
// of 4 hosts is refused (even size) with nothing changed; 3 → 5 (both spares join) and 5 → 3 (etcd1,
// the leader, and etcd2 leave) while a writer outside Ansible writes through all five endpoints: no
// write fails, none is lost, every key written before is intact; the members are exactly group etcd,
// voting; the removed hosts' etcd stopped and disabled, their member dirs moved aside. A re-run
// changes nothing.
func TestScaleCluster(t *testing.T) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	old := l.Members()
	spare := freshHosts(l)
	all := append(append([]*lab.Host{}, old...), spare...)
	cli := l.V3Client(t, old...)
	before := map[string]string{}
	for i := 0; i < 100; i++ {
		k, v := fmt.Sprintf("/scale/before/%03d", i), fmt.Sprintf("v%d", i)
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		before[k] = v
	}
	membersBefore := memberIDs(ctx, t, cli)
	step("lab up, 100 keys written; members %s", membersBefore)

	// 1. Group etcd of four hosts: refused naming etcd_allow_unsafe_size; nothing changed.
	refused := scale(t, l, append(append([]*lab.Host{}, old...), spare[0]))
	if msg := failureMsg(refused); refused.Err == nil || !strings.Contains(msg, "etcd_allow_unsafe_size") {
		t.Fatalf("want a refusal naming etcd_allow_unsafe_size: err %v, message %q", refused.Err, msg)
	}
	if n := changedTasks(refused); n != 0 {
		t.Errorf("the refused run changed %d tasks", n)
	}
	if after := memberIDs(ctx, t, cli); after != membersBefore {
		t.Errorf("the refused run changed the members: %s", after)
	}
	if _, err := os.Stat(filepath.Join(spare[0].Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run wrote %s's etcd.conf (%v)", spare[0].Name, err)
	}
	if st := readStateOn(t, old[0], "scale-cluster-state.json"); st != nil {
		t.Errorf("the refused run wrote a state file: %v", st)
	}
	step("1. group etcd of 4 refused, nothing changed: %s", failureMsg(refused))

	// 2. 3 → 5, then (etcd1 made the leader, outside the measured windows) 5 → 3 without etcd1 and
	// etcd2, each with a writer through all five endpoints.
	w := startWriter(t, l, all)
	start := time.Now()
	res := scale(t, l, all)
	grown := time.Since(start)
	grow := w.stop()
	mustSucceed(t, res)
	checkMembers(ctx, t, l, cli, all)
	step("2a. grown to 5 in %s: %s; writer: %d writes acknowledged, %d failed, longest write %s", grown.Round(time.Second),
		memberIDs(ctx, t, cli), len(grow.acked), len(grow.failed), grow.longest)

	kept := []*lab.Host{old[2], spare[0], spare[1]}
	keptCli := l.V3Client(t, kept...)
	moveLeader(ctx, t, l, all, old[0])
	w = startWriter(t, l, all)
	start = time.Now()
	res = scale(t, l, kept)
	shrunk := time.Since(start)
	shrink := w.stop()
	mustSucceed(t, res)
	step("2b. shrunk to 3 in %s; writer: %d writes acknowledged, %d failed, longest write %s",
		shrunk.Round(time.Second), len(shrink.acked), len(shrink.failed), shrink.longest)
	for _, wr := range []*writer{grow, shrink} {
		if len(wr.failed) > 0 {
			t.Errorf("%d writes failed during the scaling: %v", len(wr.failed), wr.failed[:min(len(wr.failed), 5)])
		}
		if len(wr.acked) < 100 {
			t.Errorf("the writer got only %d writes through", len(wr.acked))
		}
		checkKeys(ctx, t, keptCli, wr.acked, "written during the scaling")
	}
	checkKeys(ctx, t, keptCli, before, "pre-existing")
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

	// 3. Again: the members are group etcd, all voting: nothing changes.
	again := scale(t, l, kept)
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "nothing changed") {
		t.Errorf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}
	step("3. second run: nothing changed (%s)", summary(t, again))
}

// scale runs scale_cluster.yml with group etcd made of the given hosts; every lab host stays in the
// inventory (group lab).
func scale(t *testing.T, l *lab.Lab, etcd []*lab.Host) *lab.Result {
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
	return runPlaybook(t, l, "scale_cluster.yml", lab.Run{Inventory: inv})
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
	var target uint64
	var leader *lab.Host
	for _, h := range hosts {
		st, err := l.V3Client(t, h).Status(ctx, h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		if h == to {
			target = st.Header.MemberId
		}
		if st.Leader == st.Header.MemberId {
			leader = h
		}
	}
	if leader == nil || leader == to {
		return
	}
	if _, err := l.V3Client(t, leader).MoveLeader(ctx, target); err != nil {
		t.Fatal(err)
	}
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
