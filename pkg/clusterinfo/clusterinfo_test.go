package clusterinfo

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// One 3-member TLS cluster with client-cert auth: facts while all members run, then with one
// stopped (reported, not fatal).
func TestGatherThreeMembers(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := context.Background()
	o := c.ConnOptions()

	// etcd 3.6+ (ETCDTEST_BIN) has no v2 API; every server the tests embed or 3.4/3.5 must serve it.
	hasV2 := true
	t.Run("empty v2 keyspace", func(t *testing.T) {
		info, err := Gather(ctx, &o, Spec{V2: true})
		if err != nil {
			t.Fatal(err)
		}
		if v2 := info.V2; !v2.Enabled && etcdtest.Binary() != "" && strings.Contains(v2.Error, "--enable-v2") {
			hasV2 = false
			t.Logf("%s serves no v2 API: %s", etcdtest.Binary(), v2.Error)
		} else if !v2.Enabled || v2.HasData || len(v2.TopLevelDirs) != 0 || v2.Error != "" {
			t.Fatalf("fresh cluster v2 = %+v, want enabled and empty", v2)
		}
		if info.V3 != nil {
			t.Fatalf("v3 counts without v3_prefixes: %+v", info.V3)
		}
	})

	cli := c.Client(t)
	var last *clientv3.PutResponse
	for _, k := range []string{"/kubernetes.io/pods/p0", "/kubernetes.io/pods/p1", "/kubernetes.io/pods/p2",
		"/openshift.io/images/i0", "/other"} {
		var err error
		if last, err = cli.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if hasV2 {
		v2cli, err := o.V2()
		if err != nil {
			t.Fatal(err)
		}
		kapi := clientv2.NewKeysAPI(v2cli)
		for _, k := range []string{"/kubernetes.io/minions/n1", "/openshift.io/users/u1", "/flag"} {
			if _, err := kapi.Set(ctx, k, "v", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("all members up", func(t *testing.T) {
		info, err := Gather(ctx, &o, Spec{V2: true, V3Prefixes: []string{"/kubernetes.io/", "/openshift.io/", "/none/"}})
		if err != nil {
			t.Fatal(err)
		}
		if info.ClusterID != HexID(list.Header.ClusterId) {
			t.Errorf("cluster_id %s, want %x", info.ClusterID, list.Header.ClusterId)
		}
		if len(info.Members) != 3 {
			t.Fatalf("members: %+v", info.Members)
		}
		names := map[string]string{}
		for _, m := range list.Members {
			names[HexID(m.ID)] = m.Name
		}
		for _, m := range info.Members {
			if names[m.ID] != m.Name || !m.Started || m.IsLearner || len(m.ClientURLs) != 1 || len(m.PeerURLs) != 1 {
				t.Errorf("member %+v does not match the member list %v", m, names)
			}
		}
		if !info.AllHealthy || len(info.EndpointStatus) != 3 {
			t.Fatalf("endpoint status: %+v", info.EndpointStatus)
		}
		if !info.Quorum || !strings.Contains(info.QuorumReason, "leader "+info.LeaderName+" ("+info.Leader+")") {
			t.Errorf("quorum %v: %s", info.Quorum, info.QuorumReason)
		}
		leaders := 0
		for _, st := range info.EndpointStatus {
			if !st.Reachable || !st.Healthy || st.Error != "" || st.Version == "" || st.DBSize <= 0 ||
				st.RaftIndex == 0 || st.RaftAppliedIndex == 0 || st.RaftTerm == 0 || st.Leader != info.Leader {
				t.Errorf("status %+v (cluster leader %s)", st, info.Leader)
			}
			if names[st.MemberID] == "" {
				t.Errorf("status member id %s is not in the member list", st.MemberID)
			}
			if st.IsLeader {
				leaders++
			}
		}
		if leaders != 1 || info.LeaderName != names[info.Leader] {
			t.Errorf("%d endpoints claim leadership; leader %s (%s)", leaders, info.Leader, info.LeaderName)
		}
		if len(info.Alarms) != 0 {
			t.Errorf("alarms: %+v", info.Alarms)
		}
		want := map[string]int64{"/kubernetes.io/": 3, "/openshift.io/": 1, "/none/": 0}
		for p, n := range want {
			if info.V3.KeyCounts[p] != n {
				t.Errorf("key count %s = %d, want %d", p, info.V3.KeyCounts[p], n)
			}
		}
		if info.V3.Revision != last.Header.Revision || info.V3.TotalKeys != 5 {
			t.Errorf("v3 = %+v, want revision %d and 5 keys", info.V3, last.Header.Revision)
		}
		if v2 := info.V2; hasV2 && (!v2.HasData || strings.Join(v2.TopLevelDirs, ",") != "/kubernetes.io,/openshift.io" ||
			strings.Join(v2.TopLevelKeys, ",") != "/flag" || v2.Index == 0) {
			t.Errorf("v2 = %+v", v2)
		}
	})

	t.Run("added member not started", func(t *testing.T) {
		added := c.AddUnstarted(t, "https://127.0.0.1:1")
		defer func() {
			if _, err := cli.MemberRemove(ctx, added); err != nil {
				t.Fatal(err)
			}
		}()
		info, err := Gather(ctx, &o, Spec{})
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, m := range info.Members {
			if m.ID == HexID(added) {
				found = true
				if m.Started || m.Name != "" || len(m.ClientURLs) != 0 || m.ClientURLs == nil || m.PeerURLs[0] != "https://127.0.0.1:1" {
					t.Errorf("unstarted member %+v", m)
				}
			}
		}
		if !found || len(info.Members) != 4 || !info.AllHealthy {
			t.Errorf("members %+v healthy %v", info.Members, info.AllHealthy)
		}
	})

	t.Run("one member stopped", func(t *testing.T) {
		c.Stop(c.Members[2])
		waitLeader(t, c, c.Members[0], true)
		waitLeader(t, c, c.Members[1], true)
		o := o
		o.DialTimeout = time.Second
		info, err := Gather(ctx, &o, Spec{V3Prefixes: []string{"/kubernetes.io/"}})
		if err != nil {
			t.Fatal(err)
		}
		if info.AllHealthy || !info.Quorum || len(info.Members) != 3 || info.V3.KeyCounts["/kubernetes.io/"] != 3 {
			t.Fatalf("info: %+v", info)
		}
		for i, st := range info.EndpointStatus {
			if i == 2 {
				if st.Reachable || st.Healthy || !strings.Contains(st.Error, "nothing listens there") {
					t.Errorf("stopped member: %+v", st)
				}
				continue
			}
			if !st.Healthy || st.Leader == "" {
				t.Errorf("running member: %+v", st)
			}
		}
	})

	t.Run("quorum lost: members and statuses still reported", func(t *testing.T) {
		c.Stop(c.Members[1])
		o := o
		o.DialTimeout, o.CommandTimeout = time.Second, 2*time.Second
		waitLeaderless(t, c, c.Members[0])
		info, err := Gather(ctx, &o, Spec{})
		if err != nil {
			t.Fatal(err)
		}
		st := info.EndpointStatus[0]
		if info.Leader != "" || info.Quorum || !strings.Contains(info.QuorumReason, "no reachable member knows a leader") ||
			len(info.Members) != 3 || len(info.Warnings) != 1 || !st.Reachable || st.Healthy ||
			st.Leader != "" || st.Error == "" || info.EndpointStatus[1].Reachable || info.EndpointStatus[2].Reachable {
			t.Fatalf("info %+v", info)
		}
		info, err = Gather(ctx, &o, Spec{V3Prefixes: []string{"/kubernetes.io/"}})
		var merr *module.Error
		if !errors.As(err, &merr) || merr.Result != info || !strings.Contains(err.Error(), "need a quorum") ||
			len(info.Members) != 3 {
			t.Fatalf("key counts without quorum: err %v info %+v", err, info)
		}
	})

	t.Run("no endpoint answers", func(t *testing.T) {
		o := o
		o.DialTimeout = time.Second
		o.Endpoints = c.Endpoints(c.Members[2])
		info, err := Gather(ctx, &o, Spec{})
		var merr *module.Error
		if !errors.As(err, &merr) || merr.Result != info || !strings.Contains(err.Error(), "no etcd endpoint answered") ||
			!strings.Contains(err.Error(), c.Members[2].ClientURL) {
			t.Fatalf("err = %v", err)
		}
		if info.Quorum || info.AllHealthy || info.QuorumReason != "no endpoint answered" || len(info.EndpointStatus) != 1 {
			t.Errorf("info %+v", info)
		}
	})
}

// Quorum is a leader and a linearizable read: with two of three members stopped, the remaining leader
// still names itself until its election timeout (5 s here, so the read below happens well inside it),
// and quorum is false all the same.
func TestQuorumRightAfterPeersStop(t *testing.T) {
	c := etcdtest.NewCluster(t, 3, etcdtest.Options{Extra: map[string]string{"election-timeout": "5000"}})
	ctx := context.Background()
	o := c.ConnOptions()
	o.DialTimeout, o.CommandTimeout = time.Second, time.Second
	info, err := Gather(ctx, &o, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Quorum || info.Leader == "" {
		t.Fatalf("all up: quorum %v (%s)", info.Quorum, info.QuorumReason)
	}
	t.Logf("all up: %s", info.QuorumReason)
	var leader *etcdtest.Member
	for i, st := range info.EndpointStatus {
		if st.IsLeader {
			leader = c.Members[i]
		}
	}
	for _, m := range c.Members {
		if m != leader {
			c.Stop(m)
		}
	}
	info, err = Gather(ctx, &o, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two stopped: %s", info.QuorumReason)
	if info.Quorum || info.AllHealthy || !strings.Contains(info.QuorumReason, "no linearizable read answered") {
		t.Fatalf("two of three stopped: quorum %v (%s)", info.Quorum, info.QuorumReason)
	}
	if info.LeaderName != leader.Name {
		t.Errorf("leader %q, want %s still naming itself (the case a leader check alone gets wrong)", info.LeaderName, leader.Name)
	}
}

// A cluster without the v2 API: v2 facts say so instead of claiming the keyspace is empty.
func TestGatherV2Disabled(t *testing.T) {
	c := etcdtest.NewCluster(t, 1, etcdtest.Options{DisableV2: true})
	o := c.ConnOptions()
	info, err := Gather(context.Background(), &o, Spec{V2: true})
	if err != nil {
		t.Fatal(err)
	}
	if v2 := info.V2; v2.Enabled || v2.HasData || !strings.Contains(v2.Error, "--enable-v2") {
		t.Fatalf("v2 = %+v", v2)
	}
}

// waitLeaderless waits until a member that lost its quorum stops naming a leader (after an election
// timeout: it campaigns, or steps down with check-quorum).
func waitLeaderless(t *testing.T, c *etcdtest.Cluster, m *etcdtest.Member) {
	t.Helper()
	waitLeader(t, c, m, false)
}

// waitLeader waits until m answers naming a leader (want true) or none (want false): a member stopped
// while it led leaves the others without one until they have elected another.
func waitLeader(t *testing.T, c *etcdtest.Cluster, m *etcdtest.Member, want bool) {
	t.Helper()
	o := c.ConnOptions(m)
	p := NewProber(&o)
	defer p.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.Probe(context.Background(), m.ClientURL, false)
		if st.Reachable && (st.Leader != "") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: leader %q, want one: %t: %+v", m.Name, st.Leader, want, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A hidden root node (the v2 API never lists it) is found through the member's data dir while it exists,
// and is gone from the list once deleted (the data dir still names it); a keyspace holding only hidden
// nodes has data.
func TestGatherV2HiddenTopLevel(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	o := c.ConnOptions()
	ctx := context.Background()
	if info, err := Gather(ctx, &o, Spec{V2: true}); err != nil || !info.V2.Enabled {
		t.Skipf("no v2 API here (%v): nothing hidden to find", err) // etcd 3.6+
	}
	cli, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(cli)
	for k, v := range map[string]string{"/_only/hidden": "a", "/_gone": "b", "/kubernetes.io/_nested": "c"} {
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kapi.Delete(ctx, "/_gone", nil); err != nil {
		t.Fatal(err)
	}
	info, err := Gather(ctx, &o, Spec{V2: true, V2DataDir: c.Members[0].DataDir})
	if err != nil {
		t.Fatal(err)
	}
	if v2 := info.V2; strings.Join(v2.HiddenTopLevel, ",") != "/_only" || !v2.HasData || len(v2.TopLevelDirs) != 1 {
		t.Fatalf("v2 = %+v, want hidden top level [/_only] beside /kubernetes.io", v2)
	}
	if _, err := kapi.Delete(ctx, "/kubernetes.io", &clientv2.DeleteOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	info, err = Gather(ctx, &o, Spec{V2: true, V2DataDir: c.Members[0].DataDir})
	if err != nil {
		t.Fatal(err)
	}
	if v2 := info.V2; !v2.HasData || len(v2.TopLevelDirs)+len(v2.TopLevelKeys) != 0 {
		t.Fatalf("v2 = %+v, want data (the hidden /_only) and nothing the API lists", v2)
	}
	if _, err := Gather(ctx, &o, Spec{V2: true, V2DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "v2_data_dir") {
		t.Fatalf("a dir without member/: %v, want an error naming v2_data_dir", err)
	}
}
