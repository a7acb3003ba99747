package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
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
		at   string // a task name (a substring of it) and its occurrence
		nth  int
		host int // index into the lab's members
		// fault is what happens to the host; it returns once the host is reachable again.
		fault func(t *testing.T, l *lab.Lab, h *lab.Host)
	}{
		{"power cut of the first member during the gap copy", "Copy what `etcdctl migrate` leaves out", 1, 0, powerCut},
		{"reboot of a member as it starts to join", "Start etcd on the member", 1, 1, reboot},
		{"SSH dropped to the first member during the gap copy", "Copy what `etcdctl migrate` leaves out", 1, 0, dropSSH},
		{"SSH dropped to a member as it starts to join", "Start etcd on the member", 2, 2, dropSSH},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, check := migrateOfflineMatrix.fresh(t)
			h := l.Members()[c.host]
			faulted := make(chan struct{})
			at := &atTask{task: c.at, nth: c.nth, do: func() {
				defer close(faulted)
				c.fault(t, l, h)
			}}
			first := runPlaybook(t, l, migrateOfflineMatrix.playbook, lab.Run{ExtraVars: migrateOfflineMatrix.extra, Progress: at})
			if !at.fired() {
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

// atTask is a Run.Progress writer that runs do once, in the background, when the playbook starts the
// nth task whose name contains task.
type atTask struct {
	task string
	nth  int
	do   func()

	mu      sync.Mutex
	buf     []byte
	seen    int
	started bool
}

func (a *atTask) fired() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.started
}

func (a *atTask) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = append(a.buf, p...)
	for {
		i := bytes.IndexByte(a.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(a.buf[:i])
		a.buf = a.buf[i+1:]
		if !a.started && strings.Contains(line, " TASK  ") && strings.Contains(line, a.task) {
			if a.seen++; a.seen >= max(a.nth, 1) {
				a.started = true
				go a.do()
			}
		}
	}
}
