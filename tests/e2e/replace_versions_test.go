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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	old, fresh := l.Members(), freshHosts(l)
	before := map[string]string{}
	putKeys(ctx, t, l.V3Client(t, old...), before, 300, "/replace/before")

	w := startWriter(t, l, append(append([]*lab.Host{}, old...), fresh...))
	res := playbook(t, l, "replace_nodes.yml", nil)
	wr := w.stop()
	mustSucceed(t, res)
	joined := res.Find("etcdops.etcd.etcd_member_join : Add the member as a learner (a voter before etcd 3.4): " + fresh[0].Name)
	var join struct {
		Member struct {
			IsLearner bool `json:"is_learner"`
		} `json:"member"`
	}
	if len(joined) != 1 || joined[0].Decode(&join) != nil {
		t.Fatalf("the add task's result for %s: %v", fresh[0].Name, joined)
	}
	if wantLearner := version != "3.2"; join.Member.IsLearner != wantLearner {
		t.Errorf("etcd %s: %s added with is_learner %v, want %v", version, fresh[0].Name, join.Member.IsLearner, wantLearner)
	}
	newCli := checkMoved(ctx, t, l, wr, before, old, fresh)
	step("etcd %s: moved onto %d new hosts in %s (added as learners: %v); writer: %d writes acknowledged, %d failed, %s, longest write %s; members %s",
		version, len(fresh), res.Duration.Round(time.Second), join.Member.IsLearner, len(wr.acked), len(wr.failed), wr.retries(), wr.longest, memberIDs(ctx, t, newCli))
}
