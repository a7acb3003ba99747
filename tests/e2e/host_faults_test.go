package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// Faults outside Ansible during the offline migration (issue 19): a member host power-cut or rebooted,
// or the control node's SSH connections to a host dropped, as a task starts. The run may fail or not;
// a re-run with the same command (after the host is back) must finish the job, checked by data as in
// the fault matrix.
func TestSoakMigrateOfflineHostFaults(t *testing.T) {
	soak(t)
	for _, c := range []struct {
		name string
		at   string // a task, as the report names it, and its occurrence
		nth  int
		host int // index into the lab's members
		// fault is what happens to the host; it returns once the host is reachable again.
		fault func(t *testing.T, l *lab.Lab, h *lab.Host)
	}{
		{"power cut of the first member during the verification", verifyFirst, 1, 0, powerCut},
		{"reboot of a member as etcd starts on the migrated data", startAll, 1, 1, reboot},
		{"SSH dropped to the first member during the verification", verifyFirst, 1, 0, dropSSH},
		{"SSH dropped to a member as it migrates its own store", transformTask, 1, 2, dropSSH},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, check := migrateOfflineMatrix.fresh(t)
			h := l.Members()[c.host]
			faulted := make(chan struct{})
			at := lab.AtTask(c.at, c.nth, func() {
				defer close(faulted)
				c.fault(t, l, h)
			})
			first := runPlaybook(t, l, migrateOfflineMatrix.playbook, lab.Run{ExtraVars: migrateOfflineMatrix.extra, Progress: at})
			if !at.Fired() {
				t.Fatalf("the run never reached %q #%d: %v", c.at, c.nth, first.Err)
			}
			select {
			case <-faulted:
			case <-time.After(10 * time.Minute):
				t.Fatalf("the fault never ended (run: %v)", first.Err)
			}
			t.Logf("first run (%s, fault at %q #%d): %v", first.Duration.Round(time.Second), c.at, c.nth, first.Err)
			res := runPlaybook(t, l, migrateOfflineMatrix.playbook, lab.Run{ExtraVars: migrateOfflineMatrix.extra})
			mustSucceed(t, res)
			check(t, l)
			t.Logf("re-run finished the job in %s: %s", res.Duration.Round(time.Second), summary(t, res))
		})
	}
}

const (
	verifyFirst = "etcdops.etcd.etcd_v2v3_migrate : Verify every v2 key is in v3 with an identical value"
	startAll    = "etcdops.etcd.etcd_v2v3_migrate : Start etcd on every member (together, so they find a quorum)"
)

// powerCut crashes the host (every process at once, disk kept) and boots it again.
func powerCut(t *testing.T, l *lab.Lab, h *lab.Host) {
	if err := l.Kill(h); err != nil {
		t.Error(err)
	}
	if err := l.Start(h); err != nil {
		t.Error(err)
	}
}

// reboot shuts the host down in order and boots it again.
func reboot(t *testing.T, l *lab.Lab, h *lab.Host) {
	if err := l.Restart(h); err != nil {
		t.Error(err)
	}
}

// dropSSH kills the control node's SSH clients to the host (the running task's connection among them),
// as a network drop between the control node and the host would end them.
func dropSSH(t *testing.T, _ *lab.Lab, h *lab.Host) {
	time.Sleep(time.Second) // the task's connection is open by now
	out, err := exec.Command("pkill", "-KILL", "-f", `^ssh .*\b`+strings.ReplaceAll(h.Addr, ".", `\.`)+`\b`).CombinedOutput()
	if err != nil {
		t.Logf("pkill ssh to %s: %v %s (no connection open)", h.Addr, err, out)
	}
}
