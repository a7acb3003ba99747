package clusterinfo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/etcdops/etcd/pkg/etcdconn"
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
	// Index is the v2 store's etcd index (X-Etcd-Index) when the root was read.
	Index uint64 `json:"index"`
	Error string `json:"error"`
}

func gatherV2(ctx context.Context, o *etcdconn.Options) (*V2Info, error) {
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
	out.HasData = len(resp.Node.Nodes) > 0
	return out, nil
}

// v2Disabled recognises an etcd that does not serve /v2/keys: it answers 404 with a plain-text
// body, which the v2 client reports as invalid JSON. The endpoint already answered v3 requests, so
// it is etcd, not some other server.
func v2Disabled(err error) bool {
	return errors.Is(err, clientv2.ErrInvalidJSON)
}
