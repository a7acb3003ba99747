package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// replace_nodes.yml on the etcd versions besides Debian's 3.4, which TestReplaceNodes covers (make
// soak): 3.2, OpenShift 3.x's (no learners: each new host joins as a voter, one at a time), and 3.6.
// One lab per version: 3 members (also masters) moved onto 3 fresh hosts in one run while the writer
// of TestReplaceNodes writes through all six endpoints: no write fails, none is lost, every key written
// before is intact, and the end state is TestReplaceNodes'.
func TestSoakReplaceVersions(t *testing.T) {
	soak(t)
	for _, version := range []string{"3.2", "3.6"} {
		t.Run(version, func(t *testing.T) { replaceOn(t, version) })
	}
}

func replaceOn(t *testing.T, version string) {
	step := stepLogger(t)
	l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true, Etcd: version, Groups: map[string]int{"new_etcd": 3}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	old, fresh := l.Members(), freshHosts(l)
	before := map[string]string{}
	putKeys(ctx, t, l.V3Client(t, old...), before, 300, "/replace/before")

	w := startWriter(t, l, append(append([]*lab.Host{}, old...), fresh...))
	res := runPlaybookWithin(t, l, "replace_nodes.yml", lab.Run{}, time.Hour) // 20 min was not enough at load 40
	wr := w.stop()
	mustSucceed(t, res)
	learner := checkJoinedAs(t, res, fresh[0], version)
	newCli := checkMoved(ctx, t, l, wr, before, old, fresh)
	step("etcd %s: moved onto %d new hosts in %s (added as learners: %v); writer: %d writes acknowledged, %d failed, %s, longest write %s; members %s",
		version, len(fresh), res.Duration.Round(time.Second), learner, len(wr.acked), len(wr.failed), wr.retries(), wr.longest, memberIDs(ctx, t, newCli))
}
