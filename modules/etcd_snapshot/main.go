// etcd_snapshot saves a v3 snapshot of one member (state: saved), reports a snapshot file's facts
// (state: status), or restores a member's data dir from one (state: restored), on etcdutl.
package etcd_snapshot

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/snapshot"
)

type params struct {
	etcdconn.Options
	State               string        `arg:"state" required:"true" choices:"saved,status,restored"`
	Path                string        `arg:"path" type:"path" required:"true"`
	Keep                int           `arg:"keep" default:"0"`
	KeepPrefix          string        `arg:"keep_prefix"`
	Timeout             time.Duration `arg:"timeout" default:"10m"`
	DataDir             string        `arg:"data_dir" type:"path" default:"/var/lib/etcd"`
	Name                string        `arg:"name"`
	InitialCluster      string        `arg:"initial_cluster"`
	InitialClusterToken string        `arg:"initial_cluster_token"`
	PeerURLs            []string      `arg:"peer_urls"`
	BumpRevision        int64         `arg:"bump_revision" default:"1000000000"`
	MarkCompacted       bool          `arg:"mark_compacted" default:"true"`
	MoveAside           bool          `arg:"move_aside" default:"false"`
	SkipHashCheck       bool          `arg:"skip_hash_check" default:"false"`
}

func (p *params) Validate() error {
	switch p.State {
	case "saved":
		if p.Keep < 0 {
			return &module.ParamError{Param: "keep", Msg: "must be 0 (keep every snapshot) or more"}
		}
		if p.KeepPrefix == "" {
			p.KeepPrefix = snapshot.DefaultKeepPrefix(p.Path)
		}
		if p.Keep > 0 && p.KeepPrefix == "" {
			return &module.ParamError{Param: "keep_prefix", Msg: "path's file name has no '-' to take the retention prefix from " +
				"(etcd-20260101T000000Z.db → etcd-); set keep_prefix"}
		}
		return p.Options.Validate()
	case "restored":
		for _, req := range [][2]string{{"name", p.Name}, {"initial_cluster", p.InitialCluster}, {"initial_cluster_token", p.InitialClusterToken}} {
			if req[1] == "" {
				return &module.ParamError{Param: req[0], Msg: "is required with state=restored"}
			}
		}
		if p.BumpRevision < 0 {
			return &module.ParamError{Param: "bump_revision", Msg: "must be 0 (no bump) or more, e.g. 1000000000"}
		}
		if (p.BumpRevision > 0) != p.MarkCompacted {
			return &module.ParamError{Param: "mark_compacted", Msg: "goes with bump_revision: etcdutl marks the bumped revision " +
				"compacted (so watchers re-list) only with both; set mark_compacted: true with bump_revision > 0, or false with bump_revision: 0"}
		}
	}
	return nil
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		switch p.State {
		case "saved":
			return snapshot.Save(ctx, t, snapshot.SaveSpec{Conn: p.Options, Path: p.Path, Keep: p.Keep,
				KeepPrefix: p.KeepPrefix, Timeout: p.Timeout})
		case "restored":
			return snapshot.Restore(t, snapshot.RestoreSpec{Path: p.Path, DataDir: p.DataDir, Name: p.Name,
				InitialCluster: p.InitialCluster, Token: p.InitialClusterToken, PeerURLs: p.PeerURLs,
				BumpRevision: uint64(p.BumpRevision), MarkCompacted: p.MarkCompacted, MoveAside: p.MoveAside,
				SkipHash: p.SkipHashCheck, Now: time.Now()})
		}
		return snapshot.Status(p.Path, p.SkipHashCheck)
	})
}
