package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/etcdops/etcd/pkg/datadir"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2disk"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"
)

// restoreTmp is where etcdutl writes the new member dir, inside the data dir (same filesystem, so
// the rename into place is atomic); a leftover of an interrupted restore is replaced.
const restoreTmp = ".etcd-snapshot-restore"

// RestoreSpec restores one member's data dir from a snapshot.
type RestoreSpec struct {
	Path           string // the snapshot
	DataDir        string // the member's data dir; the member dir is DataDir/member
	Name           string
	InitialCluster string // name=peerURL,...
	Token          string
	PeerURLs       []string // empty: the initial cluster's URLs of Name
	// BumpRevision and MarkCompacted go together (etcdutl: --bump-revision needs --mark-compacted).
	BumpRevision  uint64
	MarkCompacted bool
	// MoveAside renames an existing member dir to member.pre-restore-TIMESTAMP; without it a data dir
	// holding a member is refused.
	MoveAside bool
	// SkipHash takes a snapshot without its trailing SHA-256 (a member's snap/db), as etcdutl's --skip-hash-check.
	SkipHash bool
	Now      time.Time
}

// RestoreResult is what etcd_snapshot state=restored returns.
type RestoreResult struct {
	DataDir   string `json:"data_dir"`
	MemberID  string `json:"member_id"`
	ClusterID string `json:"cluster_id"`
	Snapshot  Info   `json:"snapshot"`
	// Revision is the restored member's revision: the snapshot's plus the bump.
	Revision   int64    `json:"revision"`
	MovedAside string   `json:"moved_aside,omitempty"`
	Actions    []string `json:"actions"`
}

// identity is the member and cluster a restore creates: etcd derives both from the peer URLs and
// the cluster token, so the same inputs always give the same ids.
func (s *RestoreSpec) identity() (*membership.RaftCluster, *membership.Member, error) {
	urls, err := types.NewURLsMap(s.InitialCluster)
	if err != nil {
		return nil, nil, &module.ParamError{Param: "initial_cluster", Msg: fmt.Sprintf("%v; give name=https://PEER:2380,... as etcd's --initial-cluster", err)}
	}
	cl, err := membership.NewClusterFromURLsMap(zap.NewNop(), s.Token, urls)
	if err != nil {
		return nil, nil, &module.ParamError{Param: "initial_cluster", Msg: err.Error()}
	}
	m := cl.MemberByName(s.Name)
	if m == nil {
		return nil, nil, &module.ParamError{Param: "name", Msg: fmt.Sprintf("%q is not a member of initial_cluster %s", s.Name, s.InitialCluster)}
	}
	if len(s.PeerURLs) == 0 {
		s.PeerURLs = m.PeerURLs
	}
	want, err := types.NewURLs(s.PeerURLs)
	if err != nil {
		return nil, nil, &module.ParamError{Param: "peer_urls", Msg: err.Error()}
	}
	if !slices.Equal(want.StringSlice(), m.PeerURLs) {
		return nil, nil, &module.ParamError{Param: "peer_urls", Msg: fmt.Sprintf("%v differ from initial_cluster's URLs for %s (%v); "+
			"they must be equal (or leave peer_urls out)", want.StringSlice(), s.Name, m.PeerURLs)}
	}
	return cl, m, nil
}

// Restore writes DataDir/member from the snapshot with a new cluster identity. A member dir that
// already belongs to that identity (the same token, name and peer URLs) is left alone, so a re-run
// after the member started changes nothing. Another member dir is moved aside when MoveAside is set
// and etcd does not hold its WAL lock, else refused.
func Restore(t *module.Task, s RestoreSpec) (RestoreResult, error) {
	r := RestoreResult{DataDir: s.DataDir}
	cl, m, err := s.identity()
	if err != nil {
		return r, err
	}
	r.MemberID, r.ClusterID = fmt.Sprintf("%x", uint64(m.ID)), fmt.Sprintf("%x", uint64(cl.ID()))
	if r.Snapshot, err = Status(s.Path, s.SkipHash); err != nil {
		return r, err
	}
	r.Revision = r.Snapshot.Revision
	if s.MarkCompacted && s.BumpRevision > 0 {
		r.Revision += int64(s.BumpRevision)
	}
	member := filepath.Join(s.DataDir, "member")
	if md, err := v2disk.WALMember(filepath.Join(member, "wal")); err == nil &&
		md.NodeID == uint64(m.ID) && md.ClusterID == uint64(cl.ID()) {
		r.Actions = append(r.Actions, fmt.Sprintf("%s already holds member %s of cluster %s (restored with this token)", member, r.MemberID, r.ClusterID))
		return r, nil
	}
	if entries, err := os.ReadDir(member); err == nil && len(entries) > 0 {
		if !s.MoveAside {
			return r, &module.ParamError{Param: "move_aside", Msg: fmt.Sprintf("%s holds another member's data; set move_aside: true "+
				"to move it aside (renamed, never deleted) or give an empty data_dir", member)}
		}
		if err := datadir.NotLocked(member); err != nil {
			return r, err
		}
		r.MovedAside = member + ".pre-restore-" + datadir.Stamp(s.Now)
	}
	t.Changed()
	if t.CheckMode {
		if r.MovedAside != "" {
			r.Actions = append(r.Actions, "would move "+member+" aside to "+r.MovedAside)
		}
		r.Actions = append(r.Actions, fmt.Sprintf("would restore %s from %s as member %s of cluster %s", member, s.Path, r.MemberID, r.ClusterID))
		return r, nil
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return r, err
	}
	tmp := filepath.Join(s.DataDir, restoreTmp)
	if err := os.RemoveAll(tmp); err != nil { // only ever this module's own partial output
		return r, err
	}
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: s.Path, Name: s.Name, OutputDataDir: tmp, PeerURLs: s.PeerURLs,
		InitialCluster: s.InitialCluster, InitialClusterToken: s.Token,
		RevisionBump: s.BumpRevision, MarkCompacted: s.MarkCompacted, SkipHashCheck: s.SkipHash,
	})
	if err != nil {
		return r, fmt.Errorf("restore of %s into %s: %w", s.Path, tmp, err)
	}
	if err := datadir.ChownLike(s.DataDir, tmp); err != nil {
		return r, err
	}
	if r.MovedAside != "" {
		if err := os.Rename(member, r.MovedAside); err != nil {
			return r, err
		}
		r.Actions = append(r.Actions, "moved "+member+" aside to "+r.MovedAside)
	} else if err := os.RemoveAll(member); err != nil { // absent or an empty directory
		return r, err
	}
	if err := os.Rename(filepath.Join(tmp, "member"), member); err != nil {
		return r, err
	}
	if err := os.Remove(tmp); err != nil {
		return r, err
	}
	r.Actions = append(r.Actions, fmt.Sprintf("restored %s from %s (revision %d, %d keys) as member %s of cluster %s",
		member, s.Path, r.Snapshot.Revision, r.Snapshot.Keys, r.MemberID, r.ClusterID))
	return r, syncDir(s.DataDir)
}
