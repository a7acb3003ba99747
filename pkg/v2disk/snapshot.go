package v2disk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"go.etcd.io/etcd/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// Snapshot is a member's v2 snapshot, mapped read-only: store is the v2 store as JSON (a view
// into the mapping, valid until close), meta says which raft entry it ends at.
type Snapshot struct {
	name  string
	mem   []byte
	store []byte
	meta  raftpb.SnapshotMetadata
}

// Close unmaps the snapshot (nil: nothing to close); Store is invalid afterwards.
func (f *Snapshot) Close() {
	if f != nil && f.mem != nil {
		_ = syscall.Munmap(f.mem)
		f.mem, f.store = nil, nil
	}
}

// Store is the v2 store as JSON, as etcd's store.Save wrote it: a view into the mapping.
func (f *Snapshot) Store() []byte { return f.store }

// Entry is the raft entry the snapshot ends at (index, term).
func (f *Snapshot) Entry() (index, term uint64) { return f.meta.Index, f.meta.Term }

// newestSnapshot opens the newest intact v2 snapshot in snapDir (a member's member/snap), nil when
// there is none. It checks the CRC as etcd does and falls back to the previous snapshot when the
// newest is torn or unfinished.
//
// It does not use etcd's snap.Load, which is made for a stopped member: it renames a snapshot it
// cannot read to *.broken (a running member may be writing it at that moment, in place) and deletes
// db.tmp* files (a running member's defragmentation in progress). It also copies the file into
// memory three times; a mapping costs no heap.
func newestSnapshot(snapDir string) (*Snapshot, error) {
	ents, err := os.ReadDir(snapDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".snap") { // term-index.snap: newest last by name
			names = append(names, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var failures []string
	for _, name := range names {
		f, err := openSnapshot(filepath.Join(snapDir, name))
		if err == nil {
			return f, nil
		}
		failures = append(failures, fmt.Sprintf("%s: %v", name, err))
	}
	if len(failures) > 0 {
		return nil, fmt.Errorf("no readable v2 snapshot in %s (%s)", snapDir, strings.Join(failures, "; "))
	}
	return nil, nil
}

// A snapshot file is a snappb.Snapshot {1: crc, 2: data}; data is a raftpb.Snapshot {1: the v2 store
// as JSON, 2: metadata}, and the CRC (Castagnoli) covers all of data.
var snapCRCTable = crc32.MakeTable(crc32.Castagnoli)

func openSnapshot(file string) (*Snapshot, error) {
	fd, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, errors.New("empty")
	}
	mem, err := syscall.Mmap(int(fd.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	f := &Snapshot{name: filepath.Base(file), mem: mem}
	if err := f.parse(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *Snapshot) parse() error {
	outer, err := protoPick(f.mem, 1, 2)
	crc, data := uint32(outer[0].v), outer[1].b
	switch {
	case err != nil:
		return err
	case len(data) == 0 || crc == 0:
		return errors.New("empty or unfinished")
	case crc32.Checksum(data, snapCRCTable) != crc:
		return errors.New("CRC mismatch (torn or unfinished)")
	}
	inner, err := protoPick(data, 1, 2)
	if err != nil {
		return err
	}
	f.store = inner[0].b
	if err := f.meta.Unmarshal(inner[1].b); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

// protoField is one field's value: a varint in v, bytes in b (a view).
type protoField struct {
	v uint64
	b []byte
}

// protoPick reads the fields numbered nums of a protobuf message, in that order (absent: zero).
func protoPick(m []byte, nums ...protowire.Number) ([]protoField, error) {
	out := make([]protoField, len(nums))
	err := protoFields(m, func(num protowire.Number, v uint64, b []byte) {
		for i, n := range nums {
			if n == num {
				out[i] = protoField{v, b}
			}
		}
	})
	return out, err
}

// protoFields calls fn for every field of a protobuf message: varints as v, bytes as b (a view).
func protoFields(m []byte, fn func(num protowire.Number, v uint64, b []byte)) error {
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
		var v uint64
		var b []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(m)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(m)
		default:
			n = protowire.ConsumeFieldValue(num, typ, m)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
		fn(num, v, b)
	}
	return nil
}

// storePaths calls fn with every node path in the v2 store JSON of a snapshot, as it stands there
// (JSON-escaped; see unquotePath). It scans for the nodes' "Path" keys instead of decoding the store.
// A value cannot fake the key: inside a JSON string every quote is escaped, so `"Path":"` only
// appears where a path begins.
func storePaths(store []byte, fn func(raw []byte) error) error {
	key := []byte(`"Path":"`)
	for i := 0; ; {
		j := bytes.Index(store[i:], key)
		if j < 0 {
			return nil
		}
		start := i + j + len(key) // the path's first byte
		end := start
		for end < len(store) && store[end] != '"' {
			if store[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(store) {
			return fmt.Errorf("a path at byte %d is not closed", start)
		}
		if err := fn(store[start:end]); err != nil {
			return fmt.Errorf("the path at byte %d: %w", start, err)
		}
		i = end + 1
	}
}

// unquotePath decodes a path as storePaths hands it over.
func unquotePath(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), nil
	}
	var p string
	err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &p)
	return p, err
}

// StoreDirs counts, from the paths in a snapshot, each directory's children (store paths, raw),
// and which directories hold directories.
type StoreDirs struct {
	children map[string]*int
	nested   map[string]bool
}

func (d *StoreDirs) add(raw []byte) {
	i := bytes.LastIndexByte(raw, '/')
	if i <= 0 {
		return // the root, or a top-level node of the store (/0, /1)
	}
	parent := raw[:i]
	if bytes.IndexByte(parent, '\\') >= 0 { // escaped (a quote, <, >, & …): keyed as the API names it
		if p, err := unquotePath(parent); err == nil {
			parent = []byte(p)
		}
	}
	if n := d.children[string(parent)]; n != nil { // lookups by string(bytes) do not allocate
		*n++
	} else {
		one := 1
		d.children[string(parent)] = &one
	}
	if j := bytes.LastIndexByte(parent, '/'); j > 0 && !d.nested[string(parent[:j])] {
		d.nested[string(parent[:j])] = true
	}
}

// Has reports whether the snapshot holds something under the directory dir (an API path).
func (d *StoreDirs) Has(dir string) bool {
	return dir == "/" || d.children[StoreKeysPrefix+dir] != nil
}

// Hoist replaces the written children of a directory by the directory itself when they are at
// least half of its children and it holds no directories: one listing instead of a request per key
// (events and leases are written directory by directory).
func (d *StoreDirs) Hoist(written []string) []string {
	byParent := map[string][]string{}
	for _, w := range written {
		byParent[path.Dir(w)] = append(byParent[path.Dir(w)], w)
	}
	var out []string
	for parent, kids := range byParent {
		sp := StoreKeysPrefix + parent
		if n := d.children[sp]; parent != "/" && n != nil && !d.nested[sp] && 2*len(kids) >= *n {
			out = append(out, parent)
		} else {
			out = append(out, kids...)
		}
	}
	sort.Strings(out)
	return out
}

// CheckSnapshot reads a v2 snapshot file as etcd does on start: whole, its CRC matching.
func CheckSnapshot(file string) error {
	f, err := openSnapshot(file)
	f.Close()
	return err
}
