package lab

import (
	"context"

	"github.com/etcdops/etcd/internal/playbook"
)

// Run is one ansible-playbook run against the lab (Inventory: the lab's unless set).
type Run = playbook.Run

// Kill names the task at whose start ansible-playbook is killed (Run.KillAt).
type Kill = playbook.Kill

// Result is a playbook run as the ansible.posix.json callback reported it.
type Result = playbook.Result

// Stats are one host's recap counters.
type Stats = playbook.Stats

// TaskResult is one task's result on one host.
type TaskResult = playbook.TaskResult

// Playbook runs ansible-playbook with the lab's inventory through the shared runner
// (internal/playbook: go-ansible, the JSON stdout callback), over SSH to the hosts. A Run.Inventory
// set by the caller (e.g. the lab's hosts regrouped) is used as it is.
func (l *Lab) Playbook(ctx context.Context, run Run) (*Result, error) {
	if run.Inventory == "" {
		run.Inventory = l.Inventory
	}
	return playbook.Execute(ctx, run)
}

// EnvMap turns KEY=VALUE pairs (ansibletest.Install's environment) into Run.Env.
func EnvMap(env []string) map[string]string { return playbook.EnvMap(env) }
