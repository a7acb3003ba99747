package playbook

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A run killed at a task's start: the tasks before it ran, it and every later one did not, not even
// an always section; the result says killed instead of failing for want of a report.
func TestKillAtTaskStart(t *testing.T) {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook not installed (make deps)")
	}
	dir := t.TempDir()
	book := filepath.Join(dir, "book.yml")
	if err := os.WriteFile(book, []byte(`
- hosts: localhost
  gather_facts: false
  tasks:
    - block:
        - name: first
          ansible.builtin.file:
            path: "{{ d }}/first"
            state: touch
        - name: second
          ansible.builtin.file:
            path: "{{ d }}/second"
            state: touch
        - name: second
          ansible.builtin.file:
            path: "{{ d }}/second-again"
            state: touch
      always:
        - name: always
          ansible.builtin.file:
            path: "{{ d }}/always"
            state: touch
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := EnvMap(append(os.Environ(), "ANSIBLE_STDOUT_CALLBACK=ansible.posix.json", "ANSIBLE_LOCALHOST_WARNING=0",
		"ANSIBLE_INVENTORY_UNPARSED_WARNING=0"))
	run := Run{Playbook: book, Inventory: "localhost,", Env: env,
		ExtraVars: map[string]any{"d": dir, "ansible_connection": "local"}}

	run.KillAt = Kill{Task: "second", Nth: 2}
	res, err := Execute(context.Background(), run)
	if err != nil || !res.Killed {
		t.Fatalf("killed run: %v, killed %v", err, res != nil && res.Killed)
	}
	for f, want := range map[string]bool{"first": true, "second": true, "second-again": false, "always": false} {
		if _, err := os.Stat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", f, err == nil, want)
		}
	}

	run.KillAt = Kill{}
	res, err = Execute(context.Background(), run)
	if err != nil || res.Killed || res.Err != nil || len(res.Find("always")) != 1 {
		t.Fatalf("plain run: %v, %+v", err, res)
	}
	// Its boundaries name a repeated task by its occurrence, as KillAt counts them.
	want := []Kill{{"first", 1}, {"second", 1}, {"second", 2}, {"always", 1}}
	if got := res.Boundaries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boundaries %v, want %v", got, want)
	}
}

// Progress gets a line per play and task as it starts and one per failure, while the JSON report stays
// whole on stdout; killat and progress can be enabled together.
func TestProgressLines(t *testing.T) {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook not installed (make deps)")
	}
	dir := t.TempDir()
	book := filepath.Join(dir, "book.yml")
	if err := os.WriteFile(book, []byte(`
- name: progress play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: first step
      ansible.builtin.debug:
        msg: hello
    - name: failing step
      ansible.builtin.fail:
        msg: as planned
    - name: never reached
      ansible.builtin.debug:
        msg: no
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := EnvMap(append(os.Environ(), "ANSIBLE_STDOUT_CALLBACK=ansible.posix.json", "ANSIBLE_LOCALHOST_WARNING=0",
		"ANSIBLE_INVENTORY_UNPARSED_WARNING=0"))
	var progress strings.Builder
	run := Run{Playbook: book, Inventory: "localhost,", Env: env, Progress: &progress, KillAt: Kill{Task: "never reached"},
		ExtraVars: map[string]any{"ansible_connection": "local"}}
	res, err := Execute(context.Background(), run)
	if err != nil || res.Killed || len(res.Find("failing step")) != 1 {
		t.Fatalf("run: %v, %+v", err, res)
	}
	out := progress.String()
	for _, want := range []string{"PLAY  progress play\n", "TASK  first step\n", "TASK  failing step\n", "FAIL  localhost: as planned\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "never reached") {
		t.Errorf("progress names a task after the failure:\n%s", out)
	}
}
