package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A partition during a learner's promotion (issue 19): scale_cluster.yml grows 3 → 4 (spare1 joins, the
// even size allowed), and as the promotion of spare1 starts, spare1 is cut off from the leader while a
// writer outside Ansible keeps writing through every endpoint. The leader is the side that matters: it
// alone sends the learner its log, and it decides the promotion from how far the learner's log matches
// its own (etcd refuses a learner below 90% of the leader's index); a cut from a follower would change
// neither. Keys are written past the learner until it is provably behind, so etcd refuses the promotion
// while the partition lasts.
//   - healed during the promotion: etcd_member keeps asking until the healed learner has caught up; the
//     run finishes.
//   - healed after the run: the promotion gives up after etcd_scale_timeout with a message naming the
//     learner, the leader and both indexes; quorum holds throughout (no write fails), the learner stays;
//     the same command run again after the heal promotes it and finishes.
//
// Asserted by data: every key written before, in the burst and by the writer (0 failed) read back;
// the members exactly the four hosts, all started, voting and answering a linearizable read; no learner;
// the state file archived. The writer stands in for a quorum sampler: a put needs a quorum, one every
// ~20 ms for the whole test, each given 10 s and one retry.
func TestSoakPartitionPromote(t *testing.T) {
	soak(t)
	for _, c := range []struct {
		name string
		// healAfter: the partition ends this long after the burst, during the run (0: after the run).
		healAfter time.Duration
		timeout   string // etcd_scale_timeout
	}{
		{"healed during the promotion", 20 * time.Second, "120s"},
		{"healed after the run", 0, "40s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			partitionPromote(t, c.healAfter, c.timeout)
		})
	}
}

func partitionPromote(t *testing.T, healAfter time.Duration, timeout string) {
	start := time.Now()
	l := lab.Up(t, lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	old := l.Members()
	learner := freshHosts(l)[0]
	four := append(append([]*lab.Host{}, old...), learner)
	cli := l.V3Client(t, old...)
	before := map[string]string{}
	putKeys(ctx, t, cli, before, 300, "/partition/before")
	extra := map[string]any{"etcd_allow_unsafe_size": true, "etcd_scale_timeout": timeout}
	w := startWriter(t, l, l.Hosts)

	// As the promotion starts: the cut, then the burst; then the heal (or not, until after the run).
	burst := map[string]string{}
	var leader *lab.Host
	var heldBack bool // still a learner when the partition healed: the promotion waited for it
	done := make(chan struct{})
	hook := lab.AtTask(promoteTask(l), 1, func() {
		defer close(done)
		if leader, _ = leaderHost(ctx, t, l, old); leader == nil {
			return
		}
		if err := l.Partition(learner, leader); err != nil {
			t.Error(err)
			return
		}
		writePast(ctx, t, l, learner, leader, burst)
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
	first := scaleRun(t, l, four, lab.Run{ExtraVars: extra, Progress: hook})
	if !hook.Fired() {
		t.Fatalf("the run never reached %q: %v\n%s", promoteTask(l), first.Err, first.Failures())
	}
	<-done
	if leader == nil {
		t.Fatal("no leader among the voters as the promotion started")
	}
	t.Logf("first run (%s): %s cut off from the leader %s, %d keys written past it; %v",
		first.Duration.Round(time.Second), learner.Name, leader.Name, len(burst), first.Err)

	res := first
	if healAfter > 0 {
		mustSucceed(t, res)
		if !heldBack {
			t.Errorf("%s was a voter already when the partition healed: the promotion did not wait for it", learner.Name)
		}
	} else {
		// The run gives up clearly, with the cluster whole but for the learner: three voters, the learner
		// started and still a learner, the state file at scaling.
		msg := failureMsg(first)
		for _, want := range []string{"learner " + learner.Name, "is still not in sync with the leader after " + timeout,
			"leader " + leader.Name + " applied index"} {
			if first.Err == nil || !strings.Contains(msg, want) {
				t.Fatalf("want a failure saying %q: err %v, message %q", want, first.Err, msg)
			}
		}
		ids := memberIDs(ctx, t, cli)
		if strings.Count(ids, "=") != 4 || !strings.Contains(ids, learner.Name+"=") || !isLearner(ctx, t, cli, learner) {
			t.Fatalf("after the failed run: members %s, want the three voters and %s a learner", ids, learner.Name)
		}
		if st := readStateOn(t, old[0], "scale-cluster-state.json"); st["status"] != "scaling" {
			t.Errorf("state file after the failed run: %v", st)
		}
		t.Logf("the run failed clearly: %s; members %s", msg, ids)
		if err := l.Heal(learner, leader); err != nil {
			t.Fatal(err)
		}
		res = scaleRun(t, l, four, lab.Run{ExtraVars: extra})
		mustSucceed(t, res)
		t.Logf("re-run after the heal finished the job in %s: %s", res.Duration.Round(time.Second), summary(t, res))
	}
	wr := w.stop()

	checkMembers(ctx, t, l, cli, four)
	all := l.V3Client(t, four...)
	checkKeys(ctx, t, all, before, "pre-existing")
	checkKeys(ctx, t, all, burst, "written past the cut-off learner")
	checkKeys(ctx, t, all, wr.acked, "written during the runs")
	if len(wr.failed) > 0 {
		t.Errorf("%d writes failed: %v", len(wr.failed), wr.failed[:min(len(wr.failed), 5)])
	}
	if len(wr.acked) < 100 {
		t.Errorf("the writer got only %d writes through", len(wr.acked))
	}
	if st := readStateOn(t, old[0], "scale-cluster-state.json"); st != nil {
		t.Errorf("the state file was not set aside: %v", st)
	}
	if archived, _ := filepath.Glob(filepath.Join(old[0].Root(), "var/lib/etcd-backup/scale-cluster-state.scaled-*.json")); len(archived) != 1 {
		t.Errorf("archived state files: %v", archived)
	}
	t.Logf("members %s; writer: %d writes acknowledged, %d failed, %s, longest %s, longest stall %s; %s in all",
		memberIDs(ctx, t, all), len(wr.acked), len(wr.failed), wr.retries(), wr.longest.Round(time.Millisecond),
		wr.stalled.Round(time.Millisecond), time.Since(start).Round(time.Second))
}

// writePast writes keys (into keys) through the voters until the learner, cut off from the leader, is
// below 85% of the leader's raft index: past etcd's 90% bar for a promotion, with a margin for the
// learner's log running ahead of what it has applied.
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
		if float64(ls.RaftIndex) < 0.85*float64(lead.RaftIndex) {
			t.Logf("%s at raft index %d, the leader %s at %d", learner.Name, ls.RaftIndex, leader.Name, lead.RaftIndex)
			return
		}
		parts := make([]map[string]string, 16)
		var wg sync.WaitGroup
		for i := range parts {
			parts[i] = map[string]string{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 25; j++ {
					k := fmt.Sprintf("/partition/past/%d/%02d/%02d", round, i, j)
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
