// Package member changes etcd cluster membership (add as learner or voter, fix peer URLs, promote,
// remove) idempotently and more safely than the etcdctl commands it replaces. Every decision is taken
// from the live member list and etcd's typed errors, never from command output text: a re-run after an
// interruption finds what the last run did and carries on from there.
package member

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// States a Spec can ask for.
const (
	Present  = "present"
	Promoted = "promoted"
	Absent   = "absent"
	Leader   = "leader"
)

// Spec is the membership a task asks for.
type Spec struct {
	State string // Present (default), Promoted, Absent or Leader
	// Name is the member's etcd name (--name). Present needs it; Promoted and Absent may select by it.
	Name string
	// PeerURLs are the member's peer URLs. Present needs them; Promoted and Absent may select by them.
	// Compared as sets after normalisation (lower-case scheme and host, no trailing slash).
	PeerURLs []string
	// ID selects a member by its hex id as etcdctl prints it (Promoted, Absent).
	ID string
	// Learner adds the member as a non-voting learner (etcd ≥ 3.4); false adds a voter. With
	// LearnerIfSupported, a cluster older than 3.4 gets a voter instead of a refusal.
	Learner, LearnerIfSupported bool
	// Force skips this package's quorum check before removing a voter. etcd's own strict
	// reconfiguration check (on by default) still applies.
	Force bool
	// Timeout bounds waiting: for a learner to catch up before promotion, for a named member to
	// appear after its first start, and for etcd's transient "unhealthy cluster" refusals to clear.
	Timeout time.Duration
}

// Info describes one member, with the id in hex as etcdctl prints it.
type Info struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
	// Started is false for a member that was added but has not yet joined (etcd shows it with no
	// name and no client URLs; etcdctl prints "unstarted").
	Started bool `json:"started"`
}

// Result is what Ensure reports; the JSON keys become the module's return values.
type Result struct {
	// Operation is what was done (or, in check mode, would be done): added, updated, promoted,
	// removed, leader_moved or none. (Not "action": Ansible's callbacks put the module name under that key.)
	Operation string `json:"operation"`
	// Member is the member the task is about, after the change (absent: the removed member).
	Member *Info `json:"member,omitempty"`
	// Members is the member list after the change.
	Members []Info `json:"members"`
	// InitialCluster is name=peerurl for every member including the new one, in etcd's order
	// (state present only).
	InitialCluster string `json:"initial_cluster,omitempty"`
	// Env is what `etcdctl member add` prints for the new member's etcd.conf (state present only).
	Env map[string]string `json:"env,omitempty"`
	// LeaderMovedTo names the member the leadership moved to: before the removal of the leader (state
	// absent; "" when the removed member did not lead), or the selected member (state leader).
	LeaderMovedTo string `json:"leader_moved_to,omitempty"`
}

// Validate checks a Spec without contacting etcd; errors name the parameter and the fix.
func (s *Spec) Validate() error {
	if s.State == "" {
		s.State = Present
	}
	for i, u := range s.PeerURLs {
		n, err := normalizeURL(u)
		if err != nil {
			return &module.ParamError{Param: "peer_urls", Msg: err.Error()}
		}
		s.PeerURLs[i] = n
	}
	if s.ID != "" {
		if _, err := parseID(s.ID); err != nil {
			return err
		}
	}
	if s.Timeout <= 0 {
		return &module.ParamError{Param: "timeout", Msg: "must be greater than 0, e.g. 60s"}
	}
	switch s.State {
	case Present:
		if s.Name == "" {
			return &module.ParamError{Param: "name", Msg: "is required with state: present; give the new member's etcd name (ETCD_NAME)"}
		}
		if len(s.PeerURLs) == 0 {
			return &module.ParamError{Param: "peer_urls", Msg: "is required with state: present; give the new member's peer URL, e.g. https://10.0.0.4:2380"}
		}
		if s.ID != "" {
			return &module.ParamError{Param: "id", Msg: "cannot be chosen for a new member (etcd assigns it); drop id with state: present"}
		}
	case Promoted, Absent, Leader:
		if err := module.Exclusive(map[string]bool{"name": s.Name != "", "peer_urls": len(s.PeerURLs) > 0, "id": s.ID != ""}); err != nil {
			return err
		}
		if s.Name == "" && len(s.PeerURLs) == 0 && s.ID == "" {
			return &module.ParamError{Param: "name", Msg: fmt.Sprintf("state: %s needs the member: set name, peer_urls or id", s.State)}
		}
	default:
		return &module.ParamError{Param: "state", Msg: fmt.Sprintf("%q is not one of present, promoted, absent, leader", s.State)}
	}
	return nil
}

func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
	if err != nil || id == 0 {
		return 0, &module.ParamError{Param: "id", Msg: fmt.Sprintf("%q is not a member id; give it in hex as `etcdctl member list` prints it, e.g. 8e9e05c52164694d", s)}
	}
	return id, nil
}

// Ensure brings the membership to what spec asks for, through the cluster conn reaches.
func Ensure(ctx context.Context, t *module.Task, conn *etcdconn.Options, spec Spec) (*Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cli, err := conn.V3()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	c := newCluster(cli, conn, t, spec)
	defer c.closeSingle()
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	before := c.view()
	var res *Result
	switch spec.State {
	case Present:
		res, err = c.present(ctx)
	case Promoted:
		res, err = c.promoted(ctx)
	case Absent:
		res, err = c.absent(ctx)
	case Leader:
		res, err = c.leader(ctx)
	}
	if err != nil {
		return nil, err
	}
	if res.Operation != "none" {
		t.Changed()
	}
	t.SetDiff(map[string]any{"members": memberLines(before)}, map[string]any{"members": memberLines(res.Members)})
	return res, nil
}

// cluster is one task's view of the cluster: the client and the last member list read.
type cluster struct {
	cli     *clientv3.Client
	conn    *etcdconn.Options
	task    *module.Task
	spec    Spec
	members []*etcdserverpb.Member
	single  map[string]*clientv3.Client // one-endpoint clients for member list reads, by endpoint
	failed  map[string]bool             // endpoints a member list read failed on
}

func newCluster(cli *clientv3.Client, conn *etcdconn.Options, t *module.Task, spec Spec) *cluster {
	return &cluster{cli: cli, conn: conn, task: t, spec: spec, single: map[string]*clientv3.Client{},
		failed: map[string]bool{}}
}

func (c *cluster) view() []Info {
	out := make([]Info, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, info(m))
	}
	return out
}

func info(m *etcdserverpb.Member) Info {
	id := ""
	if m.ID != 0 { // 0: a member check mode predicts; etcd assigns the id when it adds it
		id = fmt.Sprintf("%x", m.ID)
	}
	return Info{ID: id, Name: m.Name, PeerURLs: nonNil(m.PeerURLs),
		ClientURLs: nonNil(m.ClientURLs), IsLearner: m.IsLearner, Started: started(m)}
}

// started: a member publishes its name (and client URLs) once it has joined; until then etcd lists
// it nameless, which is how an interrupted add is recognised on the next run.
func started(m *etcdserverpb.Member) bool { return m.Name != "" }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// memberLines renders members one line each for the diff, like `etcdctl member list`.
func memberLines(ms []Info) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		status, name := "started", m.Name
		if !m.Started {
			status = "unstarted"
		}
		id := m.ID
		if id == "" {
			id = "(new)"
		}
		out = append(out, fmt.Sprintf("%s, %s, %s, %s, %s, %t", id, status, name,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), m.IsLearner))
	}
	return out
}

// selected returns the member a promoted/absent spec names (by id, exact peer URL set or name), or nil.
func (c *cluster) selected() *etcdserverpb.Member {
	switch {
	case c.spec.ID != "":
		id, _ := parseID(c.spec.ID)
		for _, m := range c.members {
			if m.ID == id {
				return m
			}
		}
		return nil
	case len(c.spec.PeerURLs) > 0:
		return c.byPeerURLs(c.spec.PeerURLs)
	default:
		return c.byName(c.spec.Name)
	}
}

func (c *cluster) byPeerURLs(urls []string) *etcdserverpb.Member {
	for _, m := range c.members {
		if sameURLs(m.PeerURLs, urls) {
			return m
		}
	}
	return nil
}

func (c *cluster) byName(name string) *etcdserverpb.Member {
	for _, m := range c.members {
		if m.Name == name {
			return m
		}
	}
	return nil
}
