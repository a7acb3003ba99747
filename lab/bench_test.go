package lab

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// A 3-host lab from the cached base: boot, etcd healthy, inventory written — then torn down.
func BenchmarkUpDown3(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	EnsureBase(DefaultCache, b.Logf) // a first-run debootstrap is not what this measures
	for i := 0; i < b.N; i++ {
		l, err := Create(Spec{Name: fmt.Sprintf("b%d-%d", os.Getpid(), i), Hosts: 3, Masters: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}

// Seeding 2000 OpenShift-shaped v2 keys (≈6.7 MiB) into a 3-member lab with dataset.Writers writers.
func BenchmarkSeedV2(b *testing.B) {
	l := Up(b, Spec{Hosts: 3})
	b.ResetTimer()
	keys := 0
	for i := 0; i < b.N; i++ {
		m, err := l.SeedV2(context.Background(), 2000, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		keys += m.Count.Keys
		b.SetBytes(m.Count.Bytes)
	}
	b.ReportMetric(float64(keys)/b.Elapsed().Seconds(), "keys/s")
}
