package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A partition during a learner's promotion (issue 19), in both playbooks that promote learners:
// scale_cluster.yml grows 3 → 4 (spare1 joins, the even size allowed) and replace_nodes.yml moves 3
// members onto 2 new hosts (new-etcd1 is cut). The joining host is cut off from the leader while
// a writer outside Ansible keeps writing through every endpoint. The leader is the side that matters: it
// alone sends the learner its log, and it decides the promotion from how far the learner's log matches
// its own (etcd refuses a learner below 90% of the leader's index); a cut from a follower would change
// neither. Keys are written past the learner until it is provably behind.
//   - cut as the promotion starts, healed during the run: etcd_member keeps asking until the healed
//     learner has caught up; the run finishes. The control node's SSH to the voters is blocked until the
//     learner is behind, or etcd_member's first request could land on the leader's last, stale view of
//     the learner and succeed.
//   - the same, healed after the run: the promotion gives up after the playbook's timeout with a message
//     naming the learner and the leader and saying the learner's applied index did not move (it hears
//     nothing from the leader: check the network); the learner stays.
//   - cut right after the promotion, as the convergence wait starts (what a request landing on the stale
//     view leads to: a voter the leader cannot reach, 3 of 4 voters still a quorum), healed after the run:
//     the wait gives up naming the joining host unhealthy.
//
// A failed run is re-run unchanged after the heal and must finish. Asserted by data: every key written
// before, in the burst and by the writer (none failed: a quorum held throughout) read back; the members
// exactly the hosts the playbook aims at, all started, voting and answering a linearizable read; no
// learner; the state file archived (replace_nodes.yml: the old hosts stopped, disabled, their data set
// aside; the masters on the new members). The writer stands in for a quorum sampler: a put needs a
// quorum, one every ~20 ms for the whole test, each given 10 s and one retry.
func TestSoakPartitionPromote(t *testing.T) {
	soak(t)
	const converge = "etcdops.etcd.etcd_member_join : Wait until every member is healthy and converged"
	notInSync := []string{"is still not in sync with the leader after 40s", "unchanged in", "while leader ",
		"does not hear from the leader"}
	for _, c := range []struct {
		name string
		growth
		at    string // the task (promoteTask when empty) whose start cuts the learner off
		pause bool   // hold the promotion (the control node's SSH to the voters) until the learner is behind
		// healAfter: the partition ends this long after the burst, during the run (0: after the run).
		healAfter time.Duration
		timeout   string   // the playbook's timeout for each step
		fails     []string // what the first run's failure says (nil: it finishes)
	}{
		{name: "promotion, healed during the run", growth: scaleGrowth, pause: true, healAfter: 20 * time.Second, timeout: "120s"},
		{name: "promotion, healed after the run", growth: scaleGrowth, pause: true, timeout: "40s", fails: append([]string{"learner spare1"}, notInSync...)},
		{name: "convergence, healed after the run", growth: scaleGrowth, at: converge, timeout: "40s", fails: []string{
			"etcd did not converge within 40s", "member spare1 ("}},
		{name: "replace, promotion, healed after the run", growth: replaceGrowth, pause: true, timeout: "40s", fails: append([]string{"learner new-etcd1"}, notInSync...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			partitionPromote(t, c.growth, c.at, c.pause, c.healAfter, c.timeout, c.fails)
		})
	}
}

// growth is a playbook that adds members through etcd_member_join, as TestSoakPartitionPromote runs it.
type growth struct {
	playbook   string
	spec       lab.Spec
	timeoutVar string // the playbook's per-step timeout
	inventory  func(t *testing.T, l *lab.Lab, old, fresh []*lab.Host) string
	keeper     func(old, fresh []*lab.Host) *lab.Host // the host of the state file
	stateFile  string
	joining    string // the recorded phase while members join
	// done asserts the end state beyond the keys every case checks: members, state file, consumers.
	done func(ctx context.Context, t *testing.T, l *lab.Lab, wr *writer, before map[string]string, old, fresh []*lab.Host)
}

var (
	scaleGrowth = growth{
		playbook: "scale_cluster.yml", spec: lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 1}},
		timeoutVar: "etcd_scale_timeout", stateFile: "scale-cluster-state.json", joining: "scaling",
		inventory: func(t *testing.T, l *lab.Lab, old, fresh []*lab.Host) string {
			return etcdInventory(t, l, append(append([]*lab.Host{}, old...), fresh[0])) // group etcd: the four hosts
		},
		keeper: func(old, _ []*lab.Host) *lab.Host { return old[0] },
		done: func(ctx context.Context, t *testing.T, l *lab.Lab, wr *writer, before map[string]string, old, fresh []*lab.Host) {
			four := append(append([]*lab.Host{}, old...), fresh[0])
			all := l.V3Client(t, four...)
			checkMembers(ctx, t, l, all, four)
			checkWrites(ctx, t, all, wr, before, "the runs")
			if st := readStateOn(t, old[0], "scale-cluster-state.json"); st != nil {
				t.Errorf("the state file was not set aside: %v", st)
			}
			if archived, _ := filepath.Glob(filepath.Join(old[0].Root(), "var/lib/etcd-backup/scale-cluster-state.scaled-*.json")); len(archived) != 1 {
				t.Errorf("archived state files: %v", archived)
			}
		},
	}
	replaceGrowth = growth{
		playbook: "replace_nodes.yml", spec: lab.Spec{Hosts: 3, Masters: true, Groups: map[string]int{"new_etcd": 2}},
		timeoutVar: "etcd_replace_nodes_timeout", stateFile: "replace-nodes-state.json", joining: "joining",
		inventory: func(*testing.T, *lab.Lab, []*lab.Host, []*lab.Host) string { return "" }, // the lab's
		keeper:    func(_, fresh []*lab.Host) *lab.Host { return fresh[0] },
		done: func(ctx context.Context, t *testing.T, l *lab.Lab, wr *writer, before map[string]string, old, fresh []*lab.Host) {
			checkMoved(ctx, t, l, wr, before, old, fresh)
		},
	}
)

func partitionPromote(t *testing.T, g growth, at string, pause bool, healAfter time.Duration, timeout string, fails []string) {
	start := time.Now()
	l := lab.Up(t, g.spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	old, fresh := l.Members(), freshHosts(l)
	learner, keeper := fresh[0], g.keeper(old, fresh)
	if at == "" {
		at = promoteTask(l)
	}
	cli := l.V3Client(t, old...)
	before := map[string]string{}
	putKeys(ctx, t, cli, before, 300, "/partition/before")
	extra := map[string]any{"etcd_allow_unsafe_size": true, g.timeoutVar: timeout}
	inventory := g.inventory(t, l, old, fresh)
	w := startWriter(t, l, l.Hosts)

	// As the task starts: the cut, then the burst; then the heal (or not, until after the run).
	burst := map[string]string{}
	var leader *lab.Host
	var wasLearner, heldBack bool // a learner when cut off, and still one when healed: the promotion waited
	done := make(chan struct{})
	// With pause, the control node's SSH to the voters is blocked from the learner's start (the task before
	// the promotion, on the learner) until the burst is done: etcd_member, which runs on a voter, cannot
	// send its first request before the learner is behind.
	blocked := make(chan func(), 1)
	block := lab.AtTask(startJoining, 1, func() {
		if pause {
			blocked <- blockSSH(t, old)
		}
	})
	hook := lab.AtTask(at, 1, func() {
		defer close(done)
		unblock := func() {}
		if pause {
			unblock = <-blocked
		}
		cut := func() bool { // the cut and the burst, the promotion held meanwhile
			defer unblock()
			if leader, _ = leaderHost(ctx, t, l, old); leader == nil {
				return false
			}
			if err := l.Partition(learner, leader); err != nil {
				t.Error(err)
				return false
			}
			wasLearner = isLearner(ctx, t, cli, learner)
			writePast(ctx, t, l, learner, leader, burst)
			return true
		}
		if !cut() {
			return
		}
		if healAfter == 0 {
			return
		}
		time.Sleep(healAfter)
		heldBack = isLearner(ctx, t, cli, learner)
		if err := l.Heal(learner, leader); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { _ = l.Heal() })
	first := runPlaybook(t, l, g.playbook, lab.Run{Inventory: inventory, ExtraVars: extra, Progress: io.MultiWriter(block, hook)})
	if !hook.Fired() {
		t.Fatalf("the run never reached %q: %v\n%s", at, first.Err, first.Failures())
	}
	<-done
	if leader == nil {
		t.Fatal("no leader among the voters as the task started")
	}
	t.Logf("first run (%s): %s cut off from the leader %s at %q (a learner then: %t), %d keys written past it; %v",
		first.Duration.Round(time.Second), learner.Name, leader.Name, at, wasLearner, len(burst), first.Err)
	if pause && !wasLearner {
		t.Errorf("%s was a voter already when it was cut off: the promotion was not held", learner.Name)
	}

	res := first
	if fails == nil {
		mustSucceed(t, res)
		if !heldBack {
			t.Errorf("%s was a voter already when the partition healed: the promotion did not wait for it", learner.Name)
		}
	} else {
		// The run gives up clearly, the cluster whole but for the cut-off member; the state file at joining.
		msg := failureMsg(first)
		for _, want := range fails {
			if first.Err == nil || !strings.Contains(msg, want) {
				t.Fatalf("want a failure saying %q: err %v, message %q", want, first.Err, msg)
			}
		}
		ids := memberIDs(ctx, t, cli)
		if strings.Count(ids, "=") != 4 || !strings.Contains(ids, learner.Name+"=") || isLearner(ctx, t, cli, learner) != pause {
			t.Fatalf("after the failed run: members %s, want the three voters and %s (a learner: %t)", ids, learner.Name, pause)
		}
		if st := readStateOn(t, keeper, g.stateFile); st["status"] != g.joining {
			t.Errorf("state file after the failed run: %v", st)
		}
		t.Logf("the run failed clearly: %s; members %s", msg, ids)
		if err := l.Heal(learner, leader); err != nil {
			t.Fatal(err)
		}
		res = runPlaybook(t, l, g.playbook, lab.Run{Inventory: inventory, ExtraVars: extra})
		mustSucceed(t, res)
		t.Logf("re-run after the heal finished the job in %s: %s", res.Duration.Round(time.Second), summary(t, res))
	}
	wr := w.stop()

	g.done(ctx, t, l, wr, before, old, fresh)
	all := l.V3Client(t, learner)
	checkKeys(ctx, t, all, burst, "written past the cut-off member")
	t.Logf("members %s; writer: %d writes acknowledged, %d failed, %s, longest %s, longest stall %s; %s in all",
		memberIDs(ctx, t, all), len(wr.acked), len(wr.failed), wr.retries(), wr.longest.Round(time.Millisecond),
		wr.stalled.Round(time.Millisecond), time.Since(start).Round(time.Second))
}

// blockSSH drops the machine's packets to the hosts' SSH port (the control node's connections, open or
// new, stall and resume once unblocked: TCP retransmits) and returns what removes the rules; the test's
// cleanup removes them too.
func blockSSH(t *testing.T, hosts []*lab.Host) (unblock func()) {
	var rules [][]string
	for _, h := range hosts {
		rules = append(rules, []string{"OUTPUT", "-p", "tcp", "-d", h.Addr + "/32", "--dport", "22", "-j", "DROP"})
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Errorf("iptables: %v: %s", err, out)
		}
	}
	var once sync.Once
	unblock = func() {
		once.Do(func() {
			for _, r := range rules {
				for exec.Command("iptables", append([]string{"-C"}, r...)...).Run() == nil {
					if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
						t.Errorf("iptables: %v: %s", err, out)
						break
					}
				}
			}
		})
	}
	t.Cleanup(unblock)
	return unblock
}

// writePast writes keys (into keys) through the voters until the learner, cut off from the leader, is
// below 70% of the leader's raft index: past etcd's 90% bar for a promotion, with a margin for what the
// leader counts (the entries the learner appended before the cut, which its status does not show: its
// commit index lags them; at 85% a promotion once went through).
func writePast(ctx context.Context, t *testing.T, l *lab.Lab, learner, leader *lab.Host, keys map[string]string) {
	t.Helper()
	cli, learnerCli, leaderCli := l.V3Client(t, l.Members()...), l.V3Client(t, learner), l.V3Client(t, leader)
	for round := 0; ; round++ {
		ls, err := learnerCli.Status(ctx, learner.ClientURL())
		if err != nil {
			t.Errorf("%s status: %v", learner.Name, err)
			return
		}
		lead, err := leaderCli.Status(ctx, leader.ClientURL())
		if err != nil {
			t.Errorf("%s status: %v", leader.Name, err)
			return
		}
		if float64(ls.RaftIndex) < 0.7*float64(lead.RaftIndex) {
			t.Logf("%s at raft index %d, the leader %s at %d", learner.Name, ls.RaftIndex, leader.Name, lead.RaftIndex)
			return
		}
		putParallel(ctx, t, cli, keys, 16, 25, fmt.Sprintf("/partition/past/%d", round))
	}
}

// putParallel puts writers×each keys (each its own value) under prefix, writers at once, and adds the
// acknowledged ones to keys: a burst that moves the raft index fast.
func putParallel(ctx context.Context, t testing.TB, cli *clientv3.Client, keys map[string]string, writers, each int, prefix string) {
	parts := make([]map[string]string, writers)
	var wg sync.WaitGroup
	for i := range parts {
		parts[i] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				k := fmt.Sprintf("%s/%02d/%03d", prefix, i, j)
				if _, err := cli.Put(ctx, k, k); err != nil {
					t.Errorf("put %s: %v", k, err)
					return
				}
				parts[i][k] = k
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		maps.Copy(keys, p)
	}
}

// isLearner reports whether the host's member is a learner (false: a voter, absent, or unreadable).
func isLearner(ctx context.Context, t *testing.T, cli *clientv3.Client, h *lab.Host) bool {
	t.Helper()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Error(err) // from the hook's goroutine too: no Fatal
		return false
	}
	for _, m := range list.Members {
		if m.Name == h.Name {
			return m.IsLearner
		}
	}
	return false
}

// The task that starts a joining member (etcd_member_join), the one before its promotion.
const startJoining = "etcdops.etcd.etcd_member_join : Start etcd on the member"
