// Package dataset generates OpenShift-shaped etcd data (keys under /kubernetes.io and /openshift.io,
// JSON/UTF-8/binary values from a few bytes to ~100 KiB, TTL keys under the five OpenShift TTL prefixes,
// TTL and empty directories, hidden "_" keys), writes it through the v2 or v3 API, and keeps a manifest
// (key, size, sha256, TTL) so a later step — a migration, a restore — can be verified key by key.
//
// Generation is deterministic: the same count and seed give the same keys and values.
package dataset

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"time"
)

// TTLPrefix is a key prefix whose keys OpenShift 3.x wrote with a TTL, and the lease duration the
// migration runbook (`oc adm migrate etcd-ttl`) attaches to them in v3.
type TTLPrefix struct {
	Prefix string        `json:"prefix"`
	Lease  time.Duration `json:"lease"`
}

// TTLPrefixes are the five prefixes of the OpenShift 3.6 migration chapter.
var TTLPrefixes = []TTLPrefix{
	{"/kubernetes.io/events", time.Hour},
	{"/kubernetes.io/masterleases", 10 * time.Second},
	{"/openshift.io/oauth/accesstokens", 86400 * time.Second},
	{"/openshift.io/oauth/authorizetokens", 500 * time.Second},
	{"/openshift.io/leases/controllers", 10 * time.Second},
}

// seedTTL is the TTL the generator gives v2 keys and directories: long enough that nothing expires
// while a test or demo runs (the real 10 s leases would vanish before a migration starts).
const seedTTL = 6 * time.Hour

// Value kinds.
const (
	KindJSON   = "json"   // a Kubernetes/OpenShift object as JSON (storage-media-type application/json)
	KindUTF8   = "utf8"   // JSON with non-ASCII text
	KindBinary = "binary" // protobuf-like: "k8s\x00" and control bytes; ASCII only in v2 (see Entry.Value)
	KindTiny   = "tiny"   // a few bytes
)

// Entry is one key or directory of a dataset.
type Entry struct {
	Key    string `json:"key"`
	Dir    bool   `json:"dir,omitempty"`        // a v2 directory (no value)
	TTL    int64  `json:"ttl,omitempty"`        // seconds; v2 TTL of the key or directory, v3: lease TTL
	InDir  string `json:"in_ttl_dir,omitempty"` // the TTL directory this key lives in (expires with it)
	Prefix string `json:"ttl_prefix,omitempty"` // the OpenShift TTL prefix the key is under
	Hidden bool   `json:"hidden,omitempty"`     // a path segment starts with "_" (etcd 3.4's migrate drops these)
	Kind   string `json:"kind,omitempty"`
	Size   int    `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	value  []byte
}

// Value is the entry's value (nil for directories and for entries read from a manifest file).
func (e *Entry) Value() []byte { return e.value }

// Manifest describes a generated dataset.
type Manifest struct {
	API      string      `json:"api"` // "v2" or "v3"
	Seed     int64       `json:"seed"`
	Created  time.Time   `json:"created"`
	Prefixes []TTLPrefix `json:"ttl_prefixes"`
	Count    Counts      `json:"count"`
	Entries  []Entry     `json:"entries"`
}

// Counts summarise a manifest.
type Counts struct {
	Keys      int   `json:"keys"`
	TTLKeys   int   `json:"ttl_keys"`
	Dirs      int   `json:"dirs"` // explicit directories: TTL and empty ones
	EmptyDirs int   `json:"empty_dirs"`
	Hidden    int   `json:"hidden"`
	Bytes     int64 `json:"bytes"`
}

// Keys lists the manifest's non-directory entries.
func (m *Manifest) Keys() []*Entry {
	var out []*Entry
	for i := range m.Entries {
		if !m.Entries[i].Dir {
			out = append(out, &m.Entries[i])
		}
	}
	return out
}

// Save writes the manifest as JSON (values are not included: sizes and sha256 are).
func (m *Manifest) Save(path string) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Load reads a manifest written by Save.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	return m, json.Unmarshal(b, m)
}

// Generate makes n keys for api "v2" or "v3". Every kind of entry appears once before the rest are
// drawn at random, so even a small n covers TTL keys under each prefix, hidden keys, binary, UTF-8,
// tiny and ~100 KiB values; v2 datasets also get TTL directories and empty directories.
func Generate(api string, n int, seed int64) (*Manifest, error) {
	if api != "v2" && api != "v3" {
		return nil, fmt.Errorf("api: %q is not v2 or v3", api)
	}
	if n < 1 {
		return nil, fmt.Errorf("keys: %d; generate at least 1 key", n)
	}
	g := &gen{r: rand.New(rand.NewSource(seed)), api: api, seen: map[string]bool{}}
	m := &Manifest{API: api, Seed: seed, Created: time.Now().UTC(), Prefixes: TTLPrefixes}
	if api == "v2" {
		dirs := 1 + n/500
		for i := 0; i < dirs; i++ {
			ttlDir := fmt.Sprintf("/openshift.io/leases/controllers/ttl-dir-%d", i)
			m.Entries = append(m.Entries,
				Entry{Key: ttlDir, Dir: true, TTL: int64(seedTTL / time.Second), Prefix: "/openshift.io/leases/controllers"},
				Entry{Key: fmt.Sprintf("/openshift.io/templates/empty-ns-%d", i), Dir: true},
				Entry{Key: fmt.Sprintf("/kubernetes.io/_internal/empty-%d", i), Dir: true, Hidden: true})
		}
	}
	specials := []func() Entry{g.ttlKey(0), g.ttlKey(1), g.ttlKey(2), g.ttlKey(3), g.ttlKey(4), g.hidden,
		g.binary, g.utf8, g.tiny, g.image}
	for i := 0; i < n; i++ {
		var e Entry
		switch {
		case i < len(specials):
			e = specials[i]()
		case api == "v2" && i < len(specials)+1+n/500:
			e = g.inTTLDir(i - len(specials))
		default:
			e = g.random()
		}
		if g.seen[e.Key] {
			i-- // a name collision: draw again
			continue
		}
		g.seen[e.Key] = true
		m.Entries = append(m.Entries, e)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Dir {
			m.Count.Dirs++
			if e.TTL == 0 {
				m.Count.EmptyDirs++
			}
			continue
		}
		if strings.Contains(e.Key, "/_") {
			e.Hidden = true
		}
		sum := sha256.Sum256(e.value)
		e.Size, e.SHA256 = len(e.value), hex.EncodeToString(sum[:])
		m.Count.Keys++
		m.Count.Bytes += int64(e.Size)
		if e.TTL > 0 {
			m.Count.TTLKeys++
		}
		if e.Hidden {
			m.Count.Hidden++
		}
	}
	return m, nil
}

type gen struct {
	r    *rand.Rand
	api  string
	seen map[string]bool
	seq  int
}

var (
	namespaces = []string{"default", "kube-system", "openshift-infra", "openshift-web-console", "logging",
		"app-prod", "app-staging", "ci", "monitoring", "team-ünïcode"}
	namespaced = []string{"/kubernetes.io/pods", "/kubernetes.io/services/specs", "/kubernetes.io/secrets",
		"/kubernetes.io/configmaps", "/kubernetes.io/controllers", "/kubernetes.io/serviceaccounts",
		"/openshift.io/deploymentconfigs", "/openshift.io/builds", "/openshift.io/imagestreams",
		"/openshift.io/routes", "/openshift.io/templates"}
	cluster = []string{"/kubernetes.io/namespaces", "/kubernetes.io/minions", "/openshift.io/users",
		"/openshift.io/identities", "/openshift.io/images"}
)

func (g *gen) name(prefix string) string {
	g.seq++
	return fmt.Sprintf("%s-%d-%04x", prefix, g.seq, g.r.Intn(1<<16))
}

// token is a base64url OAuth token name; about 1 in 64 starts with "_", as real ones do.
func (g *gen) token() string {
	b := make([]byte, 32)
	g.r.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (g *gen) random() Entry {
	switch x := g.r.Intn(100); {
	case x < 20:
		return g.ttlKey(g.r.Intn(len(TTLPrefixes)))()
	case x < 75:
		res := namespaced[g.r.Intn(len(namespaced))]
		ns := namespaces[g.r.Intn(len(namespaces))]
		return Entry{Key: res + "/" + ns + "/" + g.name(kindOf(res)), Kind: KindJSON, value: g.object(res, ns, g.size())}
	case x < 90:
		res := cluster[g.r.Intn(len(cluster))]
		return Entry{Key: res + "/" + g.name(kindOf(res)), Kind: KindJSON, value: g.object(res, "", g.size())}
	case x < 94:
		return g.binary()
	case x < 97:
		return g.utf8()
	default:
		return g.tiny()
	}
}

// size draws a value size: mostly 0.3–6 KiB, a tail up to ~100 KiB (large secrets, image metadata).
func (g *gen) size() int {
	if g.r.Intn(50) == 0 {
		return 20<<10 + g.r.Intn(80<<10)
	}
	return 300 + g.r.Intn(6<<10)
}

func (g *gen) ttlKey(i int) func() Entry {
	return func() Entry {
		p := TTLPrefixes[i]
		var key string
		switch p.Prefix {
		case "/kubernetes.io/events":
			ns := namespaces[g.r.Intn(len(namespaces))]
			key = p.Prefix + "/" + ns + "/" + g.name("event")
		case "/kubernetes.io/masterleases":
			key = fmt.Sprintf("%s/10.0.%d.%d", p.Prefix, g.r.Intn(256), g.r.Intn(254)+1)
		case "/openshift.io/leases/controllers":
			key = p.Prefix + "/" + g.name("lease")
		default:
			key = p.Prefix + "/" + g.token()
		}
		return Entry{Key: key, Kind: KindJSON, TTL: int64(seedTTL / time.Second), Prefix: p.Prefix,
			value: g.object(p.Prefix, "", 200+g.r.Intn(800))}
	}
}

// hidden is a key with a "_" segment, like an OAuth token whose base64url name starts with "_".
func (g *gen) hidden() Entry {
	return Entry{Key: "/openshift.io/oauth/accesstokens/_" + g.token(), Kind: KindJSON, Hidden: true,
		TTL: int64(seedTTL / time.Second), Prefix: "/openshift.io/oauth/accesstokens", value: g.object("oauthaccesstokens", "", 400)}
}

func (g *gen) inTTLDir(i int) Entry {
	dir := fmt.Sprintf("/openshift.io/leases/controllers/ttl-dir-%d", i)
	return Entry{Key: dir + "/" + g.name("holder"), Kind: KindJSON, InDir: dir, Prefix: "/openshift.io/leases/controllers",
		value: g.object("leases", "", 150)}
}

// binary is a protobuf-shaped value (Kubernetes' "k8s\x00" magic and control bytes). v2 serves values
// inside JSON, where bytes that are not valid UTF-8 cannot come back intact, so v2 datasets keep to
// 0x00–0x7f; v3 values use every byte.
func (g *gen) binary() Entry {
	n := 64 + g.r.Intn(4<<10)
	b := append([]byte("k8s\x00"), make([]byte, n)...)
	for i := 4; i < len(b); i++ {
		if g.api == "v2" {
			b[i] = byte(g.r.Intn(0x80))
		} else {
			b[i] = byte(g.r.Intn(256))
		}
	}
	ns := namespaces[g.r.Intn(len(namespaces))]
	return Entry{Key: "/kubernetes.io/configmaps/" + ns + "/" + g.name("proto"), Kind: KindBinary, value: b}
}

func (g *gen) utf8() Entry {
	v := g.object("configmaps", "team-ünïcode", 300+g.r.Intn(2000))
	v = append(v[:len(v)-1], []byte(`,"data":{"greeting":"grüße, 日本語, ελληνικά, emoji ✓🚀"}}`)...)
	return Entry{Key: "/kubernetes.io/configmaps/team-ünïcode/" + g.name("ütf8"), Kind: KindUTF8, value: v}
}

func (g *gen) tiny() Entry {
	vals := []string{"1", "{}", "ok", "0\n"}
	return Entry{Key: "/openshift.io/settings/" + g.name("flag"), Kind: KindTiny, value: []byte(vals[g.r.Intn(len(vals))])}
}

// image is the large end: image metadata of about 100 KiB.
func (g *gen) image() Entry {
	return Entry{Key: "/openshift.io/images/sha256:" + fmt.Sprintf("%064x", g.r.Uint64()), Kind: KindJSON,
		value: g.object("/openshift.io/images", "", 100<<10-g.r.Intn(2<<10))}
}

// object renders a JSON object of about size bytes shaped like a stored API object.
func (g *gen) object(res, ns string, size int) []byte {
	kind := kindOf(res)
	meta := map[string]any{"name": g.name(kind), "uid": fmt.Sprintf("%08x-%04x-%04x", g.r.Uint32(), g.r.Intn(1<<16), g.r.Intn(1<<16)),
		"resourceVersion": fmt.Sprint(g.r.Intn(1 << 30)), "creationTimestamp": "2017-08-25T13:57:32Z"}
	if ns != "" {
		meta["namespace"] = ns
	}
	obj := map[string]any{"kind": kind, "apiVersion": "v1", "metadata": meta}
	b, _ := json.Marshal(obj)
	if pad := size - len(b) - 12; pad > 0 {
		filler := make([]byte, pad)
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
		for i := range filler {
			filler[i] = alphabet[g.r.Intn(len(alphabet))]
		}
		obj["data"] = string(filler)
		b, _ = json.Marshal(obj)
	}
	return b
}

func kindOf(res string) string {
	res = res[strings.LastIndex(res, "/")+1:]
	if res == "specs" {
		return "service"
	}
	return strings.TrimSuffix(res, "s")
}
