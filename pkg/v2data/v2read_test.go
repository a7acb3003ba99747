package v2data

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// The listing decoder agrees with encoding/json on every awkward string: escapes, HTML characters
// (escaped by Go servers), control characters, multi-byte runes, supplementary planes, U+2028.
func TestDecodeNodeMatchesEncodingJSON(t *testing.T) {
	pieces := []string{"a", "x", `"`, `\`, "/", "<", ">", "&", "\n", "\t", "\x00", "\x1f", "é", "日本", "😀", "\u2028",
		"\ufffd", " ", "{\"k\":\"v\"}", "%", "?", "#", "+"}
	rnd := rand.New(rand.NewSource(1))
	word := func() string {
		var b strings.Builder
		for i := rnd.Intn(20); i >= 0; i-- {
			b.WriteString(pieces[rnd.Intn(len(pieces))])
		}
		return b.String()
	}
	exp := time.Date(2026, 11, 22, 5, 0, 0, 123456789, time.UTC)
	for i := 0; i < 300; i++ {
		dir := &clientv2.Node{Key: "/" + word(), Dir: true, ModifiedIndex: 7, CreatedIndex: 3}
		for j := rnd.Intn(5); j >= 0; j-- {
			c := &clientv2.Node{Key: dir.Key + "/" + word(), Value: word(), TTL: int64(rnd.Intn(100)), ModifiedIndex: uint64(j)}
			if j%2 == 0 {
				c.Expiration = &exp
			}
			dir.Nodes = append(dir.Nodes, c)
		}
		b, err := json.Marshal(clientv2.Response{Action: "get", Node: dir})
		if err != nil {
			t.Fatal(err)
		}
		var want clientv2.Response
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeNode(b)
		if err != nil || !reflect.DeepEqual(got, want.Node) {
			t.Fatalf("%s\ndecoded %+v (%v)\nwant    %+v", b, got, err, want.Node)
		}
	}
	for in, want := range map[string]string{`"\ud83d\ude00"`: "😀", `"\ud83dx"`: "\ufffdx", `"\ud83d\u0041"`: "\ufffdA", `"a\/b"`: "a/b",
		`"a\\"`: `a\`, `"\\\""`: `\"`, `""`: ""} {
		n, err := decodeNode([]byte(`{"node":{"key":` + in + `}}`))
		if err != nil || n.Key != want {
			t.Fatalf("%s: %q %v, want %q", in, n.Key, err, want)
		}
	}
}

func BenchmarkDecodeListing(b *testing.B) {
	dir := &clientv2.Node{Key: "/kubernetes.io/pods/ns", Dir: true}
	for i := 0; i < 60; i++ {
		dir.Nodes = append(dir.Nodes, &clientv2.Node{Key: "/kubernetes.io/pods/ns/p", Value: `{"kind":"Pod","pad":"` + strings.Repeat("x", 4600) + `"}`})
	}
	body, _ := json.Marshal(clientv2.Response{Action: "get", Node: dir})
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := decodeNode(body); err != nil {
			b.Fatal(err)
		}
	}
}
