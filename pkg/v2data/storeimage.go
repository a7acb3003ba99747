package v2data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-semver/semver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv2 "go.etcd.io/etcd/client/v2"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2error"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.uber.org/zap"
)

// storeImage is a source member's v2 store rebuilt in this process from its data dir, the way the
// member rebuilds it at start (the newest v2 snapshot, then the committed WAL entries through etcd's
// own v2 applier). Walking it costs the source server nothing and skips the v2 API's JSON, which
// on a loaded host is as expensive as the writes of a copy. It is trusted only when its index
// equals the live source's: then it holds exactly what the API would return.
type storeImage struct {
	store  v2store.Store
	hidden []string
}

// rebuildStore replays a member's data dir. etcd code that panics on a log it does not expect (a
// member written by a newer etcd) becomes an error, and the copy falls back to the API.
func rebuildStore(dataDir string) (img *storeImage, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("source_data_dir %s: replaying the log: %v", dataDir, r)
		}
	}()
	l, err := readMemberLog(dataDir)
	if err != nil {
		return nil, err
	}
	hidden, err := l.hiddenPaths(dataDir)
	if err != nil {
		return nil, err
	}
	st := v2store.New(etcdserver.StoreClusterPrefix, etcdserver.StoreKeysPrefix)
	if l.snapshot != nil {
		if err := st.Recovery(l.snapshot.Data); err != nil {
			return nil, fmt.Errorf("source_data_dir %s: v2 snapshot: %w", dataDir, err)
		}
	}
	// Membership lives in the same store and moves its index: replay it too, or the index would
	// never match the live one.
	lg := zap.NewNop()
	noop := func(*zap.Logger, *semver.Version) {}
	cl := membership.NewCluster(lg)
	cl.SetStore(st)
	cl.Recover(noop)
	apply := etcdserver.NewApplierV2(lg, st, cl)
	for _, e := range l.entries {
		if len(e.Data) == 0 {
			continue // the empty entry a new leader appends
		}
		if e.Type == raftpb.EntryConfChange {
			var cc raftpb.ConfChange
			if err := cc.Unmarshal(e.Data); err != nil {
				return nil, fmt.Errorf("source_data_dir %s: entry %d: %w", dataDir, e.Index, err)
			}
			applyConfChange(cl, cc)
			continue
		}
		if e.Type != raftpb.EntryNormal {
			continue
		}
		var irr pb.InternalRaftRequest
		if irr.Unmarshal(e.Data) != nil {
			var r pb.Request
			if err := r.Unmarshal(e.Data); err != nil {
				return nil, fmt.Errorf("source_data_dir %s: entry %d: %w", dataDir, e.Index, err)
			}
			applyV2(apply, &r)
			continue
		}
		switch {
		case irr.V2 != nil:
			applyV2(apply, irr.V2)
		case irr.ClusterVersionSet != nil:
			cl.SetVersion(semver.Must(semver.NewVersion(irr.ClusterVersionSet.Ver)), noop, membership.ApplyV2storeOnly)
		case irr.ClusterMemberAttrSet != nil:
			cl.UpdateAttributes(types.ID(irr.ClusterMemberAttrSet.Member_ID), memberAttributes(irr.ClusterMemberAttrSet.MemberAttributes),
				membership.ApplyV2storeOnly)
		}
	}
	return &storeImage{store: st, hidden: hidden}, nil
}

func memberAttributes(a *membershippb.Attributes) membership.Attributes {
	return membership.Attributes{Name: a.Name, ClientURLs: a.ClientUrls}
}

// applyV2 is etcd's applyV2Request without the server around it.
func applyV2(a etcdserver.ApplierV2, r *pb.Request) {
	req := (*etcdserver.RequestV2)(r)
	switch r.Method {
	case "POST":
		a.Post(req)
	case "PUT":
		a.Put(req, membership.ApplyV2storeOnly)
	case "DELETE":
		a.Delete(req)
	case "SYNC":
		a.Sync(req)
	}
}

// applyConfChange is etcd's applyConfChange for the store: a change the server rejected as
// invalid left the store alone, so it does here too.
func applyConfChange(cl *membership.RaftCluster, cc raftpb.ConfChange) {
	if cl.ValidateConfigurationChange(cc) != nil {
		return
	}
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		var ctx membership.ConfigChangeContext
		if err := json.Unmarshal(cc.Context, &ctx); err != nil {
			panic(err)
		}
		if ctx.IsPromote {
			cl.PromoteMember(ctx.Member.ID, membership.ApplyV2storeOnly)
		} else {
			cl.AddMember(&ctx.Member, membership.ApplyV2storeOnly)
		}
	case raftpb.ConfChangeRemoveNode:
		cl.RemoveMember(types.ID(cc.NodeID), membership.ApplyV2storeOnly)
	case raftpb.ConfChangeUpdateNode:
		var m membership.Member
		if err := json.Unmarshal(cc.Context, &m); err != nil {
			panic(err)
		}
		cl.UpdateRaftAttributes(m.ID, m.RaftAttributes, membership.ApplyV2storeOnly)
	}
}

func (img *storeImage) index() uint64 { return img.store.Index() }

// get is v2Reader.get on the image: the node at key (nil when absent), with its children if it is
// a directory, sorted; hidden children are left out as the API leaves them out.
func (img *storeImage) get(_ context.Context, key string) (*clientv2.Node, error) {
	ev, err := img.store.Get(storeKeysPrefix+key, false, true)
	var e *v2error.Error
	if errors.As(err, &e) && e.ErrorCode == v2error.EcodeKeyNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return fromExtern(ev.Node), nil
}

func fromExtern(x *v2store.NodeExtern) *clientv2.Node {
	n := &clientv2.Node{Key: strings.TrimPrefix(x.Key, storeKeysPrefix), Dir: x.Dir, Expiration: x.Expiration, TTL: x.TTL,
		CreatedIndex: x.CreatedIndex, ModifiedIndex: x.ModifiedIndex}
	if n.Key == "" {
		n.Key = "/"
	}
	if x.Value != nil {
		n.Value = *x.Value
	}
	for _, c := range x.Nodes {
		n.Nodes = append(n.Nodes, fromExtern(c))
	}
	return n
}
