// Package module implements Ansible's binary-module protocol: argv[1] names a JSON file holding the
// task arguments plus _ansible_* keys; the module prints exactly one JSON object and Ansible reads
// "failed" from it (the exit code does not decide).
package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Task is what a module's logic sees of the Ansible task besides its parameters.
type Task struct {
	CheckMode bool
	Diff      bool
	NoLog     bool
	Verbosity int

	changed  bool
	warnings []string
	diff     *Diff
}

// Diff is Ansible's before/after pair; values are rendered as YAML-ish text by Ansible.
type Diff struct {
	Before any `json:"before"`
	After  any `json:"after"`
}

// Changed marks the task as having changed (or, in check mode, as one that would change).
func (t *Task) Changed() { t.changed = true }

// IsChanged reports whether Changed was called.
func (t *Task) IsChanged() bool { return t.changed }

// Warn adds a warning that Ansible prints in yellow.
func (t *Task) Warn(format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf(format, args...))
}

// Warnings are the warnings added so far.
func (t *Task) Warnings() []string { return t.warnings }

// SetDiff records before/after state; it is only returned when the task runs with --diff.
func (t *Task) SetDiff(before, after any) { t.diff = &Diff{Before: before, After: after} }

// Error carries a partial result with a failure, so a module that fails half-way still reports
// what it already did (e.g. keys copied before the source changed).
type Error struct {
	Err    error
	Result any
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Func is a module's logic: it returns a struct (or map) whose JSON keys are merged into the output.
type Func func(ctx context.Context, t *Task) (any, error)

// Main runs a module: reads argv[1], decodes into params, calls fn, prints the result.
// It never returns an exit code other than 0 for a handled failure: Ansible reads "failed".
// Run with the single argument --argspec, it prints the parameters' argument spec as JSON instead
// (Ansible always passes an arguments file path, so this never collides with a task).
func Main(params any, fn Func) {
	if len(os.Args) == 2 && os.Args[1] == "--argspec" {
		out, err := printArgSpec(params)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(append(out, '\n'))
		return
	}
	var argsFile string
	if len(os.Args) > 1 {
		argsFile = os.Args[1]
	}
	out := Execute(context.Background(), argsFile, params, fn)
	os.Stdout.Write(out)
	os.Stdout.Write([]byte("\n"))
}

// Execute is Main without the process: it returns the JSON that Main prints. Tests call it directly.
func Execute(ctx context.Context, argsFile string, params any, fn Func) []byte {
	res := map[string]any{"changed": false}
	task := &Task{}
	err := run(ctx, argsFile, params, task, fn, res)
	if err != nil {
		res["failed"] = true
		res["msg"] = err.Error()
	}
	res["changed"] = task.changed
	if len(task.warnings) > 0 {
		res["warnings"] = task.warnings
	}
	if task.diff != nil && task.Diff {
		res["diff"] = task.diff
	}
	if task.NoLog {
		censored := map[string]any{"changed": res["changed"],
			"msg": "the output has been hidden due to the fact that 'no_log: true' was specified for this result"}
		if res["failed"] == true {
			censored["failed"] = true
		}
		res = censored
	}
	b, mErr := json.Marshal(res)
	if mErr != nil {
		b, _ = json.Marshal(map[string]any{"failed": true, "changed": task.changed,
			"msg": "module bug: result is not JSON-serialisable: " + mErr.Error()})
	}
	return b
}

func run(ctx context.Context, argsFile string, params any, task *Task, fn Func, res map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("module bug (panic): %v; nothing after this point was done", r)
		}
	}()
	raw, err := readArgs(argsFile)
	if err != nil {
		return err
	}
	readTaskFlags(raw, task)
	if err := Decode(raw, params); err != nil {
		return err
	}
	if v, ok := params.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	result, err := fn(ctx, task)
	var partial *Error
	if errors.As(err, &partial) && partial.Result != nil {
		result = partial.Result
	}
	if mErr := merge(res, result); mErr != nil && err == nil {
		err = mErr
	}
	if err != nil {
		return explainContext(err)
	}
	return nil
}

func readArgs(argsFile string) (map[string]any, error) {
	if argsFile == "" {
		return nil, errors.New("no arguments file: this program is an Ansible module; run it from a task " +
			"(or pass a JSON file of parameters as the first argument)")
	}
	f, err := os.Open(argsFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the arguments file: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read the arguments file: %v", err)
	}
	raw := map[string]any{}
	if strings.TrimSpace(string(data)) == "" {
		return raw, nil
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("the arguments file is not a JSON object: %v", err)
	}
	return raw, nil
}

func readTaskFlags(raw map[string]any, t *Task) {
	t.CheckMode, _ = toBool(raw["_ansible_check_mode"])
	t.Diff, _ = toBool(raw["_ansible_diff"])
	t.NoLog, _ = toBool(raw["_ansible_no_log"])
	if n, ok := toFloat(raw["_ansible_verbosity"]); ok {
		t.Verbosity = int(n)
	}
}

// merge adds the JSON keys of result into res; the protocol keys stay the module runner's.
func merge(res map[string]any, result any) error {
	if result == nil {
		return nil
	}
	b, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("module bug: result is not JSON-serialisable: %v", err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("module bug: result is not a JSON object: %v", err)
	}
	for k, v := range m {
		switch k {
		case "changed", "failed", "diff", "warnings":
			continue
		}
		res[k] = v
	}
	return nil
}

func explainContext(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timed out") {
		return fmt.Errorf("timed out: %v (raise command_timeout or the module's timeout if the cluster is slow)", err)
	}
	return err
}

// Exclusive fails when more than one of the named parameters is set.
func Exclusive(set map[string]bool) error {
	var given []string
	for name, ok := range set {
		if ok {
			given = append(given, name)
		}
	}
	if len(given) > 1 {
		sort.Strings(given)
		return &ParamError{Param: strings.Join(given, ", "), Msg: "are mutually exclusive; set only one of them"}
	}
	return nil
}
