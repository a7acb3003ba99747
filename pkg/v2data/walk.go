// Package v2data reads, copies and digests an etcd v2 keyspace: a concurrent directory-by-directory
// walk (never one response holding the whole store), hidden-key discovery from a member's data dir,
// copies into a v2 or v3 destination, and a verification that compares counts and content digests.
package v2data

import (
	"context"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/etcdops/etcd/pkg/v2disk"
)

// Node is one v2 node as the walk sees it.
type Node struct {
	Key   string
	Dir   bool
	Value string
	// Expiration is the node's own v2 TTL deadline (zero: none).
	Expiration time.Time
	// Expiry is the earliest expiration of the node or any ancestor directory (zero: never): the
	// moment the node disappears from the source, and what a copy must preserve.
	Expiry time.Time
	// Hidden: some segment of the path starts with "_", so listings never show it.
	Hidden bool
}

// Scope is the part of the keyspace a walk covers: whole path segments under Prefixes, minus Exclude.
type Scope struct {
	Prefixes []string
	Exclude  []string
}

// Normalize cleans the paths (v2 cleans them too) and defaults Prefixes to the whole keyspace.
func (s Scope) Normalize() Scope {
	out := Scope{}
	for _, p := range s.Prefixes {
		out.Prefixes = append(out.Prefixes, path.Clean("/"+p))
	}
	if len(out.Prefixes) == 0 {
		out.Prefixes = []string{"/"}
	}
	for _, p := range s.Exclude {
		out.Exclude = append(out.Exclude, path.Clean("/"+p))
	}
	return out
}

// Excluded reports whether key is under an exclude prefix.
func (s Scope) Excluded(key string) bool {
	for _, e := range s.Exclude {
		if under(key, e) {
			return true
		}
	}
	return false
}

// Contains reports whether key is in scope.
func (s Scope) Contains(key string) bool {
	if s.Excluded(key) {
		return false
	}
	for _, p := range s.Prefixes {
		if under(key, p) {
			return true
		}
	}
	return false
}

// under: key is dir itself or inside it (whole segments: /a/b is not under /a/bc).
func under(key, dir string) bool {
	return dir == "/" || key == dir || strings.HasPrefix(key, dir+"/")
}

// walker lists a v2 keyspace directory by directory with several concurrent readers.
type walker struct {
	reader *v2Reader
	Scope  Scope
	// Hidden returns the known paths with hidden segments (see HiddenPaths; nil: none). Listings
	// never show them, so the walk fetches each by name once its parent directory was walked. It runs
	// beside the first pass, which needs no names: finding them reads a whole member log.
	Hidden func() ([]string, error)
	// AboveVisited: the caller visits the directories above the prefixes itself (see parent).
	AboveVisited bool
	Concurrency  int
	// Timeout bounds one request.
	Timeout time.Duration

	// found holds what Hidden returned, once a walk has finished.
	found []string
	above ancestry
}

// ancestry holds the directories above a walk's prefixes, each read once.
type ancestry struct {
	mu sync.Mutex
	m  map[string]*ancestor
}

type ancestor struct {
	once sync.Once
	node *Node // nil: absent
	err  error
}

func (a *ancestry) get(key string) *ancestor {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]*ancestor{}
	}
	if a.m[key] == nil {
		a.m[key] = &ancestor{}
	}
	return a.m[key]
}

// visitFunc receives children of one directory (leaves with values; directories without children):
// all that a listing shows in one call, then any hidden ones. The walk lists a child directory only
// after the visit that handed it over returned, so a copy can create a directory before anything
// inside it. Visits run concurrently.
type visitFunc func(ctx context.Context, dir Node, children []Node) error

// Walk visits every node in scope: first what the listings show, then the hidden nodes, shallowest
// first (a hidden directory may hold more), each in a directory the walk listed.
func (w *walker) Walk(ctx context.Context, visit visitFunc) error {
	scope := w.Scope.Normalize()
	type names struct {
		paths []string
		err   error
	}
	discovered := make(chan names, 1)
	go func() {
		var n names
		if w.Hidden != nil {
			n.paths, n.err = w.Hidden()
		}
		discovered <- n
	}()
	listed := &dirSet{m: map[string]Node{}}

	roots, err := w.prefixes(ctx, scope, visit)
	if err != nil {
		return err
	}
	if err := w.walk(ctx, roots, scope, listed, visit); err != nil {
		return err
	}

	var found names
	select {
	case found = <-discovered:
	case <-ctx.Done():
		return ctx.Err()
	}
	if found.err != nil {
		return found.err
	}
	w.found = found.paths
	for _, level := range hiddenLevels(found.paths) {
		roots = nil
		for _, parent := range level.parents {
			dir, ok := listed.get(parent)
			if !ok {
				continue // not walked: absent, out of scope, or reached as a prefix of its own
			}
			var kids []Node
			for _, name := range level.names[parent] {
				key := path.Join(parent, name)
				if !scope.Contains(key) {
					continue
				}
				n, err := w.get(ctx, key, dir)
				if err != nil {
					return err
				}
				if n != nil {
					kids = append(kids, *n)
				}
			}
			if len(kids) == 0 {
				continue
			}
			if err := visit(ctx, dir, kids); err != nil {
				return err
			}
			for _, k := range kids {
				if k.Dir {
					roots = append(roots, k)
				}
			}
		}
		if err := w.walk(ctx, roots, scope, listed, visit); err != nil {
			return err
		}
	}
	return nil
}

// prefixes reads the scope's prefixes, Concurrency at a time (a snapshot read may hand over
// thousands): each is a directory to list (returned), a single node (visited), or absent.
func (w *walker) prefixes(ctx context.Context, scope Scope, visit visitFunc) ([]Node, error) {
	var (
		mu    sync.Mutex
		roots []Node
		first error
		wg    sync.WaitGroup
		next  = make(chan string)
	)
	for i := 0; i < min(max(w.Concurrency, 1), len(scope.Prefixes)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				parent, err := w.parent(ctx, p, scope, visit)
				var n *Node
				if err == nil {
					n, err = w.get(ctx, p, parent)
				}
				if err == nil && n != nil && p != "/" {
					err = visit(ctx, parent, []Node{*n})
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil && n != nil && n.Dir {
					roots = append(roots, *n)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range scope.Prefixes {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		if !scope.Excluded(p) {
			next <- p
		}
	}
	close(next)
	wg.Wait()
	return roots, first
}

// parent returns the directory above prefix p with the expiry it passes on. The v2 API shows a
// node's own TTL only, yet everything under a directory goes when it expires, so the directories
// between the root (which has none) and p are read, once each. Those with a TTL that are not in scope
// are visited too (once, unless AboveVisited): a v2 destination then recreates them with their TTL;
// a v3 one writes no directories, and leases the keys below.
func (w *walker) parent(ctx context.Context, p string, scope Scope, visit visitFunc) (Node, error) {
	if w.AboveVisited {
		visit = nil
	}
	up := Node{Key: "/", Dir: true}
	if p == "/" {
		return up, nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i := 1; i < len(segs); i++ {
		key := "/" + strings.Join(segs[:i], "/")
		a := w.above.get(key)
		a.once.Do(func() {
			if a.node, a.err = w.get(ctx, key, up); a.err != nil || a.node == nil {
				return
			}
			if visit != nil && !a.node.Expiration.IsZero() && !scope.Contains(key) && !scope.Excluded(key) {
				a.err = visit(ctx, up, []Node{*a.node})
			}
		})
		if a.err != nil {
			return Node{}, a.err
		}
		if a.node == nil || !a.node.Dir {
			return Node{Key: path.Dir(p), Dir: true}, nil // absent (or a key): so is p
		}
		up = *a.node
	}
	return up, nil
}

// walk lists the trees under roots with Concurrency workers, depth first, and records every
// directory it lists.
func (w *walker) walk(ctx context.Context, roots []Node, scope Scope, listed *dirSet, visit visitFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		queue   []Node
		pending int
		first   error
		wake    = sync.NewCond(&mu)
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		wake.Broadcast()
		mu.Unlock()
	}
	push := func(dirs ...Node) {
		mu.Lock()
		queue = append(queue, dirs...)
		pending += len(dirs)
		wake.Broadcast()
		mu.Unlock()
	}
	push(roots...)

	var wg sync.WaitGroup
	for i := 0; i < max(w.Concurrency, 1); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(queue) == 0 && pending > 0 && first == nil {
					wake.Wait()
				}
				if first != nil || pending == 0 {
					mu.Unlock()
					return
				}
				dir := queue[len(queue)-1] // depth first keeps the queue short
				queue = queue[:len(queue)-1]
				mu.Unlock()

				kids, err := w.list(ctx, dir, scope, nil)
				if err == nil {
					listed.add(dir)
					err = visit(ctx, dir, kids)
				}
				if err != nil {
					fail(err)
					return
				}
				var sub []Node
				for _, k := range kids {
					if k.Dir {
						sub = append(sub, k)
					}
				}
				push(sub...)
				mu.Lock()
				pending--
				wake.Broadcast()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// dirSet records the directories a walk listed, with their inherited expiry, for the hidden pass.
type dirSet struct {
	mu sync.Mutex
	m  map[string]Node
}

func (d *dirSet) add(n Node) {
	d.mu.Lock()
	d.m[n.Key] = Node{Key: n.Key, Dir: true, Expiry: n.Expiry}
	d.mu.Unlock()
}

func (d *dirSet) get(key string) (Node, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.m[key]
	return n, ok
}

// list returns the in-scope children of dir: the listing plus its known hidden children.
func (w *walker) list(ctx context.Context, dir Node, scope Scope, hidden []string) ([]Node, error) {
	rctx, cancel := context.WithTimeout(ctx, w.Timeout)
	listed, err := w.reader.get(rctx, dir.Key)
	cancel()
	if err != nil || listed == nil { // absent: expired or deleted since its parent was listed
		return nil, err
	}
	var out []Node
	for _, c := range listed.Nodes {
		if n := fromV2(c, dir); scope.Contains(n.Key) {
			out = append(out, n)
		}
	}
	for _, name := range hidden {
		key := path.Join(dir.Key, name)
		if !scope.Contains(key) {
			continue
		}
		n, err := w.get(ctx, key, dir)
		if err != nil {
			return nil, err
		}
		if n != nil {
			out = append(out, *n)
		}
	}
	return out, nil
}

// get reads one node by name (nil when absent); parent supplies the inherited expiry.
func (w *walker) get(ctx context.Context, key string, parent Node) (*Node, error) {
	rctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	c, err := w.reader.get(rctx, key)
	if err != nil || c == nil {
		return nil, err
	}
	n := fromV2(c, parent)
	if key == "/" {
		n.Key = "/"
	}
	return &n, nil
}

func fromV2(c *clientv2.Node, parent Node) Node {
	n := Node{Key: c.Key, Dir: c.Dir, Value: c.Value, Expiry: parent.Expiry, Hidden: v2disk.IsHidden(c.Key)}
	if c.Expiration != nil {
		n.Expiration = *c.Expiration
		if n.Expiry.IsZero() || c.Expiration.Before(n.Expiry) {
			n.Expiry = *c.Expiration
		}
	}
	return n
}

// hiddenLevel is the hidden nodes at one depth, by parent directory.
type hiddenLevel struct {
	parents []string            // sorted
	names   map[string][]string // parent → hidden names in it
}

// hiddenLevels groups the hidden nodes that full paths pass through by depth, shallowest first:
// /a/_h/b/_x gives /a/_h at depth 2 and /a/_h/b/_x at depth 4.
func hiddenLevels(paths []string) []hiddenLevel {
	seen := map[string]bool{}
	byDepth := map[int]*hiddenLevel{}
	for _, p := range paths {
		segs := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
		for i, s := range segs {
			if !strings.HasPrefix(s, "_") {
				continue
			}
			parent := "/" + strings.Join(segs[:i], "/")
			full := path.Join(parent, s)
			if seen[full] {
				continue
			}
			seen[full] = true
			l := byDepth[i]
			if l == nil {
				l = &hiddenLevel{names: map[string][]string{}}
				byDepth[i] = l
			}
			if l.names[parent] == nil {
				l.parents = append(l.parents, parent)
			}
			l.names[parent] = append(l.names[parent], s)
		}
	}
	depths := make([]int, 0, len(byDepth))
	for d := range byDepth {
		depths = append(depths, d)
	}
	sort.Ints(depths)
	out := make([]hiddenLevel, 0, len(depths))
	for _, d := range depths {
		sort.Strings(byDepth[d].parents)
		out = append(out, *byDepth[d])
	}
	return out
}
