package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// soak skips a long test unless `make soak` runs it (ansibletest.Soak).
func soak(t *testing.T) {
	t.Helper()
	ansibletest.Soak(t)
}

// breakEtcdUnit makes etcd's unit on h unable to start (a drop-in with ExecStart=/bin/false) and returns the repair.
func breakEtcdUnit(t *testing.T, l *lab.Lab, h *lab.Host) (repair func()) {
	t.Helper()
	return breakUnit(t, l, h, "etcd")
}

// breakUnit makes unit on h unable to keep running (a drop-in with ExecStart=/bin/false) and returns the repair.
func breakUnit(t *testing.T, l *lab.Lab, h *lab.Host, unit string) (repair func()) {
	t.Helper()
	dropIn := "/etc/systemd/system/" + unit + ".service.d"
	if out, err := l.Exec(h, "sh", "-c", "mkdir -p "+dropIn+" && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > "+
		dropIn+"/broken.conf && systemctl daemon-reload"); err != nil {
		t.Fatalf("%s: %s %v", h.Name, out, err)
	}
	return func() {
		t.Helper()
		if out, err := l.Exec(h, "sh", "-c", "rm -r "+dropIn+" && systemctl daemon-reload"); err != nil {
			t.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}
}

// mustResume asserts the run succeeded and that the role's preflight reported resuming.
func mustResume(t *testing.T, res *lab.Result, role string) {
	t.Helper()
	mustSucceed(t, res)
	if msg := res.Find("etcdops.etcd." + role + " : Report the decision"); len(msg) == 0 ||
		!strings.Contains(msg[0].Values["msg"].(string), "Resuming") {
		t.Fatalf("the re-run did not resume: %v", msg)
	}
	t.Logf("resumed run took %s: %s", res.Duration.Round(time.Second), summary(t, res))
}

// checkRebuilt asserts every lab member is a healthy voter with client URLs (nothing else listed), its old
// member dir kept aside under oldDir (a shell glob, on the hosts given), and the consumers running.
func checkRebuilt(ctx context.Context, t *testing.T, l *lab.Lab, cli *clientv3.Client, oldDir string, aside []*lab.Host) {
	t.Helper()
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	members, err := cli.MemberList(ctx)
	if err != nil || len(members.Members) != len(l.Members()) {
		t.Fatalf("members: %v %v", members, err)
	}
	for _, m := range members.Members {
		if m.IsLearner || len(m.ClientURLs) == 0 {
			t.Errorf("member %s: learner %v, client URLs %v", m.Name, m.IsLearner, m.ClientURLs)
		}
	}
	for _, h := range aside {
		if out, err := l.Exec(h, "sh", "-c", "ls -d "+oldDir); err != nil {
			t.Errorf("%s: the old member dir was not kept aside: %s %v", h.Name, out, err)
		}
	}
	for _, h := range l.Members() {
		for _, unit := range lab.MasterServices {
			if !l.UnitActive(h, unit) {
				t.Errorf("%s: %s is not running after the run", h.Name, unit)
			}
		}
	}
}

// mustChangeNothing runs the playbook again: it succeeds, changes nothing and its summary says done.
func mustChangeNothing(t *testing.T, l *lab.Lab, name, done string) {
	t.Helper()
	again := playbook(t, l, name, nil)
	mustSucceed(t, again)
	if n, s := changedTasks(again), summary(t, again); n != 0 || !strings.Contains(s, done) {
		t.Errorf("third run: %d changed tasks, summary %q", n, s)
	}
}

// v3Keys reads every v3 key: the values by key, and the response (revision, cluster id).
func v3Keys(ctx context.Context, t *testing.T, cli *clientv3.Client) (map[string]string, *clientv3.GetResponse) {
	t.Helper()
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, e := range resp.Kvs {
		kv[string(e.Key)] = string(e.Value)
	}
	return kv, resp
}

// checkSameKeys fails unless got holds every key of want with its value, and nothing else.
func checkSameKeys(t *testing.T, want, got map[string]string) {
	t.Helper()
	missing := 0
	for k, v := range want {
		if got[k] != v {
			if missing++; missing <= 5 {
				t.Errorf("%s: missing or changed (%d bytes, want %d)", k, len(got[k]), len(v))
			}
		}
	}
	if missing > 0 || len(got) != len(want) {
		t.Fatalf("%d of %d keys missing or changed; %d keys after", missing, len(want), len(got))
	}
}
