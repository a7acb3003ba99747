package modules

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/member"
)

type memberResult struct {
	member.Result
	ansibletest.Flags
	Diff struct {
		Before struct{ Members []string } `json:"before"`
		After  struct{ Members []string } `json:"after"`
	} `json:"diff"`
}

func runMember(t *testing.T, args map[string]any, o ansibletest.Opts) memberResult {
	return ansibletest.ModuleAs[memberResult](t, "etcd_member", args, o)
}

// clusterMembers reads the member list from etcd itself: name (or peer URL while unstarted) → learner.
// It asks one voting member after a linearizable read there (etcd 3.4 answers member lists from the
// member's own, possibly trailing, state).
func clusterMembers(t *testing.T, c *etcdtest.Cluster, via ...*etcdtest.Member) map[string]bool {
	t.Helper()
	if len(via) == 0 {
		via = c.Members
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := c.Client(t, via[0])
	if _, err := cli.Get(ctx, "/member-test-barrier"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range resp.Members {
		key := m.Name
		if key == "" {
			key = m.PeerURLs[0]
		}
		out[key] = m.IsLearner
	}
	return out
}

// Through real Ansible: the migration's add → start → promote, then remove; each step first in
// check mode (changed, nothing changed), then for real, then again (not changed).
func TestMemberModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	voters := c.Members
	newM := c.NewMember("m3")
	add := withArgs(c.Args(voters...), map[string]any{"name": "m3", "peer_urls": newM.PeerURL})

	res := runMember(t, add, ansibletest.Opts{Check: true, Diff: true})
	if res.Failed || !res.Changed || res.Operation != "added" || len(res.Diff.After.Members) != 4 || len(res.Diff.Before.Members) != 3 {
		t.Fatalf("check-mode add: %+v (msg %s)", res, res.Msg)
	}
	if n := len(clusterMembers(t, c, voters...)); n != 3 {
		t.Fatalf("check mode added a member: %d", n)
	}

	res = runMember(t, add, ansibletest.Opts{})
	if res.Failed || !res.Changed || !res.Member.IsLearner || res.Member.Started || res.Env["ETCD_NAME"] != "m3" ||
		res.Env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || !strings.Contains(res.Env["ETCD_INITIAL_CLUSTER"], "m3="+newM.PeerURL) {
		t.Fatalf("add: %+v (msg %s)", res, res.Msg)
	}
	if learner, ok := clusterMembers(t, c, voters...)[newM.PeerURL]; !ok || !learner {
		t.Fatal("the new member is not an unstarted learner in etcd")
	}
	if again := runMember(t, add, ansibletest.Opts{}); again.Failed || again.Changed || again.Member.ID != res.Member.ID {
		t.Fatalf("add again: %+v (msg %s)", again, again.Msg)
	}

	newM.InitialCluster, newM.State = res.Env["ETCD_INITIAL_CLUSTER"], "existing"
	c.Members = append(c.Members, newM)
	if err := c.Start(newM); err != nil {
		t.Fatal(err)
	}

	promote := withArgs(c.Args(voters...), map[string]any{"name": "m3", "state": "promoted", "timeout": "2m"})
	if res := runMember(t, promote, ansibletest.Opts{Check: true}); res.Failed || !res.Changed {
		t.Fatalf("check-mode promote: %+v (msg %s)", res, res.Msg)
	}
	if learner := clusterMembers(t, c, voters...)["m3"]; !learner {
		t.Fatal("check mode promoted m3")
	}
	if res := runMember(t, promote, ansibletest.Opts{}); res.Failed || !res.Changed || res.Member.IsLearner {
		t.Fatalf("promote: %+v (msg %s)", res, res.Msg)
	}
	if ms := clusterMembers(t, c, voters...); len(ms) != 4 || ms["m3"] {
		t.Fatalf("after promote: %v", ms)
	}
	if res := runMember(t, promote, ansibletest.Opts{}); res.Failed || res.Changed {
		t.Fatalf("promote again: %+v (msg %s)", res, res.Msg)
	}

	remove := withArgs(c.Args(voters...), map[string]any{"name": "m3", "state": "absent"})
	if res := runMember(t, remove, ansibletest.Opts{Check: true}); res.Failed || !res.Changed {
		t.Fatalf("check-mode remove: %+v (msg %s)", res, res.Msg)
	}
	if n := len(clusterMembers(t, c, voters...)); n != 4 {
		t.Fatalf("check mode removed a member: %d", n)
	}
	if res := runMember(t, remove, ansibletest.Opts{}); res.Failed || !res.Changed || res.Member.Name != "m3" || len(res.Members) != 3 {
		t.Fatalf("remove: %+v (msg %s)", res, res.Msg)
	}
	if ms := clusterMembers(t, c, voters...); len(ms) != 3 {
		t.Fatalf("after remove: %v", ms)
	}
	if res := runMember(t, remove, ansibletest.Opts{}); res.Failed || res.Changed {
		t.Fatalf("remove again: %+v (msg %s)", res, res.Msg)
	}
}

// Bad input and a wrong CA fail with a message naming what to fix, and change nothing.
func TestMemberModuleErrors(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"name": "m9", "peer_urls": "https://127.0.0.1"}, "parameter peer_urls"},
		{map[string]any{"name": "m9", "peer_urls": "https://127.0.0.1:99999"}, "parameter peer_urls"},
		{map[string]any{"state": "absent", "name": "m0", "id": "8e9e05c52164694d"}, "parameter id, name: are mutually exclusive"},
		{map[string]any{"name": "m9", "peer_urls": "https://127.0.0.1:1", "ca_cert": c.Cert}, "ca_cert does not sign"},
	} {
		res := runMember(t, withArgs(c.Args(), tc.args), ansibletest.Opts{})
		if !res.Failed || !strings.Contains(res.Msg, tc.want) {
			t.Errorf("%v: failed=%v msg=%s; want %q", tc.args, res.Failed, res.Msg, tc.want)
		}
	}
	if n := len(clusterMembers(t, c)); n != 1 {
		t.Fatalf("members: %d", n)
	}
	// no_log: the result (member list, URLs) is hidden like any other module's.
	hidden := ansibletest.Module(t, "etcd_member", withArgs(c.Args(), map[string]any{"state": "absent", "name": "gone"}), ansibletest.Opts{NoLog: true})
	if _, shown := hidden["members"]; shown || hidden.Failed() || hidden.Changed() || hidden["censored"] == nil {
		t.Errorf("no_log result: %v", hidden)
	}
}

// The runbook form: an ad-hoc `ansible localhost -m etcdops.etcd.etcd_member -a ...` in check mode.
func TestMemberModuleAdHoc(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	args, _ := json.Marshal(withArgs(c.Args(), map[string]any{"name": "m1", "peer_urls": "https://127.0.0.1:2380"}))
	cmd := exec.Command("ansible", "localhost", "-i", "localhost,", "-c", "local", "--check",
		"-m", "etcdops.etcd.etcd_member", "-a", string(args))
	cmd.Env = ansibletest.Install(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ansible: %v\n%s", err, out)
	}
	var report struct {
		Plays []struct {
			Tasks []struct {
				Hosts map[string]memberResult `json:"hosts"`
			} `json:"tasks"`
		} `json:"plays"`
	}
	if err := json.Unmarshal(out, &report); err != nil || len(report.Plays) == 0 || len(report.Plays[0].Tasks) == 0 {
		t.Fatalf("ansible output: %v\n%s", err, out)
	}
	res := report.Plays[0].Tasks[0].Hosts["localhost"]
	if res.Failed || !res.Changed || res.Operation != "added" || res.Env["ETCD_NAME"] != "m1" {
		t.Fatalf("ad-hoc check-mode add: %+v (msg %s)", res, res.Msg)
	}
	if n := len(clusterMembers(t, c)); n != 1 {
		t.Fatalf("check mode added a member: %d", n)
	}
}

// state leader through Ansible: check mode (changed, the leader stays), real (the named member leads),
// again (not changed).
func TestMemberModuleLeader(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	leaderName := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cli := c.Client(t, c.Members...)
		st, err := cli.Status(ctx, c.Members[0].ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms.Members {
			if m.ID == st.Leader {
				return m.Name
			}
		}
		return ""
	}
	before := leaderName()
	target := "m0"
	if before == target {
		target = "m1"
	}
	args := withArgs(c.Args(c.Members...), map[string]any{"state": "leader", "name": target})
	if res := runMember(t, args, ansibletest.Opts{Check: true}); res.Failed || !res.Changed || res.LeaderMovedTo != target || leaderName() != before {
		t.Fatalf("check mode: %+v (msg %s), leader %s", res, res.Msg, leaderName())
	}
	if res := runMember(t, args, ansibletest.Opts{}); res.Failed || !res.Changed || res.Operation != "leader_moved" || leaderName() != target {
		t.Fatalf("leader: %+v (msg %s), leader %s", res, res.Msg, leaderName())
	}
	if res := runMember(t, args, ansibletest.Opts{}); res.Failed || res.Changed {
		t.Fatalf("again: %+v (msg %s)", res, res.Msg)
	}
}
