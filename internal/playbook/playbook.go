// Package playbook runs ansible-playbook through go-ansible with the JSON stdout callback
// (ansible.posix.json) and returns the run as the callback reported it: per-host recap counters and
// every task's result on every host. It is the one runner behind internal/ansibletest (a one-task
// playbook on localhost), tests/e2e and the lab.
package playbook

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apenella/go-ansible/v2/pkg/execute"
	"github.com/apenella/go-ansible/v2/pkg/execute/stdoutcallback"
	"github.com/apenella/go-ansible/v2/pkg/playbook"
)

// Run is one ansible-playbook run.
type Run struct {
	Playbook  string            // path of the playbook
	Inventory string            // -i: an inventory path or a "host," list
	ExtraVars map[string]any    // -e
	Limit     string            // --limit
	Check     bool              // --check
	Env       map[string]string // environment added to this process's (ANSIBLE_COLLECTIONS_PATH, …)
	Dir       string            // working directory (default: this process's)
	Out       io.Writer         // a copy of the raw JSON report (optional)
	KillAt    Kill              // SIGKILL ansible-playbook as a task starts (optional)
	Progress  io.Writer         // a line per play, task start and failure as they happen (optional)
}

// Kill names the task at whose start ansible-playbook is killed with SIGKILL (callbacks/killat.py):
// nothing of that task runs, nor any rescue, always or handler, as when an operator's control node dies.
type Kill struct {
	Task string // as the report names it ("role : name" for a role's task)
	Nth  int    // its occurrence (0 or 1: the first)
}

// Result is a playbook run as the ansible.posix.json callback reported it. Task results are kept as
// raw JSON maps so modules' own keys (members, actions, …) decode with Decode.
type Result struct {
	Stats    map[string]Stats
	Tasks    []TaskResult // in run order; a task's hosts are adjacent
	Duration time.Duration
	Err      error // ansible-playbook's exit (nil: every host ok); the run itself still parsed
	Killed   bool  // killed at Run.KillAt: no report, Tasks and Stats are empty
	Raw      []byte
	Stderr   string // ansible-playbook's stderr: warnings, and the ERROR! of a run that failed outside a task
}

// Stats are one host's recap counters.
type Stats struct {
	OK          int `json:"ok"`
	Changed     int `json:"changed"`
	Failures    int `json:"failures"`
	Unreachable int `json:"unreachable"`
	Skipped     int `json:"skipped"`
	Rescued     int `json:"rescued"`
	Ignored     int `json:"ignored"`
}

// TaskResult is one task's result on one host.
type TaskResult struct {
	Play, Task, Host string
	Index            int // the task's position in the run (0-based), the same for each of its hosts
	Values           map[string]any
	Start, End       time.Time // the task's run on all its hosts (the callback's task duration)
}

// Changed and Failed read the standard flags.
func (r TaskResult) Changed() bool { b, _ := r.Values["changed"].(bool); return b }
func (r TaskResult) Failed() bool  { b, _ := r.Values["failed"].(bool); return b }

// Decode re-decodes the raw result into a typed struct (module-specific keys).
func (r TaskResult) Decode(dst any) error {
	b, err := json.Marshal(r.Values)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// Find returns the results of the task named name (one per host that ran it).
func (r *Result) Find(name string) []TaskResult {
	var out []TaskResult
	for _, t := range r.Tasks {
		if t.Task == name {
			out = append(out, t)
		}
	}
	return out
}

// Boundaries is every task boundary of the run in run order, as Run.KillAt names them: a task name
// seen again is its next occurrence (Nth+1), as the killat callback counts them.
func (r *Result) Boundaries() []Kill {
	var out []Kill
	seen, last := map[string]int{}, -1
	for _, t := range r.Tasks {
		if t.Index == last { // the same task on another host
			continue
		}
		last = t.Index
		seen[t.Task]++
		out = append(out, Kill{Task: t.Task, Nth: seen[t.Task]})
	}
	return out
}

// Failures summarises failed or unreachable hosts' task messages, for test failure output.
func (r *Result) Failures() string {
	var b strings.Builder
	for _, t := range r.Tasks {
		if t.Failed() || t.Values["unreachable"] == true {
			fmt.Fprintf(&b, "%s | %s: %v\n", t.Host, t.Task, t.Values["msg"])
		}
	}
	if b.Len() == 0 && r.Err != nil {
		fmt.Fprintf(&b, "no task failed in the report; stderr:\n%s", tail(r.Stderr, 3000))
	}
	return b.String()
}

// Execute runs the playbook. A run whose report parsed returns a nil error even when tasks failed
// (see Result.Err and the task results); the error is for a run that produced no report.
func Execute(ctx context.Context, run Run) (*Result, error) {
	abs, err := filepath.Abs(run.Playbook)
	if err != nil {
		return nil, err
	}
	cmd := playbook.NewAnsiblePlaybookCmd(
		playbook.WithPlaybooks(abs),
		playbook.WithPlaybookOptions(&playbook.AnsiblePlaybookOptions{
			Inventory: run.Inventory, ExtraVars: run.ExtraVars, Limit: run.Limit, Check: run.Check,
		}),
	)
	env, mark, cleanup, err := pluginEnv(run)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var stdout, stderr bytes.Buffer
	var errOut io.Writer = &stderr
	if run.Progress != nil {
		errOut = io.MultiWriter(&stderr, run.Progress)
	}
	opts := []execute.ExecuteOptions{
		execute.WithCmd(cmd),
		execute.WithErrorEnrich(playbook.NewAnsiblePlaybookErrorEnrich()),
		execute.WithWrite(&stdout),
		execute.WithWriteError(errOut),
		execute.WithEnvVars(env),
	}
	if run.Dir != "" {
		opts = append(opts, execute.WithCmdRunDir(run.Dir))
	}
	// The json stdout callback, which ansible-core routes to ansible.posix.json.
	runner := stdoutcallback.NewJSONStdoutCallbackExecute(execute.NewDefaultExecute(opts...))
	start := time.Now()
	runErr := runner.Execute(ctx)
	res := &Result{Duration: time.Since(start), Err: runErr, Raw: stdout.Bytes(), Stderr: stderr.String()}
	if run.Out != nil {
		_, _ = run.Out.Write(stdout.Bytes())
	}
	if mark != "" {
		if _, err := os.Stat(mark); err == nil {
			res.Killed = true
			return res, nil
		}
	}
	if err := res.parse(); err != nil {
		return res, fmt.Errorf("ansible-playbook %s produced no JSON report (%v); exit: %v\nstderr:\n%s\nstdout:\n%s",
			run.Playbook, err, runErr, tail(stderr.String(), 3000), tail(stdout.String(), 3000))
	}
	return res, nil
}

func (r *Result) parse() error {
	raw := r.Raw
	// Warnings printed before the report would break decoding: start at the report's first brace.
	if i := bytes.Index(raw, []byte("{\n")); i > 0 {
		raw = raw[i:]
	}
	var report struct {
		Plays []struct {
			Play struct {
				Name string `json:"name"`
			} `json:"play"`
			Tasks []struct {
				Task struct {
					Name     string `json:"name"`
					Duration struct {
						Start time.Time `json:"start"`
						End   time.Time `json:"end"`
					} `json:"duration"`
				} `json:"task"`
				Hosts map[string]map[string]any `json:"hosts"`
			} `json:"tasks"`
		} `json:"plays"`
		Stats map[string]Stats `json:"stats"`
	}
	if err := json.Unmarshal(raw, &report); err != nil {
		return err
	}
	r.Stats = report.Stats
	n := 0
	for _, p := range report.Plays {
		for _, t := range p.Tasks {
			for h, v := range t.Hosts {
				r.Tasks = append(r.Tasks, TaskResult{Play: p.Play.Name, Task: t.Task.Name, Host: h, Index: n, Values: v,
					Start: t.Task.Duration.Start, End: t.Task.Duration.End})
			}
			n++
		}
	}
	return nil
}

//go:embed callbacks/killat.py
var killatPlugin []byte

//go:embed callbacks/progress.py
var progressPlugin []byte

// pluginEnv returns run's environment with the lab-kit callbacks it asks for enabled (killat for
// run.KillAt, progress for run.Progress), the file killat writes before the kill ("" without KillAt),
// and a cleanup removing their directory.
func pluginEnv(run Run) (map[string]string, string, func(), error) {
	plugins := map[string][]byte{}
	if run.KillAt.Task != "" {
		plugins["killat"] = killatPlugin
	}
	if run.Progress != nil {
		plugins["progress"] = progressPlugin
	}
	if len(plugins) == 0 {
		return run.Env, "", func() {}, nil
	}
	dir, err := os.MkdirTemp("", "etcdops-callbacks-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	env := make(map[string]string, len(run.Env)+5)
	for key, v := range run.Env {
		env[key] = v
	}
	var names []string
	for name, src := range plugins {
		if err := os.WriteFile(filepath.Join(dir, name+".py"), src, 0o644); err != nil {
			cleanup()
			return nil, "", nil, err
		}
		names = append(names, name)
	}
	sort.Strings(names)
	env["ANSIBLE_CALLBACK_PLUGINS"] = dir
	env["ANSIBLE_CALLBACKS_ENABLED"] = strings.Join(names, ",")
	mark := ""
	if run.KillAt.Task != "" {
		mark = filepath.Join(dir, "killed")
		env["ETCDOPS_KILL_AT"] = run.KillAt.Task
		env["ETCDOPS_KILL_AT_NTH"] = strconv.Itoa(max(run.KillAt.Nth, 1))
		env["ETCDOPS_KILL_MARK"] = mark
	}
	return env, mark, cleanup, nil
}

// EnvMap turns KEY=VALUE pairs (an os.Environ-style list) into Run.Env.
func EnvMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
