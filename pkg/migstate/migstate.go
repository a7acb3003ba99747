// Package migstate reads what decides whether a v2→v3 migration may start: is there v2 data, is the
// v3 keyspace under the migrated prefixes empty, and has the v3 store never been written (revision 1).
// A v3 store that was written and then emptied keeps tombstones at higher revisions; `etcdctl
// migrate` would then skip v2 keys whose v3 revision is newer, so re-migrating silently loses data
// (seed 000). Only facts are returned; the playbook's preflight turns them into decisions.
package migstate

import (
	"context"
	"fmt"
	"strings"

	"github.com/etcdops/etcd/pkg/etcdconn"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// InitialRevision is the v3 revision of a store that was never written.
const InitialRevision = 1

// State is the migration-relevant state of a cluster.
type State struct {
	// V2TopLevel lists the visible top-level v2 nodes (the v2 API hides names starting with "_").
	V2TopLevel []string `json:"v2_top_level"`
	V2HasData  bool     `json:"v2_has_data"`
	// V3Keys counts v3 keys per migrated prefix.
	V3Keys      map[string]int64 `json:"v3_keys"`
	V3KeysTotal int64            `json:"v3_keys_total"`
	V3Revision  int64            `json:"v3_revision"`
	// V3Pristine: no keys under the prefixes and the revision never moved.
	V3Pristine bool `json:"v3_pristine"`
}

// Read collects the state through the given endpoints.
func Read(ctx context.Context, o *etcdconn.Options, prefixes []string) (State, error) {
	s := State{V3Keys: map[string]int64{}}
	v3, err := o.V3()
	if err != nil {
		return s, err
	}
	defer v3.Close()
	cctx, cancel := o.Ctx(ctx)
	defer cancel()
	for _, p := range prefixes {
		r, err := v3.Get(cctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return s, o.Explain(strings.Join(o.Endpoints, ","), err)
		}
		s.V3Keys[p] = r.Count
		s.V3KeysTotal += r.Count
		s.V3Revision = r.Header.Revision
	}
	if len(prefixes) == 0 {
		r, err := v3.Get(cctx, "etcdops-migration-probe")
		if err != nil {
			return s, o.Explain(strings.Join(o.Endpoints, ","), err)
		}
		s.V3Revision = r.Header.Revision
	}
	s.V3Pristine = s.V3KeysTotal == 0 && s.V3Revision == InitialRevision

	v2, err := o.V2()
	if err != nil {
		return s, err
	}
	resp, err := clientv2.NewKeysAPI(v2).Get(cctx, "/", &clientv2.GetOptions{Quorum: true})
	if err != nil {
		if strings.Contains(err.Error(), "404") {
			return s, fmt.Errorf("the v2 API is off (404); OpenShift 3.x clusters run with ETCD_ENABLE_V2=true, "+
				"and a cluster without it has no v2 data to migrate: %w", err)
		}
		return s, o.Explain(strings.Join(o.Endpoints, ","), err)
	}
	for _, n := range resp.Node.Nodes {
		s.V2TopLevel = append(s.V2TopLevel, n.Key)
	}
	s.V2HasData = len(s.V2TopLevel) > 0
	return s, nil
}
