package modules

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// Issue 19, concurrency: playbooks/run_lock.yml (imported by every playbook that acts) through real
// Ansible, with the lock host on localhost. A live run's lock refuses the run (naming the holder, the
// lock untouched); a lock whose ansible-playbook process is gone (same controller) is taken over; a
// lock of another controller is refused until etcd_lock_break=true or etcd_lock_timeout; release removes
// only this run's lock.
func TestRunLockPlay(t *testing.T) {
	root := ansibletest.Root(t)
	dir := t.TempDir()
	lock := filepath.Join(dir, "backup", "etcdops-run.lock")
	inv := filepath.Join(dir, "inventory.ini")
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(inv, "[etcd]\netcd-a ansible_connection=local\n\n[all:vars]\netcd_lock_file="+lock+"\n")
	wrapper := func(name string, states ...string) string {
		var b strings.Builder
		for _, s := range states {
			fmt.Fprintf(&b, "- import_playbook: %s\n  vars:\n    etcd_run_lock: %s\n", filepath.Join(root, "playbooks", "run_lock.yml"), s)
		}
		path := filepath.Join(dir, name)
		write(path, b.String())
		return path
	}
	take, takeRelease := wrapper("take.yml", "taken"), wrapper("take-release.yml", "taken", "released")
	run := func(pb string, extra map[string]any) (map[string]ansibletest.Result, string) {
		t.Helper()
		out := map[string]ansibletest.Result{}
		for _, tr := range ansibletest.Playbook(t, pb, inv, extra, nil) {
			out[strings.TrimPrefix(tr.Name, "etcdops.etcd.etcd_facts : ")] = tr.Hosts["localhost"] // the lock's tasks are etcd_facts' run_lock
		}
		b, _ := os.ReadFile(lock)
		return out, string(b)
	}
	holder := func(owner string, started time.Time) string {
		b, _ := json.Marshal(map[string]any{"owner": owner, "started": started.UTC().Format(time.RFC3339),
			"user": "alice", "controller": "bastion", "pid": 4242, "playbook": "migrate_v2_to_v3.yml"})
		write(lock, string(b))
		return string(b)
	}
	live, err := ansibletest.RunLockOwner(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	me := strings.Split(live, ":")[0]
	refused := func(t *testing.T, res map[string]ansibletest.Result, wants ...string) {
		t.Helper()
		r := res["Refuse to run beside another run"]
		if !r.Failed() {
			t.Fatalf("not refused: %v", res)
		}
		for _, w := range append(wants, "alice", "bastion", "migrate_v2_to_v3.yml", lock, "This run changed nothing", "etcd_lock_break=true") {
			if !strings.Contains(r.Msg(), w) {
				t.Errorf("refusal lacks %q: %s", w, r.Msg())
			}
		}
	}

	// A free lock: taken, then released.
	if res, after := run(takeRelease, nil); res["Take the run lock"].Failed() || res["Release the run lock"].Failed() || after != "" {
		t.Fatalf("free lock: %v, lock after: %q", res, after)
	}
	// A live run of this controller (this test process) holds it: refused, lock untouched.
	held := holder(live, time.Now())
	res, after := run(take, nil)
	refused(t, res, "owner "+live)
	if after != held {
		t.Fatalf("a refused run changed the lock: %s", after)
	}
	// That PID now names another process (another start time): the owner is gone, the lock is taken over.
	holder(fmt.Sprintf("%s:%d:1", me, os.Getpid()), time.Now())
	res, after = run(take, nil)
	if r := res["Take over the lock of a run of this controller that is gone"]; r.Failed() || r["why"] != "takeover" || r["acquired"] != true || strings.Contains(after, "alice") {
		t.Fatalf("takeover: %v, lock %s", res, after)
	}
	// Another controller's run: refused; with etcd_lock_break=true taken.
	other := holder("other-machine:4242:99", time.Now().Add(-time.Minute))
	res, after = run(take, nil)
	refused(t, res, "started ", "stale after 6h0m0s")
	if after != other {
		t.Fatalf("a refused run changed the lock: %s", after)
	}
	if res, after = run(take, map[string]any{"etcd_lock_break": true}); res["Take the run lock"].Failed() || strings.Contains(after, "other-machine") {
		t.Fatalf("break: %v, lock %s", res, after)
	}
	// Older than etcd_lock_timeout: taken (stale), then released at the end of the run.
	holder("other-machine:4242:99", time.Now().Add(-2*time.Hour))
	if res, after = run(takeRelease, map[string]any{"etcd_lock_timeout": "1h"}); res["Take the run lock"].Failed() || after != "" {
		t.Fatalf("stale lock: %v, lock after %q", res, after)
	}
	// No lock host given: the first of group etcd in sorted order, whatever order the inventory lists.
	for _, order := range []string{"etcd-b etcd-a", "etcd-a etcd-b"} {
		var b strings.Builder
		b.WriteString("[etcd]\n")
		for _, h := range strings.Fields(order) {
			fmt.Fprintf(&b, "%s ansible_connection=local etcd_backup_dir=%s\n", h, filepath.Join(dir, h))
		}
		write(inv, b.String())
		for _, r := range ansibletest.Playbook(t, take, inv, nil, nil) {
			if r.Hosts["localhost"].Failed() {
				t.Fatalf("inventory %q: %s failed: %s", order, r.Name, r.Hosts["localhost"].Msg())
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "etcd-a", "etcdops-run.lock")); err != nil {
			t.Errorf("inventory %q: the lock is not on etcd-a: %v", order, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "etcd-b", "etcdops-run.lock")); err == nil {
			t.Errorf("inventory %q: a lock on etcd-b", order)
		}
	}
}
