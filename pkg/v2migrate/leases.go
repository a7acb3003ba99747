package v2migrate

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/etcdops/etcd/pkg/v2data"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
)

// leaseGroup is one lease to write: keys whose v2 deadlines fall in one window of the granularity share
// it, ending with the window (never earlier than in v2), at most MaxKeysPerLease keys to a lease (one
// expiry never deletes a huge set of keys in one transaction), as etcd_v2_copy grants them.
type leaseGroup struct {
	ttl  int64 // seconds from Config.Now, at least 1
	keys []*mvccpb.KeyValue
}

// leaseKeys leaves out the keys whose deadline has passed at now (v2 deletes them at its next expiry
// run) and groups the others into leases; kvs stay in revision order. The groups depend only on the
// keys and now, so members migrated at one index with one now get the same leases.
func leaseKeys(kvs []*mvccpb.KeyValue, deadlines map[string]time.Time, cfg Config) ([]*mvccpb.KeyValue, []*leaseGroup, int) {
	open := map[int64]*leaseGroup{}
	var groups []*leaseGroup
	kept := kvs[:0]
	expired := 0
	for _, kv := range kvs {
		d, ok := deadlines[string(kv.Key)]
		switch {
		case !ok:
			kept = append(kept, kv)
			continue
		case !d.After(cfg.Now):
			expired++
			continue
		}
		window := v2data.LeaseWindow(d, cfg.LeaseGranularity)
		l := open[window]
		if l == nil || len(l.keys) >= cfg.MaxKeysPerLease {
			l = &leaseGroup{ttl: v2data.LeaseTTL(window, cfg.LeaseGranularity, cfg.Now)}
			open[window] = l
			groups = append(groups, l)
		}
		l.keys = append(l.keys, kv)
		kept = append(kept, kv)
	}
	return kept, groups, expired
}

var leaseBucket = []byte("lease")

// writeLeases puts the groups into the db's lease bucket as etcd's lessor keeps them (ID big-endian →
// leasepb.Lease), each under the lowest ID not taken yet (the same on every member: their buckets are
// replicas), and sets each key's lease; the keys are written after this.
func writeLeases(tx *bolt.Tx, groups []*leaseGroup) error {
	b, err := tx.CreateBucketIfNotExists(leaseBucket)
	if err != nil {
		return err
	}
	id := int64(0)
	for _, l := range groups {
		for {
			id++
			if b.Get(leaseIDKey(id)) == nil {
				break
			}
		}
		data, err := (&leasepb.Lease{ID: id, TTL: l.ttl}).Marshal()
		if err != nil {
			return err
		}
		if err := b.Put(leaseIDKey(id), data); err != nil {
			return fmt.Errorf("lease %x: %w", id, err)
		}
		for _, kv := range l.keys {
			kv.Lease = id
		}
	}
	return nil
}

func leaseIDKey(id int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}
