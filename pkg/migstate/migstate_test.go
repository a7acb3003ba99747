package migstate

import (
	"context"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/etcdtest"
	clientv2 "go.etcd.io/etcd/client/v2"
)

var prefixes = []string{"/kubernetes.io", "/openshift.io"}

func read(t *testing.T, c *etcdtest.Cluster) State {
	t.Helper()
	o := c.ConnOptions()
	s, err := Read(context.Background(), &o, prefixes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStates(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if s := read(t, c); s.V2HasData || !s.V3Pristine || s.V3Revision != InitialRevision {
		t.Fatalf("fresh cluster: %+v", s)
	}

	o := c.ConnOptions()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientv2.NewKeysAPI(v2).Set(ctx, "/kubernetes.io/pods/a", "x", nil); err != nil {
		t.Fatal(err)
	}
	if s := read(t, c); !s.V2HasData || !s.V3Pristine || s.V2TopLevel[0] != "/kubernetes.io" {
		t.Fatalf("v2 data only: %+v", s)
	}

	cli := c.Client(t)
	if _, err := cli.Put(ctx, "/openshift.io/x", "y"); err != nil {
		t.Fatal(err)
	}
	if s := read(t, c); s.V3Pristine || s.V3Keys["/openshift.io"] != 1 || s.V3KeysTotal != 1 {
		t.Fatalf("v3 key present: %+v", s)
	}

	if _, err := cli.Delete(ctx, "/openshift.io/x"); err != nil {
		t.Fatal(err)
	}
	if s := read(t, c); s.V3Pristine || s.V3KeysTotal != 0 || s.V3Revision <= InitialRevision {
		t.Fatalf("v3 written and deleted (tombstones): %+v", s)
	}
}
