package v2migrate

import (
	jsoniter "github.com/json-iterator/go"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
)

// recoverStore fills st (new from v2store.New) with a snapshot's store as st.Recovery(data) does, in
// about 60 % of its time: etcd's Recovery is encoding/json's Unmarshal, a validation pass over the
// whole document and then the decode (at 100k OpenShift-shaped keys, 378 MB and over 4 s on one core).
// jsoniter, already linked in through etcd's dependencies, decodes the same exported fields in one pass;
// Recovery of an empty object then keeps them and rebuilds what the JSON does not hold (each node's
// parent and store, the TTL heap). TestRecoverStoreMatchesEtcd holds it to etcd's own result. (The two
// decoders differ on raw invalid UTF-8 inside a string, which encoding/json replaces and jsoniter keeps;
// a snapshot never holds it: the store's Save, encoding/json's Marshal, writes \ufffd.)
func recoverStore(st v2store.Store, data []byte) error {
	if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal(data, st); err != nil {
		return err
	}
	return st.Recovery([]byte("{}"))
}
