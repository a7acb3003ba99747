// Package e2e runs playbooks with real ansible-playbook over SSH against the lab (lab/, docs/lab.md)
// and checks what they did with etcd clients and inside the hosts.
package e2e

import (
	"context"
	"fmt"
	"log"
	"os"
	"testing"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
)

// One lab per test binary (a lab starts in seconds, but CI has 2 cores): 3 etcd hosts that are also
// masters, seeded with OpenShift-shaped v2 data. Tests leave it whole for the next one.
var (
	shared   *lab.Lab
	manifest *dataset.Manifest
)

const seedKeys = 500

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped, the lab needs root")
		os.Exit(0)
	}
	var err error
	shared, err = lab.Create(lab.Spec{Name: fmt.Sprintf("e2e-%d", os.Getpid()), Hosts: 3, Masters: true}, log.Printf)
	if err != nil {
		log.Fatalf("lab: %v", err)
	}
	code := 1
	if manifest, err = shared.SeedV2(context.Background(), seedKeys, 1); err != nil {
		log.Printf("seed: %v", err)
	} else {
		code = m.Run()
	}
	if err := shared.Destroy(); err != nil {
		log.Printf("lab teardown: %v", err)
		code = 1
	}
	os.Exit(code)
}
