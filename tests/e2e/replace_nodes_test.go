package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"
)

// replace_nodes.yml on one lab boot: 3 etcd 3.4 members (also masters) and 3 fresh new_etcd hosts.
// A new host holding a member dir is refused with nothing changed; then the cluster moves onto the new
// hosts while a writer outside Ansible writes through the endpoints of all six hosts, checking every
// write: no write fails, none is lost, every key written before is intact; the members are exactly the
// new hosts, all voting and healthy; the old hosts' etcd is stopped and disabled and their member dirs
// moved aside; the masters list the new members. A second run changes nothing. make soak also refuses a
// new host without its peer key, and stops the move's first run by a broken master config after every
// new member was promoted and before any old one was removed, the second resuming it (make test's
// sample of an interrupted membership change is TestScaleCluster's).
func TestReplaceNodes(t *testing.T) { replaceNodes(t, false) }

func TestSoakReplaceNodesRefusedAndInterrupted(t *testing.T) {
	soak(t)
	replaceNodes(t, true)
}

// replaceNodes is TestReplaceNodes; full adds the refused host without its peer key and the interrupted run.
func replaceNodes(t *testing.T, full bool) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true, Groups: map[string]int{"new_etcd": 3}})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	old := l.Members()
	fresh := freshHosts(l)
	cli := l.V3Client(t, old...)
	before := map[string]string{}
	putKeys(ctx, t, cli, before, 300, "/replace/before")
	membersBefore := memberIDs(ctx, t, cli)
	step("lab up, 300 keys written; members %s", membersBefore)

	// unchanged checks a run (what) left the members, the new hosts' etcd.conf and the state file as they were.
	unchanged := func(what string) {
		t.Helper()
		if after := memberIDs(ctx, t, cli); after != membersBefore {
			t.Errorf("%s changed the members: %s", what, after)
		}
		for _, h := range fresh {
			if _, err := os.Stat(filepath.Join(h.Root(), "etc/etcd/etcd.conf")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s wrote %s's etcd.conf (%v)", what, h.Name, err)
			}
		}
		if st := replaceState(t, fresh[0]); st != nil {
			t.Errorf("%s wrote a state file: %v", what, st)
		}
	}
	refuse := func(wants ...string) string {
		t.Helper()
		refused := playbook(t, l, "replace_nodes.yml", nil)
		msg := failureMsg(refused)
		for _, want := range wants {
			if refused.Err == nil || !strings.Contains(msg, want) {
				t.Fatalf("want a refusal naming %q: err %v, message %q", want, refused.Err, msg)
			}
		}
		if n := changedTasks(refused); n != 0 {
			t.Errorf("the refused run changed %d tasks", n)
		}
		unchanged("the refused run")
		return msg
	}
	if full {
		// 1. A new host without its peer key: refused, naming the host and the file; nothing changed.
		key := filepath.Join(fresh[2].Root(), "etc/etcd/peer.key")
		if err := os.Rename(key, key+".away"); err != nil {
			t.Fatal(err)
		}
		msg := refuse(fresh[2].Name, "/etc/etcd/peer.key")
		if err := os.Rename(key+".away", key); err != nil {
			t.Fatal(err)
		}
		step("1. a new host without its peer key refused, nothing changed: %s", msg)
	}

	// 1b. A new host holding a member dir (a member of another cluster, or left over): refused, naming
	// the host and the dir; nothing changed.
	memberDir := filepath.Join(fresh[1].Root(), "var/lib/etcd/member")
	if err := os.Mkdir(memberDir, 0o700); err != nil {
		t.Fatal(err)
	}
	msg := refuse(fresh[1].Name, "/var/lib/etcd/member")
	if err := os.Remove(memberDir); err != nil {
		t.Fatal(err)
	}
	step("1b. a new host with a member dir refused, nothing changed: %s", msg)

	// 1c. Check mode: it runs to its end, names both sets of hosts, and changes nothing.
	dirs := hostDirs(t, append(append([]*lab.Host{}, old...), fresh...))
	check := runPlaybook(t, l, "replace_nodes.yml", lab.Run{Check: true})
	mustSucceed(t, check)
	if s := summary(t, check); !strings.Contains(s, "Check mode: the cluster would move onto "+fresh[0].Name) {
		t.Errorf("check mode's summary: %q", s)
	}
	unchanged("check mode")
	if after := hostDirs(t, append(append([]*lab.Host{}, old...), fresh...)); after != dirs {
		t.Errorf("check mode changed the data dirs:\nbefore %s\nafter  %s", dirs, after)
	}
	step("1c. check mode predicted the move and changed nothing")

	// 2. The move, with a writer outside Ansible through every old and new endpoint. In make soak, etcd3's
	// master-config.yaml is a directory for the first run: the run stops in phase consumers, after every
	// new member was promoted and before any old one was removed; the second run resumes and completes.
	w := startWriter(t, l, append(append([]*lab.Host{}, old...), fresh...))
	start := time.Now()
	if full {
		masterConfig := filepath.Join(old[2].Root(), "etc/origin/master/master-config.yaml")
		if err := os.Rename(masterConfig, masterConfig+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(masterConfig, 0o755); err != nil {
			t.Fatal(err)
		}
		stopped := playbook(t, l, "replace_nodes.yml", nil)
		if stopped.Err == nil || !strings.Contains(failureMsg(stopped), "master-config.yaml") {
			t.Fatalf("the run with a broken master config: err %v, message %q", stopped.Err, failureMsg(stopped))
		}
		if st := replaceState(t, fresh[0]); st["status"] != "consumers" {
			t.Errorf("state file after the interrupted run: %v", st)
		}
		if members := memberIDs(ctx, t, l.V3Client(t, fresh...)); strings.Count(members, "=") != 6 || strings.Contains(members, "learner") {
			t.Errorf("after the interrupted run: members %s; want all six voting", members)
		}
		step("2a. interrupted in phase consumers after %s: %s", time.Since(start).Round(time.Second), failureMsg(stopped))
		if err := os.Remove(masterConfig); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(masterConfig+".away", masterConfig); err != nil {
			t.Fatal(err)
		}
	}
	res := playbook(t, l, "replace_nodes.yml", nil)
	took := time.Since(start)
	wr := w.stop()
	mustSucceed(t, res)
	step("2b. moved onto %d new hosts in %s; writer: %d writes acknowledged, %d failed, %s, longest write %s",
		len(fresh), took.Round(time.Second), len(wr.acked), len(wr.failed), wr.retries(), wr.longest)
	newCli := checkMoved(ctx, t, l, wr, before, old, fresh)
	step("every key intact, members %s", memberIDs(ctx, t, newCli))

	// 3. Again: the members are the new hosts, all voting: nothing changes.
	again := playbook(t, l, "replace_nodes.yml", nil)
	mustSucceed(t, again)
	if n := changedTasks(again); n != 0 || !strings.Contains(summary(t, again), "nothing changed") {
		t.Errorf("second run: %d changed tasks, summary %q", n, summary(t, again))
	}
	step("3. second run: nothing changed (%s)", summary(t, again))
}

// writer puts keys one after another through a client with every given endpoint, as an application
// would. A put gets 10 s; one that fails is retried once, as applications with a timeout do, and counted
// in retried with its first answer: "raft proposal dropped" (a leader handing its leadership over; never
// applied), or no answer within 10 s (seen once, under load, while a leaving member stopped). A put that
// fails its retry too is a failed write; every acknowledged key is read back by the tests. stalled is
// the longest run of consecutive puts that each took over 1 s, from the first one's start to the last
// one's end: how long an application would have seen the cluster hang.
type writer struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	acked   map[string]string
	failed  []string
	retried []string
	longest time.Duration
	stalled time.Duration
}

func startWriter(t testing.TB, l *lab.Lab, hosts []*lab.Host) *writer {
	t.Helper()
	cli := l.V3Client(t, hosts...)
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel, done: make(chan struct{}), acked: map[string]string{}}
	put := func(k, v string) error {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		_, err := cli.Put(wctx, k, v)
		return err
	}
	go func() {
		defer close(w.done)
		var slowSince time.Time // start of the current run of slow puts (zero: none)
		for i := 0; ctx.Err() == nil; i++ {
			k, v := fmt.Sprintf("/replace/during/%06d", i), fmt.Sprintf("w%d", i)
			began := time.Now()
			err := put(k, v)
			var first error
			if err != nil && ctx.Err() == nil {
				first, err = err, put(k, v)
			}
			took := time.Since(began)
			w.mu.Lock()
			switch {
			case took <= time.Second:
				slowSince = time.Time{}
			case slowSince.IsZero():
				slowSince = began
				fallthrough
			default:
				w.stalled = max(w.stalled, time.Since(slowSince))
			}
			if first != nil {
				w.retried = append(w.retried, fmt.Sprintf("%s: %v", k, first))
			}
			switch {
			case err == nil:
				w.acked[k] = v
				w.longest = max(w.longest, took)
			case ctx.Err() == nil:
				w.failed = append(w.failed, fmt.Sprintf("%s: %v", k, err))
			}
			w.mu.Unlock()
			// About 8 puts a second: enough to see any stall, and little CPU for six members' fsyncs
			// on a machine that runs three lab tests at once.
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return w
}

// retries says how many puts needed their retry, and the first answers.
func (w *writer) retries() string {
	return fmt.Sprintf("%d retried once %v", len(w.retried), w.retried[:min(len(w.retried), 3)])
}

func (w *writer) stop() *writer {
	w.cancel()
	<-w.done
	return w
}

// checkKeys reads every key back and compares its value, with one ranged read per key directory (one
// read per key took 22 minutes for a writer's 33k keys on two busy cores).
func checkKeys(ctx context.Context, t testing.TB, cli *clientv3.Client, want map[string]string, what string) {
	t.Helper()
	dirs := map[string]bool{}
	for k := range want {
		dirs[k[:strings.LastIndex(k, "/")+1]] = true
	}
	got := map[string]string{}
	for dir := range dirs {
		r, err := cli.Get(ctx, dir, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			got[string(kv.Key)] = string(kv.Value)
		}
	}
	lost := 0
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			lost++
			if lost <= 5 {
				t.Errorf("%s key %s: %q (present: %v), want %q", what, k, g, ok, v)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d keys %s lost or changed", lost, len(want), what)
	}
}

// checkMoved asserts a move onto the new hosts cost the writer nothing (checkWrites) and ended as
// checkReplaced says. It returns a client of the new members.
func checkMoved(ctx context.Context, t *testing.T, l *lab.Lab, wr *writer, before map[string]string, old, fresh []*lab.Host) *clientv3.Client {
	t.Helper()
	newCli := l.V3Client(t, fresh...)
	checkWrites(ctx, t, newCli, wr, before, "the move")
	checkReplaced(ctx, t, l, newCli, old, fresh)
	return newCli
}

// checkWrites asserts a membership change (during names it) cost the writer nothing: no failed write,
// enough acknowledged, every key written before and during it intact on cli.
func checkWrites(ctx context.Context, t *testing.T, cli *clientv3.Client, wr *writer, before map[string]string, during string) {
	t.Helper()
	if len(wr.failed) > 0 {
		t.Errorf("%d writes failed during %s: %v", len(wr.failed), during, wr.failed[:min(len(wr.failed), 5)])
	}
	if len(wr.acked) < 100 {
		t.Errorf("the writer got only %d writes through", len(wr.acked))
	}
	checkKeys(ctx, t, cli, before, "pre-existing")
	checkKeys(ctx, t, cli, wr.acked, "written during "+during)
}

// checkReplaced asserts the end state: the members are exactly the new hosts, all started, healthy
// voters with etcd enabled; the old hosts' etcd stopped and disabled with their member dir moved aside; each master's
// etcdClientInfo.urls the new members' client URLs with its API running; the state file archived.
func checkReplaced(ctx context.Context, t *testing.T, l *lab.Lab, cli *clientv3.Client, old, fresh []*lab.Host) {
	t.Helper()
	checkMembers(ctx, t, l, cli, fresh)
	var newURLs []string
	for _, h := range fresh {
		newURLs = append(newURLs, h.ClientURL())
	}
	for _, h := range old {
		if l.UnitActive(h, "etcd") {
			t.Errorf("etcd still runs on %s", h.Name)
		}
		if out, _ := l.Exec(h, "systemctl", "is-enabled", "etcd"); strings.TrimSpace(string(out)) != "disabled" {
			t.Errorf("etcd on %s is %q, want disabled", h.Name, strings.TrimSpace(string(out)))
		}
		dir := filepath.Join(h.Root(), "var/lib/etcd")
		if _, err := os.Stat(filepath.Join(dir, "member")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still has its member dir (%v)", h.Name, err)
		}
		if aside, _ := filepath.Glob(filepath.Join(dir, "member.replaced-*", "snap", "db")); len(aside) != 1 {
			t.Errorf("%s: member dir moved aside with its db: %v", h.Name, aside)
		}
		var cfg struct {
			EtcdClientInfo struct{ URLs []string } `yaml:"etcdClientInfo"`
		}
		b, err := os.ReadFile(filepath.Join(h.Root(), "etc/origin/master/master-config.yaml"))
		if err == nil {
			err = yaml.Unmarshal(b, &cfg)
		}
		if err != nil || strings.Join(cfg.EtcdClientInfo.URLs, ",") != strings.Join(newURLs, ",") {
			t.Errorf("%s master-config.yaml etcdClientInfo.urls %v (%v), want %v", h.Name, cfg.EtcdClientInfo.URLs, err, newURLs)
		}
		if !l.UnitActive(h, lab.MasterServices[0]) {
			t.Errorf("%s: %s is not running", h.Name, lab.MasterServices[0])
		}
	}
	if st := replaceState(t, fresh[0]); st != nil {
		t.Errorf("the state file was not set aside: %v", st)
	}
	if archived, _ := filepath.Glob(filepath.Join(fresh[0].Root(), "var/lib/etcd-backup/replace-nodes-state.replaced-*.json")); len(archived) != 1 {
		t.Errorf("archived state files: %v", archived)
	}
}

// replaceState reads the replacement's state file on the first new host (nil when absent).
func replaceState(t *testing.T, keeper *lab.Host) map[string]any {
	t.Helper()
	return readStateOn(t, keeper, "replace-nodes-state.json")
}
