package etcdtest

import (
	"context"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// The harness itself: three TLS members form one cluster that serves both APIs.
func TestClusterServesV3AndV2(t *testing.T) {
	c := NewCluster(t, 3)
	cli := c.Client(t)
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/a", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.MemberList(ctx)
	if err != nil || len(resp.Members) != 3 {
		t.Fatalf("members: %v %v", resp, err)
	}
	o := c.ConnOptions(c.Members[1])
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(v2)
	if _, err := kapi.Set(ctx, "/v2/k", "v", nil); err != nil {
		t.Fatal(err)
	}
	got, err := kapi.Get(ctx, "/v2/k", nil)
	if err != nil || got.Node.Value != "v" {
		t.Fatalf("v2 get: %v %v", got, err)
	}
}
