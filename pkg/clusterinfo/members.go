// Package clusterinfo reads what an operator checks before and after touching an etcd cluster: the
// member list, per-endpoint status and health, alarms, v3 key counts per prefix and whether the v2
// keyspace holds data. It only reads; nothing here writes to etcd.
package clusterinfo

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one entry of the member list, as `etcdctl member list` shows it.
type Member struct {
	ID         string   `json:"id"` // hex, as etcdctl prints it
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
	// Started is false for a member that was added but has never joined: it has no name and no
	// client URLs yet (etcdctl prints "unstarted").
	Started bool `json:"started"`
}

// HexID formats a member or cluster id the way etcdctl prints it.
func HexID(id uint64) string { return fmt.Sprintf("%x", id) }

// Members returns the member list and the cluster id, as the answering member knows them. The
// request is serializable: the 3.5 client's MemberList asks for a linearizable list, which a member
// without quorum cannot give, and the member list is what recovering such a cluster starts from.
func Members(ctx context.Context, cli *clientv3.Client) ([]Member, string, error) {
	resp, err := clientv3.RetryClusterClient(cli).MemberList(ctx, &pb.MemberListRequest{Linearizable: false})
	if err != nil {
		return nil, "", rpctypes.Error(err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{
			ID:         HexID(m.ID),
			Name:       m.Name,
			PeerURLs:   nonNil(m.PeerURLs),
			ClientURLs: nonNil(m.ClientURLs),
			IsLearner:  m.IsLearner,
			Started:    m.Name != "" || len(m.ClientURLs) > 0,
		})
	}
	return out, HexID(resp.Header.ClusterId), nil
}

// nonNil keeps list results as [] rather than null in JSON, so playbooks can always iterate them.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
