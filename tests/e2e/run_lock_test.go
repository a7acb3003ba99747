package e2e

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// Issue 19, concurrency, a short lab sample (the lock's decisions are tested in pkg/runstate and
// tests/modules TestRunLockPlay): while another run of this controller holds the run lock on etcd1
// (its owner is this live test process), the migration is refused at once, naming the holder, and
// changes nothing on any host: the lock is untouched, no task ran on the etcd hosts, no state file.
// That every run that ends well releases the lock is checked after each e2e run (runPlaybook).
func TestSecondRunIsRefusedWhileTheLockIsHeld(t *testing.T) {
	l := shared
	lock := runLockPath(l)
	owner, err := ansibletest.RunLockOwner(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	held, _ := json.Marshal(map[string]any{"owner": owner, "started": time.Now().UTC().Format(time.RFC3339),
		"user": "alice", "controller": "bastion", "pid": os.Getpid(), "playbook": "migrate_v2_to_v3.yml"})
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, held, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(lock) })

	res := playbook(t, l, "migrate_v2_to_v3.yml", nil)
	if res.Err == nil {
		t.Fatal("the second run went ahead")
	}
	refusal := res.Find("etcdops.etcd.etcd_facts : Refuse to run beside another run")
	if len(refusal) != 1 {
		t.Fatalf("no refusal: %s", res.Failures())
	}
	msg, _ := refusal[0].Values["msg"].(string)
	for _, w := range []string{"Another run holds the run lock", "owner " + owner, "alice", "migrate_v2_to_v3.yml", "This run changed nothing"} {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal lacks %q: %s", w, msg)
		}
	}
	for _, h := range l.Members() {
		if s, ok := res.Stats[h.Name]; ok && (s.Changed > 0 || s.OK > 0) {
			t.Errorf("%s: tasks ran on it: %+v", h.Name, s)
		}
	}
	if b, _ := os.ReadFile(lock); string(b) != string(held) {
		t.Errorf("the lock changed: %s", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(lock), "migration-state.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a state file appeared: %v", err)
	}
}
