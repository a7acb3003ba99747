package dataset

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/etcdops/etcd/internal/etcdtest"
	clientv2 "go.etcd.io/etcd/client/v2"
)

func TestGenerateIsDeterministicAndCoversEveryKind(t *testing.T) {
	a, err := Generate("v2", 300, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate("v2", 300, 42)
	if len(a.Entries) != len(b.Entries) {
		t.Fatalf("same seed, %d vs %d entries", len(a.Entries), len(b.Entries))
	}
	for i := range a.Entries {
		if a.Entries[i].Key != b.Entries[i].Key || a.Entries[i].SHA256 != b.Entries[i].SHA256 {
			t.Fatalf("same seed, entry %d differs: %s vs %s", i, a.Entries[i].Key, b.Entries[i].Key)
		}
	}
	if a.Count.Keys != 300 {
		t.Fatalf("keys = %d, want 300", a.Count.Keys)
	}
	kinds, prefixes := map[string]int{}, map[string]int{}
	var maxSize, minSize = 0, 1 << 30
	for _, e := range a.Keys() {
		kinds[e.Kind]++
		if e.TTL > 0 {
			prefixes[e.Prefix]++
		}
		maxSize, minSize = max(maxSize, e.Size), min(minSize, e.Size)
		if !strings.HasPrefix(e.Key, "/kubernetes.io/") && !strings.HasPrefix(e.Key, "/openshift.io/") {
			t.Errorf("key %s is outside the OpenShift prefixes", e.Key)
		}
		if e.Kind == KindBinary && (!bytes.HasPrefix(e.Value(), []byte("k8s\x00")) || !utf8.Valid(e.Value())) {
			t.Errorf("v2 binary value of %s must start with k8s\\x00 and stay 7-bit", e.Key)
		}
	}
	for _, k := range []string{KindJSON, KindUTF8, KindBinary, KindTiny} {
		if kinds[k] == 0 {
			t.Errorf("no %s values in %v", k, kinds)
		}
	}
	if len(prefixes) != len(TTLPrefixes) {
		t.Errorf("TTL keys under %v, want all five OpenShift TTL prefixes", prefixes)
	}
	if minSize > 4 || maxSize < 90<<10 || maxSize > 100<<10 {
		t.Errorf("value sizes %d..%d, want a few bytes to ~100 KiB", minSize, maxSize)
	}
	if a.Count.Hidden == 0 || a.Count.EmptyDirs == 0 || a.Count.Dirs <= a.Count.EmptyDirs {
		t.Errorf("counts %+v: want hidden keys, empty dirs and TTL dirs", a.Count)
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	if _, err := Generate("v4", 10, 1); err == nil || !strings.Contains(err.Error(), "api") {
		t.Errorf("api v4: %v", err)
	}
	if _, err := Generate("v2", 0, 1); err == nil || !strings.Contains(err.Error(), "keys") {
		t.Errorf("0 keys: %v", err)
	}
}

func TestV2WriteVerifyAndManifestRoundTrip(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	o := c.ConnOptions()
	c2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(c2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, _ := Generate("v2", 200, 7)
	if err := WriteV2(ctx, kapi, m); err != nil {
		t.Fatal(err)
	}
	if err := WriteV2(ctx, kapi, m); err != nil {
		t.Fatalf("seeding again over the same data: %v", err)
	}
	path := filepath.Join(t.TempDir(), "manifest.json")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyV2(ctx, kapi, loaded)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK(false) || rep.Checked != 200 {
		t.Fatalf("verify: %s", rep)
	}
	hidden := loaded.Keys()[5] // the hidden OAuth token comes sixth
	if !hidden.Hidden {
		t.Fatalf("entry %s is not the hidden one", hidden.Key)
	}
	if _, err := kapi.Set(ctx, hidden.Key, "changed", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kapi.Delete(ctx, loaded.Keys()[9].Key, nil); err != nil {
		t.Fatal(err)
	}
	rep, _ = VerifyV2(ctx, kapi, loaded)
	if len(rep.Mismatched) != 1 || rep.Mismatched[0] != hidden.Key || len(rep.Missing) != 1 {
		t.Fatalf("after one change and one delete: %s", rep)
	}
	if err := WriteV2(ctx, kapi, loaded); err == nil || !strings.Contains(err.Error(), "no values") {
		t.Fatalf("writing a loaded manifest: %v", err)
	}
}

func TestV3WriteAttachesLeasesAndVerifies(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, _ := Generate("v3", 400, 3)
	if err := WriteV3(ctx, cli, m); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyV3(ctx, cli, m, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK(true) || rep.Checked != 400 || rep.Leased != m.Count.TTLKeys || rep.Leasable != m.Count.TTLKeys {
		t.Fatalf("verify: %s (want %d leased)", rep, m.Count.TTLKeys)
	}
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != len(TTLPrefixes) {
		t.Fatalf("%d leases, want one per TTL prefix (%d)", len(leases.Leases), len(TTLPrefixes))
	}
	// A v3 binary value keeps bytes ≥ 0x80 exactly.
	for _, e := range m.Keys() {
		if e.Kind == KindBinary && !utf8.Valid(e.Value()) {
			resp, _ := cli.Get(ctx, e.Key)
			if !bytes.Equal(resp.Kvs[0].Value, e.Value()) {
				t.Fatalf("%s: binary value changed", e.Key)
			}
			return
		}
	}
	t.Fatal("no non-UTF-8 binary value in a v3 dataset")
}
