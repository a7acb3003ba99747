package v2disk

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/v2seed"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/wal"
	"go.etcd.io/etcd/server/v3/wal/walpb"
	"go.uber.org/zap"
)

// readWAL hands over what etcd's own reader returns: the same entries after the snapshot, the same
// metadata; and, when the last record was cut short (a member writing it), the same shorter log.
func TestReadWALMatchesEtcdsReader(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	kapi := v2seed.KeysAPI(t, src)
	v2seed.Seed(t, kapi, 300)
	member := filepath.Join(src.Members[0].DataDir, "member")
	_, s := v2seed.AwaitNewestSnapshot(t, filepath.Join(member, "snap"))
	for i := 0; i < 5; i++ { // entries after the snapshot's own record, the last of which is cut below
		v2seed.Set(t, kapi, fmt.Sprintf("/after/%d", i), "after the snapshot", nil)
	}
	src.Stop(src.Members[0]) // a still WAL, to cut a copy of it
	dir := filepath.Join(t.TempDir(), "wal")
	if out, err := exec.Command("cp", "-a", filepath.Join(member, "wal"), dir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	compare := func(what string) {
		t.Helper()
		w, err := wal.OpenForRead(zap.NewNop(), dir, walpb.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term})
		if err != nil {
			t.Fatal(err)
		}
		metadata, _, want, err := w.ReadAll()
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []raftpb.Entry
		r, err := readWAL(dir, s.Metadata.Index, s.Metadata.Term, func(index uint64, typ raftpb.EntryType, data []byte) {
			got = append(got, raftpb.Entry{Index: index, Type: typ, Data: bytes.Clone(data)})
		})
		var md pb.Metadata
		var last uint64
		if r != nil {
			md, last = *r.md, r.last
		}
		var wantMD pb.Metadata
		wantMD.Unmarshal(metadata)
		if err != nil || md.NodeID != wantMD.NodeID || md.ClusterID != wantMD.ClusterID || md.NodeID == 0 || len(want) == 0 || last != want[len(want)-1].Index || len(got) != len(want) {
			t.Fatalf("%s: %v, metadata %+v (want %+v), last %d, %d entries (want %d)", what, err, md, wantMD, last, len(got), len(want))
		}
		for i := range want {
			if got[i].Index != want[i].Index || got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("%s: entry %d differs", what, want[i].Index)
			}
		}
		t.Logf("%s: %d entries after the snapshot at %d, up to %d", what, len(got), s.Metadata.Index, last)
	}
	compare("whole")

	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	slices.Sort(names)
	tail := names[len(names)-1]
	b, err := os.ReadFile(tail)
	if err != nil {
		t.Fatal(err)
	}
	end := len(bytes.TrimRight(b, "\x00"))
	if err := os.Truncate(tail, int64(end-40)); err != nil { // the last record, cut short
		t.Fatal(err)
	}
	compare("torn")
}
