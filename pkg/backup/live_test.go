package backup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2disk"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// A member staged, then copied while a v2 writer keeps it busy (a snapshot every 20 entries, its WAL
// written all the time), starts from the restored copy with every key written before the backup, and the keys written
// during it as an unbroken prefix: the copy is a state the member had, as a crash would leave it.
func TestLiveCopyOfABusyMemberRestoresAndStarts(t *testing.T) {
	c := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "20"}})
	m := c.Members[0]
	o := c.ConnOptions()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	keys := clientv2.NewKeysAPI(v2)
	var written atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := keys.Set(ctx, fmt.Sprintf("/w/%06d", i), strings.Repeat("v", 100+i%500), nil)
			cancel()
			if err != nil {
				done <- err
				return
			}
			written.Store(int64(i + 1))
		}
	}()
	for written.Load() < 300 {
		time.Sleep(20 * time.Millisecond)
	}
	s := spec(c, t.TempDir())
	s.Live = true
	if _, err := Stage(&module.Task{}, s); err != nil {
		t.Fatal(err)
	}
	before := written.Load()
	r, err := Take(context.Background(), &module.Task{}, s)
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if err != nil || !r.Verified {
		t.Fatalf("take: %v", err)
	}
	lc := r.Manifest.Live
	if lc == nil || lc.Committed == 0 || lc.LastIndex < lc.Committed || lc.LastIndex < lc.ConsistentIndex ||
		lc.SnapshotIndex == 0 || lc.SnapshotIndex > lc.ConsistentIndex {
		t.Fatalf("live copy facts: %+v", lc)
	}
	if !c.Running(m) {
		t.Fatal("a live copy stopped the member")
	}
	t.Logf("live copy: %+v, %d files of the staging taken, %d keys written before it, %d in all", *lc, r.Manifest.StagedFiles, before, written.Load())

	c.Stop(m)
	if _, err := Restore(&module.Task{}, RestoreSpec{DataDir: m.DataDir, Path: r.Path, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	c.WaitReady(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := keys.Get(ctx, "/w", &clientv2.GetOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, n := range got.Node.Nodes {
		present[n.Key] = true
	}
	for i := 0; i < len(present); i++ {
		if !present[fmt.Sprintf("/w/%06d", i)] {
			t.Fatalf("key %d missing of %d restored: the copy is not a prefix of the writes", i, len(present))
		}
	}
	if int64(len(present)) < before {
		t.Fatalf("%d keys restored, %d were written before the backup", len(present), before)
	}
}

// A WAL copied while its last record was being written ends in a torn record: the check cuts it as etcd
// does on start and the copy then reads; a copy short of the member's commit index is refused.
func TestLiveCopyCheckCutsATornTail(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	for i := 0; i < 50; i++ {
		put(t, c, fmt.Sprintf("/k/%d", i), "v")
	}
	c.Stop(c.Members[0])
	dst := filepath.Join(t.TempDir(), "member")
	if _, _, err := copyTree(filepath.Join(c.Members[0].DataDir, memberDir), dst, stagedCopies{}); err != nil {
		t.Fatal(err)
	}
	whole, err := checkLiveCopy(dst, 0, 1)
	if err != nil || whole.TornTail {
		t.Fatalf("an intact copy: %+v %v", whole, err)
	}
	last, err := lastSegment(filepath.Join(dst, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dst, "wal", last)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The last record's frame was written, its data not yet (zeros), as a copy taken mid-write sees it.
	var lastRec, end int
	for end+8 <= len(b) {
		frame := int64(binary.LittleEndian.Uint64(b[end:]))
		if frame == 0 {
			break
		}
		size, pad := int(uint64(frame) & ^(uint64(0xff)<<56)), 0
		if frame < 0 {
			pad = int((uint64(frame) >> 56) & 0x7)
		}
		lastRec, end = end, end+8+size+pad
	}
	clear(b[lastRec+8 : end])
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cut, err := checkLiveCopy(dst, 0, 1)
	if err != nil || !cut.TornTail || cut.LastIndex > whole.LastIndex {
		t.Fatalf("the torn copy: %+v %v (intact: %+v)", cut, err, whole)
	}
	if _, err := os.Stat(seg + ".broken"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the uncut segment was left in the copy: %v", err)
	}
	if _, err := v2disk.LogPosition(filepath.Dir(dst)); err != nil {
		t.Fatalf("the cut copy does not read: %v", err)
	}
	if _, err := checkLiveCopy(dst, whole.LastIndex+1, 1); err == nil || !strings.Contains(err.Error(), "commit index") {
		t.Fatalf("a copy short of the commit index: %v", err)
	}
}
