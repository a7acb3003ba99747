package lab

import (
	"context"
	"path/filepath"

	"github.com/etcdops/etcd/internal/dataset"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// SeedV2 writes n OpenShift-shaped v2 keys (plus TTL and empty directories) into the lab's etcd and
// saves the manifest as <lab dir>/manifest-v2.json.
func (l *Lab) SeedV2(ctx context.Context, n int, seed int64) (*dataset.Manifest, error) {
	m, err := dataset.Generate("v2", n, seed)
	if err != nil {
		return nil, err
	}
	o := l.Conn()
	c2, err := o.V2()
	if err != nil {
		return nil, err
	}
	if err := dataset.WriteV2(ctx, clientv2.NewKeysAPI(c2), m); err != nil {
		return nil, err
	}
	return m, m.Save(filepath.Join(l.Dir, "manifest-v2.json"))
}

// SeedV3 writes n v3 keys (TTL keys with leases) and saves <lab dir>/manifest-v3.json.
func (l *Lab) SeedV3(ctx context.Context, n int, seed int64) (*dataset.Manifest, error) {
	m, err := dataset.Generate("v3", n, seed)
	if err != nil {
		return nil, err
	}
	o := l.Conn()
	cli, err := o.V3()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	if err := dataset.WriteV3(ctx, cli, m); err != nil {
		return nil, err
	}
	return m, m.Save(filepath.Join(l.Dir, "manifest-v3.json"))
}
