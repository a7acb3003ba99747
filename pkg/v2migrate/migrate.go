// Package v2migrate writes a stopped member's v2 keyspace into its own v3 db, as `etcdctl migrate`
// does, in one pass: the v2 store is rebuilt with etcd's own code from the member's newest snapshot (its
// JSON decoded faster: store.go) and the WAL after it, and its keys go into the db's key bucket in
// revision order, with the consistent index of the last entry. Unlike `etcdctl migrate` it also writes
// the hidden keys (a segment starting with "_", which a v2 listing omits), found by name in the member
// dir (pkg/v2disk), gives the keys with a v2 TTL leases (leases.go) and makes the membership writes etcd
// makes (membershipWrite).
//
// `etcdctl migrate`'s default transformer encodes every node as JSON, decodes it again and puts it key
// by key through the backend's batch; at 100k OpenShift-shaped keys that is 2.6 times as long as this
// (docs/migration.md).
package v2migrate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-semver/semver"
	"github.com/etcdops/etcd/pkg/v2disk"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/pkg/v3/pbutil"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2error"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/wal"
	"go.etcd.io/etcd/server/v3/wal/walpb"
	"go.uber.org/zap"
)

// Config is one migration.
type Config struct {
	// DataDir is the stopped member's data dir (member/snap, member/wal). Required.
	DataDir string
	// CheckOnly reads the store and counts what would be written, writing nothing and leaving the db
	// unopened: it may run beside the member (its snapshot and WAL are only read, a torn WAL tail is the
	// end), for a check mode that stopped nothing.
	CheckOnly bool
	// TxnKeys is how many keys one bolt transaction writes. Default 10000.
	TxnKeys int
	// Index, when set, migrates the store as of that entry of the log rather than the last one, and is
	// the consistent index written. Every member of a stopped cluster migrated at one index (one every
	// member holds, no member's snapshot past it, no membership change logged after a snapshot:
	// pkg/v2disk's LogPosition) with one Now holds the same v3 data; each at its own last entry would
	// differ where one applied a TTL expiry the others had not.
	Index uint64
	// Term, when set with Index, is the term the entry at Index must have: the same index and term in
	// two logs is the same log up to there (raft's log matching).
	Term uint64
	// Now is when the keys' v2 TTLs are read: a key whose deadline has passed by then is left out (v2
	// deletes it at its next expiry run), the others get a lease of their remaining TTL, which etcd counts
	// from its start. Default: the time of the call. Members migrated at one index need one Now.
	Now time.Time
	// LeaseGranularity and MaxKeysPerLease group the keys into leases (leaseGroup). Default 10 s, 1000.
	LeaseGranularity time.Duration
	MaxKeysPerLease  int
}

// Result is what a migration wrote (or, with CheckOnly, would write).
type Result struct {
	Keys     int    `json:"keys"`       // keys written into v3, hidden ones included
	Hidden   int    `json:"hidden"`     // of which hidden
	Revision int64  `json:"revision"`   // the highest revision written: the v2 store's newest modification
	Index    uint64 `json:"raft_index"` // the consistent index written: Config.Index, or the log's last entry
	Leases   int    `json:"leases"`     // leases written for the keys with a v2 TTL
	Expired  int    `json:"expired"`    // keys left out: their v2 TTL had run out
	// LeasesGrantedAt is Config.Now (seconds since 1970): the leases hold what was left of the TTLs then.
	LeasesGrantedAt int64 `json:"leases_granted_at"`
}

func (c *Config) applyDefaults() {
	if c.TxnKeys <= 0 {
		c.TxnKeys = 10000
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	if c.LeaseGranularity <= 0 {
		c.LeaseGranularity = 10 * time.Second
	}
	if c.MaxKeysPerLease <= 0 {
		c.MaxKeysPerLease = 1000
	}
}

// Migrate rebuilds the member's v2 store and writes its keys into the member's v3 db, which must not
// hold any key yet (a v2 cluster's db; a db written by an earlier migration is refused, not merged).
// The member must be stopped: the db is opened for writing, and a running member holds its lock.
func Migrate(cfg Config) (Result, error) {
	cfg.applyDefaults()
	var res Result
	if cfg.DataDir == "" {
		return res, errors.New("data_dir is empty: give the stopped member's data dir (the directory holding member/)")
	}
	// One read of the newest snapshot (mapped, its CRC checked once) serves the hidden names and the store.
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "member", "wal")); err != nil {
		return res, fmt.Errorf("data_dir %s holds no member/wal: give the stopped member's data dir (%w)", cfg.DataDir, err)
	}
	log, err := v2disk.ReadMemberLog("data_dir", cfg.DataDir, v2disk.StartSnapScan(cfg.DataDir, true))
	if err != nil {
		return res, err
	}
	st, index, err := rebuildStore(cfg.DataDir, log.Snap, cfg.Index, cfg.Term)
	log.Snap.Close()
	if err != nil {
		return res, err
	}
	kvs, deadlines, err := collect(st, log.Hidden)
	if err != nil {
		return res, err
	}
	kvs, leases, expired := leaseKeys(kvs, deadlines, cfg)
	res = Result{Keys: len(kvs), Index: index, Leases: len(leases), Expired: expired, LeasesGrantedAt: cfg.Now.Unix()}
	for _, kv := range kvs {
		if v2disk.IsHidden(string(kv.Key)) {
			res.Hidden++
		}
	}
	if len(kvs) > 0 {
		res.Revision = kvs[len(kvs)-1].ModRevision
	}
	if cfg.CheckOnly {
		return res, nil
	}
	return res, write(dbPath(cfg.DataDir), kvs, leases, index, cfg.TxnKeys)
}

func dbPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }

// rebuildStore is etcdctl migrate's rebuildStoreV2 on etcd's current packages: the newest snapshot's
// store (snap, nil for none: pkg/v2disk read it), then every v2 request in the WAL after it applied as the
// server applies it, up to the entry at upTo (0: the last) whose term, when given, must be term. The index
// is that entry's.
func rebuildStore(dataDir string, snap *v2disk.Snapshot, upTo, term uint64) (v2store.Store, uint64, error) {
	lg := zap.NewNop()
	member := filepath.Join(dataDir, "member")
	st := v2store.New()
	var walsnap walpb.Snapshot
	if snap != nil {
		walsnap.Index, walsnap.Term = snap.Entry()
		if upTo > 0 && walsnap.Index > upTo {
			return nil, 0, fmt.Errorf("data_dir %s: the newest v2 snapshot ends at index %d, past index %d: the store as of "+
				"index %d is no longer on this member; migrate one member and give the others its data", dataDir, walsnap.Index, upTo, upTo)
		}
		if err := recoverStore(st, snap.Store()); err != nil {
			return nil, 0, fmt.Errorf("data_dir %s: decoding the v2 store of the snapshot at index %d: %w", dataDir, walsnap.Index, err)
		}
	}
	w, err := wal.OpenForRead(lg, filepath.Join(member, "wal"), walsnap)
	if err != nil {
		return nil, 0, fmt.Errorf("data_dir %s: opening the WAL: %w", dataDir, err)
	}
	defer w.Close()
	_, _, ents, err := w.ReadAll()
	if err != nil {
		return nil, 0, fmt.Errorf("data_dir %s: reading the WAL after the snapshot at index %d: %w", dataDir, walsnap.Index, err)
	}
	index, indexTerm := walsnap.Index, walsnap.Term
	// No cluster: the applier skips the membership writes without one; membershipWrite makes them.
	applier := etcdserver.NewApplierV2(lg, st, nil)
	for _, e := range ents {
		if upTo > 0 && e.Index > upTo {
			break
		}
		index, indexTerm = e.Index, e.Term
		if e.Type != raftpb.EntryNormal && upTo > 0 {
			// etcd's cluster writes a membership change into the store (moving its index); not made here.
			return nil, 0, fmt.Errorf("data_dir %s: the log holds a membership change at index %d, after the newest v2 "+
				"snapshot: migrate one member and give the others its data", dataDir, e.Index)
		}
		if e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
			continue
		}
		if r := v2Request(e.Data); r != nil && !membershipWrite(st, r) {
			apply(applier, (*etcdserver.RequestV2)(r))
		}
	}
	switch {
	case upTo > 0 && index != upTo:
		return nil, 0, fmt.Errorf("data_dir %s: the log ends at index %d, before index %d: give an index every member holds "+
			"(the lowest last_index of etcd_raft_log_info)", dataDir, index, upTo)
	case upTo > 0 && term > 0 && indexTerm != term:
		return nil, 0, fmt.Errorf("data_dir %s: the entry at index %d has term %d here, not %d: the members' logs differ "+
			"there; migrate one member and give the others its data", dataDir, upTo, indexTerm, term)
	}
	return st, index, nil
}

// v2Request decodes an entry's v2 request (nil for a v3 one): etcd 3.x wraps it in an
// InternalRaftRequest, etcd 2 wrote it bare.
func v2Request(data []byte) *pb.Request {
	var rr pb.InternalRaftRequest
	if pbutil.MaybeUnmarshal(&rr, data) {
		return rr.V2
	}
	var r pb.Request
	if pbutil.MaybeUnmarshal(&r, data) {
		return &r
	}
	return nil
}

// membershipWrite makes the store write that etcd's cluster makes for a member's published attributes or
// the cluster version, which the applier skips without a cluster: each moves the store's index, and every
// key written after it has, in etcd's store, the index that many higher — the v2 modified index its clients
// know, which becomes its revision (and for members migrated at one index, the same revision on each: their
// newest snapshots, whose stores hold these writes, lie at different indexes). It reports whether r was one.
func membershipWrite(st v2store.Store, r *pb.Request) bool {
	permanent := v2store.TTLOptionSet{ExpireTime: v2store.Permanent}
	switch {
	case r.Method != "PUT" || r.PrevExist != nil || r.PrevIndex > 0 || r.PrevValue != "": // as the applier tells them
		return false
	case r.Path == membership.StoreClusterVersionKey():
		if v, err := semver.NewVersion(r.Val); err == nil {
			_, _ = st.Set(r.Path, false, v.String(), permanent)
		}
		return true
	case etcdserver.StoreMemberAttributeRegexp.MatchString(r.Path):
		var attr membership.Attributes
		// etcd updates only a member it knows (one removed since is left alone).
		if _, err := st.Get(path.Join(path.Dir(r.Path), "raftAttributes"), false, false); err == nil && json.Unmarshal([]byte(r.Val), &attr) == nil {
			b, _ := json.Marshal(attr)
			_, _ = st.Set(r.Path, false, string(b), permanent)
		}
		return true
	}
	return false
}

func apply(a etcdserver.ApplierV2, r *etcdserver.RequestV2) {
	switch r.Method {
	case "POST":
		a.Post(r)
	case "PUT":
		a.Put(r, false)
	case "DELETE":
		a.Delete(r)
	case "SYNC": // the expiry of TTL keys, as of the leader's clock then
		a.Sync(r)
	}
}

// collect returns every key of the keyspace (/1) as etcdctl migrate's transform makes it, hidden keys
// included, in revision order, and the v2 deadline of each key that expires (its own or a directory's
// above it, whichever comes first).
func collect(st v2store.Store, hidden []string) ([]*mvccpb.KeyValue, map[string]time.Time, error) {
	byKey := map[string]*mvccpb.KeyValue{}
	deadlines := map[string]time.Time{}
	var walk func(n *v2store.NodeExtern, deadline time.Time)
	walk = func(n *v2store.NodeExtern, deadline time.Time) {
		deadline = earliest(deadline, n)
		if !n.Dir {
			key := n.Key[len(v2disk.StoreKeysPrefix):]
			var value string
			if n.Value != nil {
				value = asServed(*n.Value)
			}
			byKey[key] = &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value),
				CreateRevision: int64(n.CreatedIndex), ModRevision: int64(n.ModifiedIndex), Version: 1}
			if !deadline.IsZero() {
				deadlines[key] = deadline
			}
		}
		for _, c := range n.Nodes {
			walk(c, deadline)
		}
	}
	all, err := st.Get(v2disk.StoreKeysPrefix, true, false)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil // no v2 key at all
		}
		return nil, nil, err
	}
	walk(all.Node, time.Time{})
	// A hidden name is a candidate (pkg/v2disk): deleted or expired since, it is simply absent.
	for _, p := range hidden {
		ev, err := st.Get(v2disk.StoreKeysPrefix+p, true, false)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var above time.Time // the directories above it may expire (the listing did not walk them to it)
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if d, err := st.Get(v2disk.StoreKeysPrefix+dir, false, false); err == nil {
				above = earliest(above, d.Node)
			}
		}
		walk(ev.Node, above)
	}
	kvs := make([]*mvccpb.KeyValue, 0, len(byKey))
	for _, kv := range byKey {
		kvs = append(kvs, kv)
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].ModRevision < kvs[j].ModRevision })
	for i := 1; i < len(kvs); i++ {
		// One v2 write modifies one node: two keys of one revision would overwrite each other in v3.
		if kvs[i].ModRevision == kvs[i-1].ModRevision {
			return nil, nil, fmt.Errorf("keys %s and %s were both last modified at index %d: they cannot both be revision %d in v3",
				kvs[i-1].Key, kvs[i].Key, kvs[i].ModRevision, kvs[i].ModRevision)
		}
	}
	return kvs, deadlines, nil
}

// earliest is the earlier of deadline and n's expiration (zero: none).
func earliest(deadline time.Time, n *v2store.NodeExtern) time.Time {
	if n.Expiration != nil && (deadline.IsZero() || n.Expiration.Before(deadline)) {
		return *n.Expiration
	}
	return deadline
}

// asServed is a value as the v2 API serves it, and as etcdctl migrate's JSON round trip writes it: each
// byte that is not valid UTF-8 becomes U+FFFD (a value written after the newest snapshot holds the raw
// bytes; one read from a snapshot, whose store is JSON, has them replaced already).
func asServed(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	b, _ := json.Marshal(v) // a string always marshals
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func isNotFound(err error) bool {
	var e *v2error.Error
	return errors.As(err, &e) && e.ErrorCode == v2error.EcodeKeyNotFound
}

// lockTimeout is how long the db's lock is waited for: a running member holds it.
const lockTimeout = 5 * time.Second

func openErr(path string, err error) error {
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("the v3 db %s is locked: stop the member's etcd first (%w)", path, err)
	}
	return fmt.Errorf("opening the v3 db %s: %w", path, err)
}

var (
	keyBucket  = []byte("key")
	metaBucket = []byte("meta")
)

func emptyKeys(path string, b *bolt.Bucket) error {
	if b == nil {
		return nil
	}
	if k, _ := b.Cursor().First(); k != nil {
		return fmt.Errorf("the v3 db %s already holds keys (%d revisions): this member was migrated or written "+
			"through v3 before; migrate a member dir restored from the backup instead", path, b.Stats().KeyN)
	}
	return nil
}

// write puts the keys into the db's key bucket, revision {main: ModRevision, sub: 0} each as etcdctl
// migrate writes them, TxnKeys per transaction, and the consistent index into meta; the db's other
// buckets (members, cluster version, auth) stay as they are.
func write(path string, kvs []*mvccpb.KeyValue, leases []*leaseGroup, index uint64, txnKeys int) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return openErr(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(keyBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(metaBucket); err != nil {
			return err
		}
		return emptyKeys(path, b)
	})
	for i := 0; err == nil && i < len(kvs); i += txnKeys {
		batch := kvs[i:min(i+txnKeys, len(kvs))]
		err = db.Update(func(tx *bolt.Tx) error {
			// The leases with the first keys: a run cut short leaves either neither (a second run writes both)
			// or keys (a second run is refused), never leases alone that a second run would write again.
			if i == 0 {
				if err := writeLeases(tx, leases); err != nil {
					return err
				}
			}
			b := tx.Bucket(keyBucket)
			b.FillPercent = 1 // appended in key order: full pages
			for _, kv := range batch {
				data, err := kv.Marshal()
				if err != nil {
					return err
				}
				if err := b.Put(revisionKey(kv.ModRevision), data); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			v := make([]byte, 8)
			binary.BigEndian.PutUint64(v, index)
			return tx.Bucket(metaBucket).Put([]byte("consistent_index"), v)
		})
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the v3 db %s: %w", path, err)
	}
	return nil
}

// revisionKey is mvcc's key of a revision: main and sub big-endian, joined by '_'.
func revisionKey(main int64) []byte {
	k := make([]byte, 17)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_'
	return k
}
