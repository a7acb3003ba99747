package v2migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
)

// awkwardValues are values whose JSON needs escapes or replacements: quotes and backslashes (every
// OpenShift value is JSON), control characters, HTML characters, U+2028, a rune outside the BMP,
// invalid UTF-8 (a snapshot holds U+FFFD for it) and text that looks like an escape.
var awkwardValues = []string{"", `{"kind":"Secret","data":{"k":"dmFsdWUK"}}`, "\x00\x01\t\n\r\x1f", "<a href=\"&\">",
	"\u2028\u2029", "\U0001F600 é", "\xff\xfe bad", `\u00e9 \ud800 \\`, "plain"}

// saved is a store of every awkward value, under a directory with a TTL and with TTLs of its own, and
// its history (deletes, updates), saved as etcd saves it into a snapshot.
func saved(t testing.TB, extra ...string) []byte {
	t.Helper()
	st := v2store.New("/0", "/1")
	later := v2store.TTLOptionSet{ExpireTime: time.Now().Add(time.Hour).Round(0)}
	if _, err := st.Create("/1/ttl-dir", true, "", false, later); err != nil {
		t.Fatal(err)
	}
	for i, v := range append(append([]string{}, awkwardValues...), extra...) {
		ttl := v2store.TTLOptionSet{ExpireTime: v2store.Permanent}
		if i%2 == 0 {
			ttl = v2store.TTLOptionSet{ExpireTime: time.Now().Add(time.Duration(i+1) * time.Minute).Round(0)}
		}
		// Hidden keys (under "_") are left out of a listing, so the comparison after expiry sees the others.
		for _, dir := range []string{"/1/a/b", "/1/ttl-dir", "/1/_hidden", "/0/members/x"} {
			if _, err := st.Set(fmt.Sprintf("%s/k%d-%q", dir, i, v), false, v, ttl); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Delete(fmt.Sprintf("/1/a/b/k0-%q", awkwardValues[0]), false, false); err != nil {
		t.Fatal(err)
	}
	return mustSave(t, st)
}

// same fails unless recoverStore rebuilds from data the store etcd's Recovery does: what it saves again
// (every node, index, expiry, the event history and the stats) and the TTL keys it would expire.
func same(t testing.TB, data []byte) {
	t.Helper()
	want, got := v2store.New(), v2store.New()
	errWant, errGot := want.Recovery(data), recoverStore(got, data)
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("etcd's Recovery: %v; recoverStore: %v", errWant, errGot)
	}
	if errWant != nil {
		return
	}
	if w, g := mustSave(t, want), mustSave(t, got); !bytes.Equal(w, g) {
		t.Fatalf("recovered stores differ:\netcd: %s\nours: %s", w, g)
	}
	if want.HasTTLKeys() != got.HasTTLKeys() {
		t.Fatalf("TTL keys: etcd %v, ours %v", want.HasTTLKeys(), got.HasTTLKeys())
	}
	// Past every expiry both stores drop the same keys: the TTL heap was rebuilt. (Their event
	// histories may order keys of one expiry time differently, as two of etcd's own recoveries may.)
	for _, st := range []v2store.Store{want, got} {
		st.DeleteExpiredKeys(time.Now().Add(48 * time.Hour))
	}
	if w, g := tree(t, want), tree(t, got); w != g {
		t.Fatalf("after expiry the stores differ:\netcd: %s\nours: %s", w, g)
	}
}

// tree is every node left in st, sorted, as JSON.
func tree(t testing.TB, st v2store.Store) string {
	ev, err := st.Get("/", true, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev.Node)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRecoverStoreMatchesEtcd(t *testing.T) {
	same(t, saved(t))
	same(t, []byte(`{"Root":`)) // a torn document fails both
}

// FuzzRecoverStore holds recoverStore to etcd's Recovery for any value a snapshot can hold.
func FuzzRecoverStore(f *testing.F) {
	for _, v := range awkwardValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) { same(t, saved(t, v)) })
}

// BenchmarkRecoverStore decodes a snapshot's store of 20k OpenShift-shaped keys (JSON values of about
// 4 KB, every fiftieth with a TTL) with etcd's Recovery and with recoverStore, in one run: compare the
// two (docs/migration.md).
func BenchmarkRecoverStore(b *testing.B) {
	st := v2store.New("/0", "/1")
	value := strings.Repeat(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"n"},"data":{"k":"dmFsdWUK"}},`, 40)
	for i := 0; i < 20000; i++ {
		ttl := v2store.TTLOptionSet{ExpireTime: v2store.Permanent}
		if i%50 == 0 {
			ttl.ExpireTime = time.Now().Add(time.Hour)
		}
		if _, err := st.Set(fmt.Sprintf("/1/kubernetes.io/secrets/ns%d/s%d", i%300, i), false, value, ttl); err != nil {
			b.Fatal(err)
		}
	}
	data := mustSave(b, st)
	for name, recover := range map[string]func(v2store.Store, []byte) error{
		"etcd":         func(st v2store.Store, data []byte) error { return st.Recovery(data) },
		"recoverStore": recoverStore,
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				if err := recover(v2store.New(), data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustSave(t testing.TB, st v2store.Store) []byte {
	b, err := st.Save()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
