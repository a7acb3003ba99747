package v2data

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Batches cut by concurrent walkers never exceed the op or byte limits (the server refuses a txn
// over --max-txn-ops), and no item is lost.
func TestBatchesRespectLimits(t *testing.T) {
	d := &v3Dest{maxOps: 4, maxBytes: 100, batches: make(chan []item)}
	var got [][]item
	collected := make(chan struct{})
	go func() { // a slow consumer, as busy writers are: senders wait while others keep enqueueing
		for b := range d.batches {
			got = append(got, b)
			time.Sleep(50 * time.Microsecond)
		}
		close(collected)
	}()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				v := strings.Repeat("v", (w*7+i)%40)
				if err := d.enqueue(context.Background(), item{key: fmt.Sprintf("/k/%d/%d", w, i), value: v}); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(d.batches)
	<-collected
	total := len(d.pending)
	for _, b := range got {
		size := 0
		for _, it := range b {
			size += len(it.key) + len(it.value)
		}
		if len(b) > 4 || (len(b) > 1 && size > 100) {
			t.Fatalf("batch of %d items, %d bytes", len(b), size)
		}
		total += len(b)
	}
	if total != 4000 {
		t.Fatalf("%d items batched, want 4000", total)
	}
}
