package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleKill names a module process to SIGKILL inside a host while a named task runs
// (Lab.PlaybookKillingModule): the module dies mid-work (the OOM killer, an operator's kill -9, a
// crash), Ansible reports the task failed, and what the playbook does with that is up to it.
type ModuleKill struct {
	Task string // the task, as the report names it ("role : name" for a role's task)
	Nth  int    // its occurrence (0 or 1: the first)
	Host *Host  // the host whose module process dies
	// Module is the module's name: its process on the host is the collection's executable started by
	// etcd_exec.py as `etcdops <module> /dev/stdin` (argv[0] etcdops, argv[1] the module).
	Module string
	// Ready, when set, is polled while the module process lives; the kill waits until it returns true
	// (the module has made progress: keys copied, a file grown).
	Ready func() bool
}

// PlaybookKillingModule runs the playbook as Playbook does and SIGKILLs k.Module on k.Host once task
// k.Task has started and k.Ready holds. The run goes on as Ansible decides (the task fails). A run in
// which the module was not killed (the task ended first, or never ran) returns an error with its result.
func (l *Lab) PlaybookKillingModule(ctx context.Context, run Run, k ModuleKill) (*Result, error) {
	w := &taskWatch{task: k.Task, nth: max(k.Nth, 1), next: run.Progress, started: make(chan int, 1)}
	run.Progress = w
	killed := make(chan error, 1)
	done := make(chan struct{})
	go func() { killed <- l.killModuleDuring(ctx, w, k, done) }()
	res, err := l.Playbook(ctx, run)
	close(done)
	kerr := <-killed
	if err != nil {
		return res, err
	}
	return res, kerr
}

// killModuleDuring waits for the task's start, then for the module process (and k.Ready), and kills it;
// it gives up when the task is over (another task started) or the run ended.
func (l *Lab) killModuleDuring(ctx context.Context, w *taskWatch, k ModuleKill, done <-chan struct{}) error {
	var gen int
	select {
	case gen = <-w.started:
	case <-done:
		return fmt.Errorf("task %q #%d never started: %s was not killed", k.Task, max(k.Nth, 1), k.Module)
	case <-ctx.Done():
		return ctx.Err()
	}
	pid := 0
	for {
		if pid == 0 {
			pid = ModuleProcess(k.Host, k.Module)
		}
		if pid > 0 && (k.Ready == nil || k.Ready()) {
			// Checked again right before the signal: the PID must still be that module (PIDs are reused).
			if isModule(pid, k.Module) && syscall.Kill(pid, syscall.SIGKILL) == nil {
				if l.logf != nil {
					l.logf("%s: killed %s (pid %d) during %q", k.Host.Name, k.Module, pid, k.Task)
				}
				return nil
			}
			pid = 0
		}
		if w.generation() != gen {
			return fmt.Errorf("task %q ended before %s on %s could be killed", k.Task, k.Module, k.Host.Name)
		}
		select {
		case <-done:
			return fmt.Errorf("the run ended before %s on %s could be killed", k.Module, k.Host.Name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ModuleProcess finds the PID (as the machine sees it) of the module's process inside the host (argv
// as isModule reads it), a descendant of the host's PID 1. 0: none.
func ModuleProcess(h *Host, module string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if !isModule(pid, module) {
			continue
		}
		for a := parentPID(pid); a > 1; a = parentPID(a) {
			if a == h.InitPID {
				return pid
			}
		}
	}
	return 0
}

// isModule reports whether pid runs the module: argv `etcdops <module> …` (run by etcd_exec) or
// `/proc/self/fd/N <module> /dev/stdin` (run from the cache by the action plugin's shell command).
func isModule(pid int, module string) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(b), "\x00")
	return len(args) > 2 && args[1] == module &&
		(args[0] == "etcdops" || strings.HasPrefix(args[0], "/proc/self/fd/") && args[2] == "/dev/stdin")
}

// taskWatch reads the progress callback's lines ("HH:MM:SS TASK  name"): it counts task starts and
// signals the Nth start of the watched task with the count at that moment.
type taskWatch struct {
	task    string
	nth     int
	next    io.Writer // the caller's own Run.Progress, if any
	started chan int
	onStart func() // called in its own goroutine at that start, if set

	mu    sync.Mutex
	buf   []byte
	tasks int // task starts seen
	seen  int // starts of the watched task
}

func (w *taskWatch) Write(p []byte) (int, error) {
	if w.next != nil {
		_, _ = w.next.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		_, rest, ok := strings.Cut(line, " TASK  ")
		if !ok {
			continue
		}
		w.tasks++
		if rest == w.task {
			if w.seen++; w.seen == w.nth {
				w.started <- w.tasks
				if w.onStart != nil {
					go w.onStart()
				}
			}
		}
	}
}

func (w *taskWatch) generation() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks
}

// TaskHook is a Run.Progress writer that runs a function once, in its own goroutine, as the playbook
// starts a named task: a fault outside Ansible at a known point (a host crashed, its SSH dropped).
type TaskHook struct{ w *taskWatch }

// AtTask returns the hook that runs do as the nth start (0 or 1: the first) of task (as the report names
// it) begins.
func AtTask(task string, nth int, do func()) *TaskHook {
	return &TaskHook{w: &taskWatch{task: task, nth: max(nth, 1), started: make(chan int, 1), onStart: do}}
}

func (h *TaskHook) Write(p []byte) (int, error) { return h.w.Write(p) }

// Fired reports whether the task started (and do was called).
func (h *TaskHook) Fired() bool { return len(h.w.started) > 0 }
