// etcd_member adds, updates, promotes and removes etcd cluster members idempotently; see
// plugins/modules/etcd_member.yml for the parameters and docs/member.md for the behaviour.
package etcd_member

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/member"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	State    string        `arg:"state" default:"present" choices:"present,promoted,absent,leader"`
	Name     string        `arg:"name"`
	PeerURLs []string      `arg:"peer_urls"`
	ID       string        `arg:"id"`
	Learner  string        `arg:"learner" default:"true" choices:"true,false,auto"`
	Force    bool          `arg:"force" default:"false"`
	Timeout  time.Duration `arg:"timeout" default:"60s"`
}

func (p *params) spec() member.Spec {
	return member.Spec{State: p.State, Name: p.Name, PeerURLs: p.PeerURLs, ID: p.ID, Learner: p.Learner != "false",
		LearnerIfSupported: p.Learner == "auto", Force: p.Force, Timeout: p.Timeout}
}

// Validate checks the connection options and the member parameters before anything is contacted.
func (p *params) Validate() error {
	if err := p.Options.Validate(); err != nil {
		return err
	}
	s := p.spec()
	return s.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		return member.Ensure(ctx, t, &p.Options, p.spec())
	})
}
