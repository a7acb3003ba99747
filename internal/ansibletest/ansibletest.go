// Package ansibletest runs collection modules through real ansible-playbook on localhost, the way a
// user's task runs them, and returns the task result as JSON.
package ansibletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/etcdops/etcd/internal/playbook"
)

// Result is one task's result as Ansible reports it.
type Result map[string]any

// Failed reports the task's failed flag.
func (r Result) Failed() bool { b, _ := r["failed"].(bool); return b }

// Changed reports the task's changed flag.
func (r Result) Changed() bool { b, _ := r["changed"].(bool); return b }

// Msg is the task's msg.
func (r Result) Msg() string { s, _ := r["msg"].(string); return s }

// Decode re-decodes the result into a typed struct.
func (r Result) Decode(t testing.TB, dst any) {
	t.Helper()
	b, _ := json.Marshal(r)
	if err := json.Unmarshal(b, dst); err != nil {
		t.Fatalf("decode result: %v\n%s", err, b)
	}
}

// Opts select Ansible's task modes.
type Opts struct {
	Check bool
	Diff  bool
	NoLog bool
	Env   map[string]string // environment for the ansible process (and so the module)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// Root is the repository root (the directory holding galaxy.yml).
func Root(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "galaxy.yml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("galaxy.yml not found above the test directory")
		}
		dir = parent
	}
}

// Install builds the modules and links the checkout as etcdops.etcd once per test binary, and
// returns the environment that makes Ansible find it.
func Install(t testing.TB) []string {
	t.Helper()
	root := Root(t)
	buildOnce.Do(func() {
		out, err := exec.Command("make", "-C", root, "-s", "install").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make install: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatal("ansible-playbook not found: run `make deps` (installs ansible-core)")
	}
	return append(os.Environ(),
		"ANSIBLE_COLLECTIONS_PATH="+filepath.Join(root, "build", "collections"),
		"ANSIBLE_STDOUT_CALLBACK=ansible.posix.json",
		"ANSIBLE_LOAD_CALLBACK_PLUGINS=1",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_LOCALHOST_WARNING=0",
		"ANSIBLE_INVENTORY_UNPARSED_WARNING=0",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
	)
}

// Module runs `module` (short name, e.g. "etcd_cluster_info") with args on localhost and returns its
// result (through Playbook, so through internal/playbook). It fails the test only when Ansible itself could not run the task.
func Module(t testing.TB, module string, args map[string]any, o Opts) Result {
	t.Helper()
	env := Install(t)
	for k, v := range o.Env {
		env = append(env, k+"="+v)
	}
	task := map[string]any{
		"name":                   "module under test",
		"etcdops.etcd." + module: args,
		"ignore_errors":          true,
		"check_mode":             o.Check,
		"diff":                   o.Diff,
		"no_log":                 o.NoLog,
	}
	play := []map[string]any{{"hosts": "localhost", "gather_facts": false, "connection": "local",
		"tasks": []any{task}}}
	dir := t.TempDir()
	path := filepath.Join(dir, "play.yml")
	b, _ := json.Marshal(play) // JSON is YAML
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tasks := Playbook(t, path, "localhost,", nil, env)
	if len(tasks) == 0 {
		t.Fatal("ansible-playbook reported no task")
	}
	return tasks[0].Hosts["localhost"]
}

// Call is one module task of a Modules run.
type Call struct {
	Name   string            // the task's name (unique within the run)
	Module string            // short name, e.g. "etcd_member"
	Args   map[string]any    // the module's arguments
	Env    map[string]string // the task's environment (Ansible's environment keyword)
}

// Modules runs calls as the tasks of one play on localhost (one ansible-playbook run, so a long table
// of cases costs one Ansible start-up) and returns each task's result by name. Failed tasks do not
// stop the play.
func Modules(t testing.TB, calls []Call) map[string]Result {
	t.Helper()
	var tasks []any
	for _, c := range calls {
		task := map[string]any{"name": c.Name, "etcdops.etcd." + c.Module: c.Args, "ignore_errors": true}
		if len(c.Env) > 0 {
			task["environment"] = c.Env
		}
		tasks = append(tasks, task)
	}
	play := []map[string]any{{"hosts": "localhost", "gather_facts": false, "connection": "local", "tasks": tasks}}
	path := filepath.Join(t.TempDir(), "play.yml")
	b, _ := json.Marshal(play) // JSON is YAML
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]Result{}
	for _, r := range Playbook(t, path, "localhost,", nil, nil) {
		out[r.Name] = r.Hosts["localhost"]
	}
	return out
}

// RunLockOwner is the owner id playbooks/run_lock.yml gives a process of this machine: its machine id
// (else its host name), the PID and the process's start time (/proc/PID/stat field 22).
func RunLockOwner(pid int) (string, error) {
	machine, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		if machine, err = exec.Command("hostname").Output(); err != nil {
			return "", err
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:]) // the command name may hold spaces
	return fmt.Sprintf("%s:%d:%s", strings.TrimSpace(string(machine)), pid, fields[19]), nil
}

// TaskResult is one task of a playbook run: its name and each host's result.
type TaskResult struct {
	Name  string
	Hosts map[string]Result
}

// Playbook runs a playbook file with an inventory (a path or a "host," list) and extra vars, in
// the environment Install returns (env nil: Install's), and returns every task's results in order.
// It fails the test only when Ansible produced no report at all; failed tasks are in the results.
// It runs through internal/playbook, the runner the lab and tests/e2e use.
func Playbook(t testing.TB, path, inventory string, extraVars map[string]any, env []string) []TaskResult {
	t.Helper()
	if env == nil {
		env = Install(t)
	}
	res, err := playbook.Execute(context.Background(), playbook.Run{
		Playbook: path, Inventory: inventory, ExtraVars: extraVars,
		Env: playbook.EnvMap(env), Dir: filepath.Dir(path),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) == 0 && len(res.Stats) == 0 {
		t.Fatalf("ansible-playbook produced no report: %v\nstdout:\n%s", res.Err, res.Raw)
	}
	var tasks []TaskResult
	for i, r := range res.Tasks {
		if i == 0 || r.Index != res.Tasks[i-1].Index { // a task's hosts are adjacent
			tasks = append(tasks, TaskResult{Name: r.Task, Hosts: map[string]Result{}})
		}
		tasks[len(tasks)-1].Hosts[r.Host] = Result(r.Values)
	}
	return tasks
}

// Flags are Ansible's own keys of a task result; embed them beside a module's result type.
type Flags struct {
	Changed  bool     `json:"changed"`
	Failed   bool     `json:"failed"`
	Msg      string   `json:"msg"`
	Warnings []string `json:"warnings"`
}

// ModuleAs runs the module like Module and decodes its result into T (typically a struct embedding
// the module's result type and Flags).
func ModuleAs[T any](t testing.TB, module string, args map[string]any, o Opts) T {
	t.Helper()
	var res T
	Module(t, module, args, o).Decode(t, &res)
	return res
}

// Soak skips a long test (a version variant, a long interruption scenario, a fault matrix) unless
// `make soak` runs it (ETCDOPS_SOAK=1): make test stays within its time budget.
func Soak(t testing.TB) {
	t.Helper()
	if os.Getenv("ETCDOPS_SOAK") == "" {
		t.Skip("a soak test: make soak runs it")
	}
}
