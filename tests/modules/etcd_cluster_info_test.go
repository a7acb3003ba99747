package modules

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/pki"
	"github.com/etcdops/etcd/pkg/clusterinfo"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// clusterInfoResult is the module's output as a playbook sees it.
type clusterInfoResult struct {
	clusterinfo.Info
	ansibletest.Flags
}

func runClusterInfo(t *testing.T, args map[string]any, o ansibletest.Opts) (clusterInfoResult, ansibletest.Result) {
	t.Helper()
	raw := ansibletest.Module(t, "etcd_cluster_info", args, o)
	var res clusterInfoResult
	raw.Decode(t, &res)
	return res, raw
}

// withArgs returns the cluster's connection args plus extra ones (later maps win).
func withArgs(base map[string]any, extra ...map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for _, e := range extra {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}

// foreignPKI writes another CA (dir/ca.crt) and a client pair it signed (dir/stranger.crt, .key): TLS
// files the test cluster does not trust.
func foreignPKI(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	ca, err := pki.NewCA("some-other-ca")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	stranger, err := ca.Issue("stranger", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if cert, key, err = stranger.Write(dir, "stranger"); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// The module through real Ansible against a 3-member TLS cluster with client-cert auth.
func TestClusterInfoModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := context.Background()
	cli := c.Client(t)
	for _, k := range []string{"/kubernetes.io/pods/a", "/kubernetes.io/pods/b", "/openshift.io/users/u"} {
		if _, err := cli.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	o := c.ConnOptions()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientv2.NewKeysAPI(v2).Set(ctx, "/kubernetes.io/minions/n1", "v", nil); err != nil {
		t.Fatal(err)
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args := withArgs(c.Args(), map[string]any{"v2": "yes", "v3_prefixes": "/kubernetes.io/,/openshift.io/"})

	assertFacts := func(t *testing.T, res clusterInfoResult) {
		t.Helper()
		if res.Failed || res.Changed {
			t.Fatalf("failed=%v changed=%v msg=%s", res.Failed, res.Changed, res.Msg)
		}
		if res.ClusterID != clusterinfo.HexID(list.Header.ClusterId) || len(res.Members) != 3 {
			t.Fatalf("cluster %s members %+v", res.ClusterID, res.Members)
		}
		ids := map[string]bool{}
		for _, m := range list.Members {
			ids[clusterinfo.HexID(m.ID)] = true
		}
		for _, m := range res.Members {
			if !ids[m.ID] || !m.Started || len(m.ClientURLs) != 1 {
				t.Errorf("member %+v", m)
			}
		}
		if !res.AllHealthy || len(res.EndpointStatus) != 3 || !ids[res.Leader] || res.LeaderName == "" {
			t.Fatalf("health %v leader %s (%s) statuses %+v", res.AllHealthy, res.Leader, res.LeaderName, res.EndpointStatus)
		}
		if !res.Quorum || !strings.HasPrefix(res.QuorumReason, "leader "+res.LeaderName+" ("+res.Leader+")") {
			t.Errorf("quorum %v: %s", res.Quorum, res.QuorumReason)
		}
		idByURL := map[string]string{}
		for _, m := range list.Members {
			idByURL[m.ClientURLs[0]] = clusterinfo.HexID(m.ID)
		}
		for _, st := range res.EndpointStatus {
			if idByURL[st.Endpoint] != st.MemberID || st.RaftIndex == 0 || st.Leader != res.Leader {
				t.Errorf("status %+v: not the member at that URL, or no index/leader", st)
			}
		}
		if res.V3.KeyCounts["/kubernetes.io/"] != 2 || res.V3.KeyCounts["/openshift.io/"] != 1 || res.V3.Revision < 4 {
			t.Errorf("v3 %+v", res.V3)
		}
		if !res.V2.Enabled || !res.V2.HasData || strings.Join(res.V2.TopLevelDirs, ",") != "/kubernetes.io" {
			t.Errorf("v2 %+v", res.V2)
		}
	}

	t.Run("check mode reads the same facts", func(t *testing.T) {
		res, _ := runClusterInfo(t, args, ansibletest.Opts{Check: true, Diff: true})
		assertFacts(t, res)
	})
	t.Run("facts", func(t *testing.T) {
		res, raw := runClusterInfo(t, args, ansibletest.Opts{})
		assertFacts(t, res)
		if _, ok := raw["diff"]; ok {
			t.Errorf("read-only module returned a diff: %v", raw["diff"])
		}
	})
	t.Run("etcdctl environment variables", func(t *testing.T) {
		res, _ := runClusterInfo(t, map[string]any{"v2": true, "v3_prefixes": []any{"/kubernetes.io/", "/openshift.io/"}},
			ansibletest.Opts{Env: map[string]string{
				"ETCDCTL_ENDPOINTS": strings.Join(c.Endpoints(), ","),
				"ETCDCTL_CACERT":    c.CACert, "ETCDCTL_CERT": c.Cert, "ETCDCTL_KEY": c.Key,
			}})
		assertFacts(t, res)
	})
	t.Run("cluster_facts playbook", func(t *testing.T) {
		// The first etcd host's etcd.conf, as openshift-ansible wrote it (quoted values included).
		conf := filepath.Join(t.TempDir(), "etcd.conf")
		body := fmt.Sprintf("ETCD_NAME=m0\nETCD_ADVERTISE_CLIENT_URLS=%s\nETCD_TRUSTED_CA_FILE=\"%s\"\n"+
			"ETCD_PEER_CERT_FILE=%s\nETCD_PEER_KEY_FILE=%s\n", c.Members[0].ClientURL, c.CACert, c.Cert, c.Key)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		inventory := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(inventory, []byte("[etcd]\nlocalhost ansible_connection=local\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tasks := ansibletest.Playbook(t, filepath.Join(ansibletest.Root(t), "playbooks", "cluster_facts.yml"),
			inventory, map[string]any{"etcd_conf_file": conf}, nil)
		var facts, summary ansibletest.Result
		for _, task := range tasks {
			r := task.Hosts["localhost"]
			if r.Failed() {
				t.Fatalf("task %q failed: %s", task.Name, r.Msg())
			}
			switch task.Name {
			case "Read status, health, alarms and key counts through every started member":
				facts = r
			case "Print the summary":
				summary = r
			}
		}
		var res clusterInfoResult
		facts.Decode(t, &res)
		assertFacts(t, res) // every member's endpoint, found through the member list
		lines, _ := summary["msg"].([]any)
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintln(&b, l)
		}
		text := b.String()
		t.Logf("summary:\n%s", text)
		wants := []string{"cluster " + res.ClusterID + ": 3 members, leader " + res.LeaderName, "all healthy: True",
			"alarms: none", "v2: has data: True, top-level dirs: /kubernetes.io",
			fmt.Sprintf("v3: revision %d, 3 keys, /kubernetes.io/ 2, /openshift.io/ 1", res.V3.Revision)}
		for _, m := range c.Members {
			wants = append(wants, "endpoint "+m.ClientURL+": healthy")
		}
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("summary lacks %q", w)
			}
		}
		if len(lines) != 1+3+3+3 {
			t.Errorf("summary has %d lines, want header, 3 members, 3 endpoints, alarms, v2, v3", len(lines))
		}
	})
	t.Run("a stopped member is reported, not fatal", func(t *testing.T) {
		c.Stop(c.Members[1])
		res, _ := runClusterInfo(t, withArgs(args, map[string]any{"dial_timeout": 1}), ansibletest.Opts{})
		if res.Failed || res.AllHealthy || len(res.Members) != 3 || res.V3.KeyCounts["/kubernetes.io/"] != 2 {
			t.Fatalf("failed=%v msg=%s info=%+v", res.Failed, res.Msg, res.Info)
		}
		st := res.EndpointStatus[1]
		if st.Reachable || st.Healthy || !strings.Contains(st.Error, "nothing listens there") {
			t.Errorf("stopped member status %+v", st)
		}
		if !res.EndpointStatus[0].Healthy || !res.EndpointStatus[2].Healthy || !res.Quorum {
			t.Errorf("running members %+v, quorum %v (%s)", res.EndpointStatus, res.Quorum, res.QuorumReason)
		}
	})
	t.Run("two stopped: no quorum, reported with its reason, not fatal", func(t *testing.T) {
		c.Stop(c.Members[2])
		res, raw := runClusterInfo(t, withArgs(c.Args(), map[string]any{"dial_timeout": 1, "command_timeout": 2}), ansibletest.Opts{})
		t.Logf("quorum_reason: %s; warnings: %v", res.QuorumReason, raw["warnings"])
		if res.Failed || res.Quorum || res.QuorumReason == "" || len(res.Members) != 3 || res.EndpointStatus[0].Healthy {
			t.Fatalf("failed=%v msg=%s quorum=%v (%s) info=%+v", res.Failed, res.Msg, res.Quorum, res.QuorumReason, res.Info)
		}
		// No endpoint at all: the task fails and still says quorum false.
		res, raw = runClusterInfo(t, withArgs(c.Args(), map[string]any{"dial_timeout": 1, "endpoints": c.Members[2].ClientURL}),
			ansibletest.Opts{})
		if !res.Failed || res.Quorum || res.QuorumReason != "no endpoint answered" || len(res.EndpointStatus) != 1 {
			t.Errorf("no endpoint answers: %v", raw)
		}
	})
}

// Bad input: the task fails with a message that names the parameter and the fix, and never
// echoes the password.
func TestClusterInfoBadInput(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	dir := t.TempDir()
	strangerCert, strangerKey := foreignPKI(t, dir)
	const password = "pw-Very-Secret-42"
	base := withArgs(c.Args(), map[string]any{"user": "root", "password": password, "dial_timeout": "1s", "command_timeout": "3s"})

	cases := []struct {
		name  string
		args  map[string]any
		wants []string
	}{
		{"unknown parameter", withArgs(base, map[string]any{"v3_prefix": "/a"}),
			[]string{"v3_prefix", "unsupported parameter", "valid parameters are", "v3_prefixes"}},
		{"wrong type", withArgs(base, map[string]any{"v2": "perhaps"}),
			[]string{"parameter v2", "expected a boolean"}},
		{"wrong duration", withArgs(base, map[string]any{"dial_timeout": "soon"}),
			[]string{"parameter dial_timeout", "duration such as 10s"}},
		{"missing cert file", withArgs(base, map[string]any{"client_cert": "/nonexistent/peer.crt"}),
			[]string{"parameter client_cert", "/nonexistent/peer.crt", "check the path"}},
		{"wrong CA", withArgs(base, map[string]any{"ca_cert": filepath.Join(dir, "ca.crt")}),
			[]string{"ca_cert does not sign the server's certificate", c.Members[0].ClientURL}},
		{"client cert from another CA", withArgs(base, map[string]any{"client_cert": strangerCert, "client_key": strangerKey}),
			[]string{"client_cert/client_key", "signed by the etcd client CA"}},
		{"unreachable endpoints", withArgs(base, map[string]any{"endpoints": "https://127.0.0.1:1,https://127.0.0.2:1"}),
			[]string{"no etcd endpoint answered", "https://127.0.0.1:1", "https://127.0.0.2:1", "nothing listens there"}},
		{"http endpoint with TLS parameters", withArgs(base, map[string]any{"endpoints": strings.Replace(c.Members[0].ClientURL, "https", "http", 1)}),
			[]string{"parameter endpoints", "uses http://", "use https://"}},
		{"credentials in the endpoint URL", withArgs(base, map[string]any{"endpoints": strings.Replace(c.Members[0].ClientURL, "//", "//root:"+password+"@", 1)}),
			[]string{"parameter endpoints", "carries credentials", "https://…@127.0.0.1:", "give them in user and password"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := runClusterInfo(t, tc.args, ansibletest.Opts{})
			if !res.Failed || res.Changed {
				t.Fatalf("failed=%v changed=%v, want a failed task: %v", res.Failed, res.Changed, raw)
			}
			t.Logf("msg: %s", res.Msg)
			for _, w := range tc.wants {
				if !strings.Contains(res.Msg, w) {
					t.Errorf("msg lacks %q: %s", w, res.Msg)
				}
			}
			if b, _ := json.Marshal(raw); strings.Contains(string(b), password) {
				t.Errorf("the password appears in the result: %s", b)
			}
		})
	}
}

// With etcd's auth on, a password that is also JSON text ("1", "true", "e") leaves a good result good,
// and a wrong password "failed" leaves the run failed: the module never echoes the password, so its
// result is never rewritten.
func TestClusterInfoPasswordAuth(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	c.EnableAuth(t, "1")
	cli := c.Client(t)
	ctx := context.Background()
	for _, pw := range []string{"true", "e"} {
		if _, err := cli.UserAdd(ctx, "u-"+pw, pw); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.UserGrantRole(ctx, "u-"+pw, "root"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "/kubernetes.io/pods/a", "v"); err != nil {
		t.Fatal(err)
	}
	for user, pw := range map[string]string{"root": "1", "u-true": "true", "u-e": "e"} {
		res, raw := runClusterInfo(t, withArgs(c.Args(), map[string]any{"user": user, "password": pw, "v2": false}), ansibletest.Opts{})
		if res.Failed || res.Changed || len(res.Members) != 1 || res.Members[0].Name != c.Members[0].Name {
			t.Errorf("user %s password %q: %v", user, pw, raw)
		}
	}
	res, raw := runClusterInfo(t, withArgs(c.Args(), map[string]any{"user": "root", "password": "failed"}), ansibletest.Opts{})
	if !res.Failed || !strings.Contains(res.Msg, "check user and password") {
		t.Errorf("wrong password \"failed\": want a failed task naming user and password: %v", raw)
	}
}
