package member

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ensure runs one task against the cluster (through the endpoints of the given members, or all).
func ensure(t *testing.T, c *etcdtest.Cluster, spec Spec, check bool, via ...*etcdtest.Member) (*Result, *module.Task, error) {
	t.Helper()
	if spec.Timeout == 0 {
		spec.Timeout = 60 * time.Second
	}
	conn := c.ConnOptions(via...)
	task := &module.Task{CheckMode: check, Diff: true}
	res, err := Ensure(context.Background(), task, &conn, spec)
	return res, task, err
}

func mustEnsure(t *testing.T, c *etcdtest.Cluster, spec Spec, check bool, wantChanged bool, via ...*etcdtest.Member) *Result {
	t.Helper()
	res, task, err := ensure(t, c, spec, check, via...)
	if err != nil {
		t.Fatalf("%s %s: %v", spec.State, spec.Name, err)
	}
	if task.IsChanged() != wantChanged {
		t.Fatalf("%s %s (check=%t): changed=%t, want %t; result %+v", spec.State, spec.Name, check, task.IsChanged(), wantChanged, res)
	}
	return res
}

// liveMembers reads the member list straight from etcd, not from the code under test. etcd 3.4
// answers a member list from the member's own state, so the list is read through one voting member
// after a linearizable read there: that member has then applied every change made before.
func liveMembers(t *testing.T, c *etcdtest.Cluster, via ...*etcdtest.Member) map[string]Info {
	t.Helper()
	if len(via) == 0 {
		via = c.Members
	}
	cli := c.Client(t, via[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/member-test-barrier"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Info{}
	for _, m := range resp.Members {
		i := info(m)
		out[i.ID] = i
	}
	return out
}

// needLearners skips a test that adds learners on etcd before 3.4 (TestLearnerIfSupported covers
// what happens there).
func needLearners(t *testing.T) {
	if v := etcdtest.Version(); v < 304 {
		t.Skipf("etcd %d.%d has no learners", v/100, v%100)
	}
}

func voters(ms map[string]Info) int {
	n := 0
	for _, m := range ms {
		if !m.IsLearner {
			n++
		}
	}
	return n
}

// The migration's flow: add a learner, write its env into the new host's config, start it, promote it.
func TestAddLearnerStartPromote(t *testing.T) {
	needLearners(t)
	c := etcdtest.NewCluster(t, 3)
	newM := c.NewMember("m3")
	spec := Spec{State: Present, Name: "m3", PeerURLs: []string{newM.PeerURL}, Learner: true}

	pred := mustEnsure(t, c, spec, true, true)
	if pred.Operation != "added" || len(pred.Members) != 4 || pred.Member.ID != "" {
		t.Fatalf("check mode prediction: %+v", pred)
	}
	if n := len(liveMembers(t, c)); n != 3 {
		t.Fatalf("check mode changed the cluster: %d members", n)
	}

	began := time.Now()
	res := mustEnsure(t, c, spec, false, true)
	t.Logf("learner add right after the cluster came up: %s", time.Since(began).Round(time.Millisecond))
	live := liveMembers(t, c)
	got, ok := live[res.Member.ID]
	if !ok || len(live) != 4 || !got.IsLearner || got.Started || res.Member.Started {
		t.Fatalf("after add: member %+v, live %+v", res.Member, live)
	}
	var want []string
	for _, m := range append(c.Members, newM) {
		want = append(want, m.Name+"="+m.PeerURL)
	}
	gotIC := strings.Split(res.Env["ETCD_INITIAL_CLUSTER"], ",")
	sort.Strings(want)
	sort.Strings(gotIC)
	if strings.Join(gotIC, ",") != strings.Join(want, ",") || res.InitialCluster != res.Env["ETCD_INITIAL_CLUSTER"] ||
		res.Env["ETCD_NAME"] != "m3" || res.Env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" ||
		res.Env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] != newM.PeerURL || len(res.Env) != 4 {
		t.Fatalf("env: %v\nwant initial cluster %v", res.Env, want)
	}

	// Interrupted before the start: the re-run finds the nameless member by its peer URLs.
	again := mustEnsure(t, c, spec, false, false)
	if again.Member.ID != res.Member.ID || again.Member.Started || again.Env["ETCD_INITIAL_CLUSTER"] != res.InitialCluster {
		t.Fatalf("re-run: %+v", again)
	}
	if n := len(liveMembers(t, c)); n != 4 {
		t.Fatalf("re-run added a duplicate: %d members", n)
	}

	// One change at a time: a second member cannot be added while m3 is pending.
	other := c.NewMember("m4")
	if _, _, err := ensure(t, c, Spec{State: Present, Name: "m4", PeerURLs: []string{other.PeerURL}, Learner: true}, false); err == nil ||
		!strings.Contains(err.Error(), "never started") {
		t.Fatalf("second add while m3 is unstarted: %v", err)
	}

	newM.InitialCluster, newM.State = res.Env["ETCD_INITIAL_CLUSTER"], "existing"
	c.Members = append(c.Members, newM)
	if err := c.Start(newM); err != nil {
		t.Fatal(err)
	}

	pspec := Spec{State: Promoted, Name: "m3"}
	if p := mustEnsure(t, c, pspec, true, true); p.Operation != "promoted" {
		t.Fatalf("check-mode promote: %+v", p)
	}
	began = time.Now()
	p := mustEnsure(t, c, pspec, false, true)
	t.Logf("promote after start: %s (etcd %s)", time.Since(began).Round(time.Millisecond), etcdtest.Binary())
	live = liveMembers(t, c)
	if p.Member.IsLearner || live[res.Member.ID].IsLearner || !live[res.Member.ID].Started || voters(live) != 4 {
		t.Fatalf("after promote: %+v live %+v", p.Member, live)
	}
	mustEnsure(t, c, pspec, false, false)
	if st := mustEnsure(t, c, spec, false, false); !st.Member.Started || st.Member.IsLearner {
		t.Fatalf("present after start: %+v", st.Member)
	}

	// The promoted member serves linearizable reads and writes as a voter.
	cli := c.Client(t, newM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/member-test", "voter"); err != nil {
		t.Fatal(err)
	}
	if r, err := cli.Get(ctx, "/member-test"); err != nil || string(r.Kvs[0].Value) != "voter" {
		t.Fatalf("read back through m3: %v %v", r, err)
	}
}

// learner: false adds a voter directly (the seeds' etcd 3.x-v2 flow).
func TestAddVoterAndRemoveByID(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	newM := c.NewMember("m1")
	res := mustEnsure(t, c, Spec{State: Present, Name: "m1", PeerURLs: []string{newM.PeerURL}, Learner: false}, false, true)
	if res.Member.IsLearner || res.Member.Started {
		t.Fatalf("voter add: %+v", res.Member)
	}
	newM.InitialCluster, newM.State = res.Env["ETCD_INITIAL_CLUSTER"], "existing"
	c.Members = append(c.Members, newM)
	if err := c.Start(newM); err != nil {
		t.Fatal(err)
	}
	c.WaitReady(t)
	live := liveMembers(t, c, c.Members[0])
	if voters(live) != 2 {
		t.Fatalf("after voter add: %+v", live)
	}

	rm := Spec{State: Absent, ID: res.Member.ID}
	mustEnsure(t, c, rm, false, true, c.Members[0])
	if live := liveMembers(t, c, c.Members[0]); len(live) != 1 {
		t.Fatalf("after remove by id: %+v", live)
	}
	mustEnsure(t, c, rm, false, false, c.Members[0])
	mustEnsure(t, c, Spec{State: Absent, PeerURLs: []string{newM.PeerURL}}, false, false, c.Members[0])
}

// With one of three members down, removing a healthy one would leave no quorum; the down one may
// go, and so may a learner.
func TestRemoveKeepsQuorum(t *testing.T) {
	needLearners(t)
	c := etcdtest.NewCluster(t, 3)
	m0, m1, m2 := c.Members[0], c.Members[1], c.Members[2]
	learner := c.NewMember("l")
	mustEnsure(t, c, Spec{State: Present, Name: "l", PeerURLs: []string{learner.PeerURL}, Learner: true}, false, true)
	c.Stop(m2)

	mustEnsure(t, c, Spec{State: Absent, PeerURLs: []string{learner.PeerURL}}, false, true, m0, m1)
	if n := len(liveMembers(t, c, m0, m1)); n != 3 {
		t.Fatalf("after removing the learner: %d members", n)
	}

	_, _, err := ensure(t, c, Spec{State: Absent, Name: m0.Name}, false, m0, m1)
	if err == nil || !strings.Contains(err.Error(), "refusing to remove m0") || !strings.Contains(err.Error(), "force: true") {
		t.Fatalf("removing a healthy member with one down: %v", err)
	}
	if n := len(liveMembers(t, c, m0, m1)); n != 3 {
		t.Fatalf("refused removal changed the cluster: %d members", n)
	}

	rm := Spec{State: Absent, PeerURLs: []string{strings.Replace(m2.PeerURL, "https", "HTTPS", 1) + "/"}}
	if p := mustEnsure(t, c, rm, true, true, m0, m1); p.Operation != "removed" || len(p.Members) != 2 {
		t.Fatalf("check-mode remove: %+v", p)
	}
	if n := len(liveMembers(t, c, m0, m1)); n != 3 {
		t.Fatalf("check mode removed a member: %d", n)
	}
	res := mustEnsure(t, c, rm, false, true, m0, m1)
	live := liveMembers(t, c, m0, m1)
	if res.Member.Name != "m2" || len(live) != 2 {
		t.Fatalf("remove the stopped member: %+v, live %+v", res.Member, live)
	}
	mustEnsure(t, c, Spec{State: Absent, Name: "m2"}, false, false, m0, m1)
}

// force skips the module's quorum check; etcd's strict reconfiguration check still has the last word.
func TestRemoveForce(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m0, m1, m2 := c.Members[0], c.Members[1], c.Members[2]
	c.Stop(m2)
	_, _, err := ensure(t, c, Spec{State: Absent, Name: m1.Name, Force: true, Timeout: 3 * time.Second}, false, m0, m1)
	if err == nil || !strings.Contains(err.Error(), "etcd refused to remove m1") {
		t.Fatalf("forced removal against etcd's strict check: %v", err)
	}
	if n := len(liveMembers(t, c, m0, m1)); n != 3 {
		t.Fatalf("refused removal changed the cluster: %d members", n)
	}
}

// With etcd's strict check off (as some old clusters run), force is the only guard, and the
// operator's word that the down member returns.
func TestRemoveForceStrictCheckOff(t *testing.T) {
	c := etcdtest.NewCluster(t, 3, etcdtest.Options{Extra: map[string]string{"strict-reconfig-check": "false"}})
	m0, m1, m2 := c.Members[0], c.Members[1], c.Members[2]
	c.Stop(m2)
	if _, _, err := ensure(t, c, Spec{State: Absent, Name: m1.Name}, false, m0); err == nil {
		t.Fatal("removal without force succeeded with one member down")
	}
	res := mustEnsure(t, c, Spec{State: Absent, Name: m1.Name, Force: true}, false, true, m0)
	if len(res.Members) != 2 || res.Member.Name != "m1" {
		t.Fatalf("forced removal: %+v", res)
	}
	c.Stop(m1)
	if err := c.Start(m2); err != nil {
		t.Fatal(err)
	}
	c.Members = []*etcdtest.Member{m0, m2}
	c.WaitReady(t)
	if live := liveMembers(t, c); len(live) != 2 || voters(live) != 2 {
		t.Fatalf("after m2 returned: %+v", live)
	}
}

// Seed 000: after a force-new-cluster the first member still advertises its old peer URL.
func TestUpdatePeerURLByName(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	m0 := c.Members[0]
	// Same port, other spelling of the host: the member keeps working and the URL visibly changes.
	newURL := strings.Replace(m0.PeerURL, "127.0.0.1", "localhost", 1)
	spec := Spec{State: Present, Name: "m0", PeerURLs: []string{newURL}}
	if p := mustEnsure(t, c, spec, true, true); p.Operation != "updated" || p.Member.PeerURLs[0] != newURL {
		t.Fatalf("check-mode update: %+v", p)
	}
	if live := liveMembers(t, c); firstPeerURL(live) != m0.PeerURL {
		t.Fatalf("check mode updated the member: %+v", live)
	}
	res := mustEnsure(t, c, spec, false, true)
	if live := liveMembers(t, c); res.Operation != "updated" || firstPeerURL(live) != newURL {
		t.Fatalf("after update: %+v live %+v", res, live)
	}
	// Normalised comparison: case and a trailing slash are the same URL.
	spec.PeerURLs = []string{strings.ToUpper(newURL[:5]) + newURL[5:] + "/"}
	mustEnsure(t, c, spec, false, false)
	// Two URLs, then back to one of them: overlapping its own URLs is no conflict for the member.
	spec.PeerURLs = []string{newURL, m0.PeerURL}
	mustEnsure(t, c, spec, false, true)
	spec.PeerURLs = []string{m0.PeerURL}
	mustEnsure(t, c, spec, false, true)
	if live := liveMembers(t, c); firstPeerURL(live) != m0.PeerURL || len(live) != 1 {
		t.Fatalf("after two updates: %+v", live)
	}
}

func firstPeerURL(ms map[string]Info) string {
	for _, m := range ms {
		return m.PeerURLs[0]
	}
	return ""
}

// Another member's peer URLs under a new name is a conflict, not an update or a duplicate.
func TestPeerURLsOfAnotherMember(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	_, _, err := ensure(t, c, Spec{State: Present, Name: "other", PeerURLs: []string{c.Members[0].PeerURL}, Learner: true}, false)
	if err == nil || !strings.Contains(err.Error(), "already belong to member m0") {
		t.Fatalf("add with m0's peer URL: %v", err)
	}
	if n := len(liveMembers(t, c)); n != 1 {
		t.Fatalf("members: %d", n)
	}
}

// Bad input fails before anything is contacted, naming the parameter.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		spec  Spec
		param string
	}{
		{Spec{State: Present, PeerURLs: []string{"https://10.0.0.4:2380"}}, "name"},
		{Spec{State: Present, Name: "a"}, "peer_urls"},
		{Spec{State: Present, Name: "a", PeerURLs: []string{"10.0.0.4:2380"}}, "peer_urls"},
		{Spec{State: Present, Name: "a", PeerURLs: []string{"https://10.0.0.4"}}, "peer_urls"},
		{Spec{State: Present, Name: "a", PeerURLs: []string{"https://10.0.0.4:2380/x"}}, "peer_urls"},
		{Spec{State: Present, Name: "a", PeerURLs: []string{"https://10.0.0.4:99999"}}, "peer_urls"},
		{Spec{State: Present, Name: "a", PeerURLs: []string{"https://10.0.0.4:0"}}, "peer_urls"},
		{Spec{State: Absent}, "name"},
		{Spec{State: Absent, Name: "a", ID: "1f"}, "id, name"},
		{Spec{State: Promoted, ID: "xyz"}, "id"},
		{Spec{State: Absent, Name: "a", Timeout: -1}, "timeout"},
	} {
		if tc.spec.Timeout == 0 {
			tc.spec.Timeout = time.Second
		}
		err := tc.spec.Validate()
		var pe *module.ParamError
		if !errors.As(err, &pe) || pe.Param != tc.param {
			t.Errorf("%+v: got %v, want an error on %s", tc.spec, err, tc.param)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://10.0.0.4:2380":           "https://10.0.0.4:2380",
		"HTTPS://Etcd1.Example.COM:2380/": "https://etcd1.example.com:2380",
		"http://[::1]:2380":               "http://[::1]:2380",
		" https://10.0.0.4:2380 ":         "https://10.0.0.4:2380",
	} {
		if got, err := normalizeURL(in); err != nil || got != want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if sameURLs([]string{"https://10.0.0.4:2380"}, []string{"https://10.0.0.41:2380"}) {
		t.Error("a URL that is a prefix of another matched it")
	}
}

// A learner that lags (here: down while the leader takes writes) is not promoted; the task waits
// for it, fails after timeout saying how far behind it is, and succeeds once it has caught up.
func TestPromoteWaitsForLaggingLearner(t *testing.T) {
	needLearners(t)
	c := etcdtest.NewCluster(t, 1)
	newM := c.NewMember("m1")
	res := mustEnsure(t, c, Spec{State: Present, Name: "m1", PeerURLs: []string{newM.PeerURL}, Learner: true}, false, true)
	newM.InitialCluster, newM.State = res.Env["ETCD_INITIAL_CLUSTER"], "existing"
	if err := c.Start(newM); err != nil {
		t.Fatal(err)
	}
	// Check mode waits until the learner has joined and published its name.
	mustEnsure(t, c, Spec{State: Promoted, Name: "m1"}, true, true)
	var pe *module.ParamError
	if _, _, err := ensure(t, c, Spec{State: Promoted, Name: "m1"}, false, newM); !errors.As(err, &pe) || pe.Param != "endpoints" {
		t.Fatalf("endpoints reaching only the learner: %v", err)
	}
	c.Stop(newM)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 200; i++ {
		if _, err := cli.Put(ctx, "/lag/"+strings.Repeat("k", i%50)+string(rune('a'+i%26)), strings.Repeat("v", 1024)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := ensure(t, c, Spec{State: Promoted, Name: "m1", Timeout: 2 * time.Second}, false)
	if err == nil || !strings.Contains(err.Error(), "not in sync with the leader after 2s") || !strings.Contains(err.Error(), "learner status unavailable") {
		t.Fatalf("promote of a lagging learner: %v", err)
	}
	if !liveMembers(t, c, c.Members[0])[res.Member.ID].IsLearner {
		t.Fatal("a lagging learner was promoted")
	}
	c.Members = append(c.Members, newM)
	if err := c.Start(newM); err != nil {
		t.Fatal(err)
	}
	p := mustEnsure(t, c, Spec{State: Promoted, PeerURLs: []string{newM.PeerURL}}, false, true, c.Members[0])
	if p.Member.IsLearner || liveMembers(t, c, c.Members[0])[res.Member.ID].IsLearner {
		t.Fatalf("after catching up: %+v", p.Member)
	}
}

// The promotion's timeout message tells a learner cut off from the leader (applied index unchanged:
// check the network, a longer wait would not help) from one catching up (raise timeout), and says
// why when the indexes could not be read.
func TestNotInSync(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(learner, leader uint64, after time.Duration) *syncProgress {
		return &syncProgress{at: t0.Add(after), learner: learner, leader: leader, leaderName: "etcd1"}
	}
	for _, c := range []struct {
		name        string
		first, last *syncProgress
		want        []string
	}{
		{"cut off", at(2030, 2800, 0), at(2030, 4445, 40*time.Second), []string{
			"learner applied index 2030, unchanged in 40s, while leader etcd1 went from 2800 to 4445",
			"does not hear from the leader", "it and etcd1 reach each other's peer URL (a network partition, a firewall"}},
		{"catching up", at(2030, 9000, 0), at(5000, 9100, 2*time.Minute), []string{
			"learner applied index from 2030 to 5000 in 2m0s, leader etcd1 from 9000 to 9100: it is catching up; raise timeout"}},
		{"learner stopped at the end", at(2030, 2800, 0), &syncProgress{unknown: "learner status unavailable: context deadline exceeded"},
			[]string{"learner status unavailable: context deadline exceeded; check that etcd runs on it"}},
		{"learner stopped from the start", &syncProgress{unknown: "learner status unavailable: refused"}, at(2030, 2800, time.Minute),
			[]string{"learner status unavailable: refused; check that etcd runs on it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := notInSync(c.first, c.last)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("notInSync: %q\nwant it to contain %q", got, w)
				}
			}
		})
	}
}

// learner: auto adds a learner where the cluster has them (etcd ≥ 3.4) and a voter before that,
// where a plain learner add is refused with the parameter named (3.2 would silently add a voter).
func TestLearnerIfSupported(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	newM := c.NewMember("m1")
	spec := Spec{State: Present, Name: "m1", PeerURLs: []string{newM.PeerURL}, Learner: true}
	hasLearners := etcdtest.Version() >= 304
	if !hasLearners {
		_, _, err := ensure(t, c, spec, false)
		var pe *module.ParamError
		if !errors.As(err, &pe) || pe.Param != "learner" || len(liveMembers(t, c)) != 1 {
			t.Fatalf("a learner add on etcd %d: %v, want a refusal naming learner", etcdtest.Version(), err)
		}
	}
	spec.LearnerIfSupported = true
	res := mustEnsure(t, c, spec, false, true)
	if !hasLearners { // a second voter: no quorum until it runs
		newM.InitialCluster, newM.State = res.Env["ETCD_INITIAL_CLUSTER"], "existing"
		c.Members = append(c.Members, newM)
		if err := c.Start(newM); err != nil {
			t.Fatal(err)
		}
		c.WaitReady(t)
	}
	if live := liveMembers(t, c); len(live) != 2 || live[res.Member.ID].IsLearner != hasLearners {
		t.Fatalf("learner: auto on etcd %d added %+v", etcdtest.Version(), live)
	}
}

// Two voter adds at once: the one whose add etcd applies second finds the first one's member
// unstarted in the answer, removes its own again and refuses naming the other; the cluster keeps
// one unstarted voter, not two. (The other run's add lands between this run's read and its add.)
func TestConcurrentVoterAddStepsBack(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	conn := c.ConnOptions()
	cli := c.Client(t)
	mine := c.NewMember("m3")
	task := &module.Task{}
	cl := newCluster(cli, &conn, task, Spec{State: Present, Name: "m3", PeerURLs: []string{mine.PeerURL}, Timeout: 10 * time.Second})
	if err := cl.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := cl.oneChangeAtATime(); err != nil {
		t.Fatal(err)
	}
	otherURL := c.NewMember("m4").PeerURL
	otherID := c.AddUnstarted(t, otherURL)
	// Either this module steps back (the server took the add: the embedded 3.5 here), or the server's
	// own strict reconfiguration check refuses it first (3.2, 3.4 and 3.6 as processes, once they see
	// the unstarted voter as not connected). What must never happen is a second unstarted voter.
	_, err := cl.add(context.Background())
	steppedBack := err != nil && strings.Contains(err.Error(), otherURL) && strings.Contains(err.Error(), "was removed again")
	refused := err != nil && strings.Contains(err.Error(), "unhealthy cluster")
	if !steppedBack && !refused {
		t.Fatalf("second concurrent add: %v", err)
	}
	live := liveMembers(t, c, c.Members...)
	if len(live) != 4 {
		t.Fatalf("members after the refused add: %+v", live)
	}
	for _, m := range live {
		if !m.Started && m.ID != fmt.Sprintf("%x", otherID) {
			t.Fatalf("an unstarted member other than the concurrent one is left: %+v", live)
		}
	}
}

// Seed 002's removed-member flow: a member removed and its peer URL added again at once, through
// every endpoint including the removed member's, three times; "member not found" and the like from
// a member that has just been removed are retried.
func TestReAddRightAfterRemove(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	gone := c.Members[2]
	for i := 0; i < 3; i++ {
		mustEnsure(t, c, Spec{State: Absent, PeerURLs: []string{gone.PeerURL}}, false, true)
		res := mustEnsure(t, c, Spec{State: Present, Name: gone.Name, PeerURLs: []string{gone.PeerURL}}, false, true)
		if res.Operation != "added" || res.Member.Started {
			t.Fatalf("re-add %d: %+v", i, res)
		}
	}
	if live := liveMembers(t, c, c.Members[:2]...); len(live) != 3 {
		t.Fatalf("members: %+v", live)
	}
	for _, err := range []error{rpctypes.ErrMemberNotFound, rpctypes.ErrStopped, rpctypes.ErrUnhealthy, errors.New("rpc error: code = Unknown desc = raft: stopped"),
		status.Error(codes.Unavailable, "error reading from server: read: connection reset by peer")} {
		if !addRetryable(err) {
			t.Errorf("%v is not retried", err)
		}
	}
	if addRetryable(rpctypes.ErrPeerURLExist) {
		t.Error("peer URL exists is retried")
	}
	// A removal retried after a dropped connection; "not found" then ends it (removed by the first try).
	if !removeRetryable(status.Error(codes.Unavailable, "connection reset by peer")) || removeRetryable(rpctypes.ErrMemberNotFound) {
		t.Error("remove retries the wrong errors")
	}
}

// leaderOf returns the running member that leads and the others.
func leaderOf(t *testing.T, c *etcdtest.Cluster) (*etcdtest.Member, []*etcdtest.Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range c.Members {
		if !c.Running(m) {
			continue
		}
		st, err := c.Client(t, m).Status(ctx, m.ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == st.Header.MemberId {
			var rest []*etcdtest.Member
			for _, o := range c.Members {
				if o != m {
					rest = append(rest, o)
				}
			}
			return m, rest
		}
	}
	t.Fatal("no leader")
	return nil, nil
}

// state leader hands the leadership to the named voter (check mode moves nothing; again: no change);
// a name no member has is an error naming the members.
func TestLeaderMovesLeadership(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	old, rest := leaderOf(t, c)
	want := Spec{State: Leader, Name: rest[1].Name}
	if etcdtest.Version() < 303 {
		// No MoveLeader before 3.3: refused, saying so, and the leader stays.
		if _, _, err := ensure(t, c, want, false); err == nil || !strings.Contains(err.Error(), "etcd 3.3") {
			t.Fatalf("state leader before 3.3: %v", err)
		}
		if now, _ := leaderOf(t, c); now != old {
			t.Fatalf("the leadership moved to %s", now.Name)
		}
		return
	}
	if p := mustEnsure(t, c, want, true, true); p.Operation != "leader_moved" || p.LeaderMovedTo != rest[1].Name {
		t.Fatalf("check mode: %+v", p)
	}
	if now, _ := leaderOf(t, c); now != old {
		t.Fatalf("check mode moved the leadership to %s", now.Name)
	}
	mustEnsure(t, c, want, false, true)
	if now, _ := leaderOf(t, c); now != rest[1] {
		t.Fatalf("leader %s, want %s", now.Name, rest[1].Name)
	}
	if again := mustEnsure(t, c, want, false, false); again.Operation != "none" {
		t.Fatalf("again: %+v", again)
	}
	if _, _, err := ensure(t, c, Spec{State: Leader, Name: "nobody"}, false); err == nil || !strings.Contains(err.Error(), "no member matches name nobody") {
		t.Fatalf("unknown member: %v", err)
	}
}

// Removing the leader moves the leadership first, to another voter (check mode names it and moves
// nothing); the removal then takes out a follower, and the cluster keeps taking writes.
func TestRemoveLeaderMovesLeadershipFirst(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, rest := leaderOf(t, c)
	rm := Spec{State: Absent, Name: leader.Name}
	if etcdtest.Version() < 303 {
		// No leadership transfer before 3.3: the leader is removed as it is and steps down itself.
		res := mustEnsure(t, c, rm, false, true, rest...)
		if res.LeaderMovedTo != "" || len(liveMembers(t, c, rest[0])) != 2 {
			t.Fatalf("remove the leader before 3.3: %+v", res)
		}
		if _, err := c.Client(t, rest...).Put(ctx, "/after-leader-removal", "ok"); err != nil {
			t.Fatal(err)
		}
		return
	}
	if p := mustEnsure(t, c, rm, true, true, rest...); p.LeaderMovedTo == "" || p.LeaderMovedTo == leader.Name {
		t.Fatalf("check mode: leader_moved_to %q, want another member", p.LeaderMovedTo)
	}
	if again, _ := leaderOf(t, c); again != leader || len(liveMembers(t, c, rest[0])) != 3 {
		t.Fatalf("check mode moved the leadership (%s) or removed a member", again.Name)
	}
	res := mustEnsure(t, c, rm, false, true, rest...)
	if res.LeaderMovedTo == "" || res.LeaderMovedTo == leader.Name || res.Member.Name != leader.Name {
		t.Fatalf("remove the leader: %+v", res)
	}
	live := liveMembers(t, c, rest[0])
	if len(live) != 2 {
		t.Fatalf("after removing the old leader: %+v", live)
	}
	st, err := c.Client(t, rest[0]).Status(ctx, rest[0].ClientURL)
	if err != nil || st.Leader == 0 || live[fmt.Sprintf("%x", st.Leader)].Name != res.LeaderMovedTo {
		t.Fatalf("leader after the removal: %v %v, want %s", st, err, res.LeaderMovedTo)
	}
	if _, err := c.Client(t, rest...).Put(ctx, "/after-leader-removal", "ok"); err != nil {
		t.Fatal(err)
	}
	// Gone: no change, nothing moved.
	if again := mustEnsure(t, c, rm, false, false, rest...); again.LeaderMovedTo != "" {
		t.Fatalf("removed again: %+v", again)
	}
}
