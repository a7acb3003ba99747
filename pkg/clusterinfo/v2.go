package clusterinfo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/v2disk"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// V2Info describes the v2 keyspace as the v2 API shows it.
type V2Info struct {
	// Enabled is false when no endpoint serves the v2 API (etcd started without --enable-v2, or
	// 3.6+). HasData is then false only because nothing could be seen: check Enabled first.
	Enabled bool `json:"enabled"`
	HasData bool `json:"has_data"`
	// TopLevelDirs and TopLevelKeys are the root's children (e.g. /kubernetes.io, /openshift.io).
	// The v2 API never lists hidden nodes (names starting with "_").
	TopLevelDirs []string `json:"top_level_dirs"`
	TopLevelKeys []string `json:"top_level_keys"`
	// HiddenTopLevel are the hidden root nodes (e.g. /_something) found in a member's data dir
	// (Spec.V2DataDir) that exist now; nil when no data dir was given.
	HiddenTopLevel []string `json:"hidden_top_level,omitempty"`
	// Index is the v2 store's etcd index (X-Etcd-Index) when the root was read.
	Index uint64 `json:"index"`
	Error string `json:"error"`
}

func gatherV2(ctx context.Context, o *etcdconn.Options, dataDir string) (*V2Info, error) {
	cli, err := o.V2()
	if err != nil {
		return nil, err
	}
	rctx, cancel := o.Ctx(ctx)
	defer cancel()
	resp, err := clientv2.NewKeysAPI(cli).Get(rctx, "/", &clientv2.GetOptions{Quorum: true, Sort: true})
	out := &V2Info{TopLevelDirs: []string{}, TopLevelKeys: []string{}}
	if v2Disabled(err) {
		out.Error = fmt.Sprintf("the v2 API is not served by %s (etcd runs without --enable-v2=true, "+
			"or is 3.6+); v2 data cannot be seen through it", strings.Join(o.Endpoints, ","))
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Enabled = true
	out.Index = resp.Index
	for _, n := range resp.Node.Nodes {
		if n.Dir {
			out.TopLevelDirs = append(out.TopLevelDirs, n.Key)
		} else {
			out.TopLevelKeys = append(out.TopLevelKeys, n.Key)
		}
	}
	if dataDir != "" {
		if out.HiddenTopLevel, err = hiddenRoots(ctx, o, clientv2.NewKeysAPI(cli), dataDir); err != nil {
			return nil, err
		}
	}
	out.HasData = len(resp.Node.Nodes)+len(out.HiddenTopLevel) > 0
	return out, nil
}

// hiddenRoots lists the hidden root nodes the member's data dir names (the v2 API lists none) that
// exist now: the data dir also names deleted and expired ones.
func hiddenRoots(ctx context.Context, o *etcdconn.Options, kapi clientv2.KeysAPI, dataDir string) ([]string, error) {
	paths, err := v2disk.HiddenPaths("v2_data_dir", dataDir)
	if err != nil {
		return nil, err
	}
	roots := map[string]bool{}
	for _, p := range paths {
		if root := "/" + strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)[0]; strings.HasPrefix(root, "/_") {
			roots[root] = true
		}
	}
	found := []string{}
	for _, root := range slices.Sorted(maps.Keys(roots)) {
		rctx, cancel := o.Ctx(ctx)
		_, err := kapi.Get(rctx, root, &clientv2.GetOptions{Quorum: true})
		cancel()
		switch {
		case err == nil:
			found = append(found, root)
		case !clientv2.IsKeyNotFound(err):
			return nil, err
		}
	}
	return found, nil
}

// v2Disabled recognises an etcd that does not serve /v2/keys: it answers 404 with a plain-text
// body, which the v2 client reports as invalid JSON. The endpoint already answered v3 requests, so
// it is etcd, not some other server.
func v2Disabled(err error) bool {
	return errors.Is(err, clientv2.ErrInvalidJSON)
}
