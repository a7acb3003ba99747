// etcd_run_state is the one reader and writer of a procedure's state file: it reads the decision a
// re-run makes (start, resume, done), records a phase atomically, and archives the file when done.
package etcd_run_state

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/runstate"
)

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p runstate.Params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		return runstate.Run(t, p, time.Now())
	})
}
