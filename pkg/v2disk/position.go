package v2disk

import (
	"fmt"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/raft/v3/raftpb"
)

// Position is where a member's raft log stands, as its data dir holds it.
type Position struct {
	SnapshotIndex uint64 `json:"snapshot_index"` // the newest intact v2 snapshot's last entry (0: none)
	SnapshotTerm  uint64 `json:"snapshot_term"`
	LastIndex     uint64 `json:"last_index"` // the log's last entry (the snapshot's when none follows)
	LastTerm      uint64 `json:"last_term"`
	Commit        uint64 `json:"commit"`       // the commit index of the newest hard state in the WAL
	ConfChanges   int    `json:"conf_changes"` // membership changes logged after the snapshot
	MemberID      string `json:"member_id"`    // hex, as etcdctl prints it
	ClusterID     string `json:"cluster_id"`   // hex
	ReadAt        int64  `json:"read_at"`      // the host's clock when read, seconds since 1970
}

// LogPosition reads a member's position from its newest snapshot and the WAL after it; like the
// rest of the package it only reads, so the member may run (its last record may be half written).
func LogPosition(dataDir string) (Position, error) {
	var p Position
	if err := CheckDataDir("data_dir", "the cluster", dataDir); err != nil {
		return p, err
	}
	member := filepath.Join(dataDir, "member")
	snap, err := newestSnapshot(filepath.Join(member, "snap"))
	if err != nil {
		return p, err
	}
	if snap != nil {
		p.SnapshotIndex, p.SnapshotTerm = snap.meta.Index, snap.meta.Term
		snap.Close()
	}
	r, err := readWAL(filepath.Join(member, "wal"), p.SnapshotIndex, p.SnapshotTerm, func(_ uint64, typ raftpb.EntryType, _ []byte) {
		if typ != raftpb.EntryNormal {
			p.ConfChanges++
		}
	})
	if err != nil {
		return p, fmt.Errorf("data_dir %s: %w", dataDir, err)
	}
	p.LastIndex, p.LastTerm, p.Commit = r.last, r.lastTerm, r.commit
	p.MemberID, p.ClusterID = fmt.Sprintf("%x", r.md.NodeID), fmt.Sprintf("%x", r.md.ClusterID)
	p.ReadAt = time.Now().Unix()
	return p, nil
}
