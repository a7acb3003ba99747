package v2data

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/etcd/raft/v3/raftpb"
)

// newestSnapshotPaths scans the newest intact v2 snapshot in snapDir (a member's member/snap) for the
// store paths of possibly hidden nodes (see pathScan) and returns them with the snapshot's metadata (zero, and no paths, when there
// is none). It streams the file and checks its CRC as etcd does, falling back to the previous
// snapshot when the newest is torn or unfinished.
//
// It does not use etcd's snap.Load, which is made for a stopped member: it renames a snapshot it
// cannot read to *.broken (a running member may be writing it at that moment, in place) and deletes
// db.tmp* files (a running member's defragmentation in progress). It also holds three copies of the
// file in memory; this holds one buffer.
func newestSnapshotPaths(snapDir string) ([]string, raftpb.SnapshotMetadata, error) {
	ents, err := os.ReadDir(snapDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, raftpb.SnapshotMetadata{}, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".snap") { // term-index.snap, newest last by name
			names = append(names, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var failures []string
	for _, name := range names {
		paths, meta, err := snapshotPaths(filepath.Join(snapDir, name))
		if err == nil {
			return paths, meta, nil
		}
		failures = append(failures, fmt.Sprintf("%s: %v", name, err))
	}
	if len(failures) > 0 {
		return nil, raftpb.SnapshotMetadata{}, fmt.Errorf("no readable v2 snapshot in %s (%s)", snapDir, strings.Join(failures, "; "))
	}
	return nil, raftpb.SnapshotMetadata{}, nil
}

// A snapshot file is a snappb.Snapshot {1: crc, 2: data}; data is a raftpb.Snapshot {1: the v2 store
// as JSON, 2: metadata}, and the CRC (Castagnoli) covers all of data.
var snapCRCTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotPaths streams one snapshot file through the path scan.
func snapshotPaths(file string) ([]string, raftpb.SnapshotMetadata, error) {
	var meta raftpb.SnapshotMetadata
	f, err := os.Open(file)
	if err != nil {
		return nil, meta, err
	}
	defer f.Close()
	outer := &protoReader{r: bufio.NewReaderSize(f, 1<<16), left: -1}
	var (
		wantCRC, gotCRC uint32
		sawCRC, sawData bool
		scan            = &pathScan{}
	)
	for {
		field, wire, err := outer.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, meta, err
		}
		switch {
		case field == 1 && wire == 0:
			v, err := outer.varint()
			if err != nil {
				return nil, meta, err
			}
			wantCRC, sawCRC = uint32(v), true
		case field == 2 && wire == 2:
			n, err := outer.varint()
			if err != nil {
				return nil, meta, err
			}
			inner := &protoReader{r: outer.r, left: int64(n), crc: new(uint32)}
			if meta, err = snapshotData(inner, scan); err != nil {
				return nil, meta, err
			}
			gotCRC, sawData = *inner.crc, true
		default:
			if err := outer.skip(wire); err != nil {
				return nil, meta, err
			}
		}
	}
	switch {
	case !sawData || !sawCRC || wantCRC == 0:
		return nil, meta, errors.New("empty or unfinished snapshot")
	case gotCRC != wantCRC:
		return nil, meta, errors.New("CRC mismatch (torn or unfinished)")
	}
	return scan.paths, meta, nil
}

// snapshotData reads a raftpb.Snapshot: the store JSON goes through scan, the metadata is decoded.
func snapshotData(r *protoReader, scan *pathScan) (raftpb.SnapshotMetadata, error) {
	var meta raftpb.SnapshotMetadata
	for r.left > 0 {
		field, wire, err := r.tag()
		if err != nil {
			return meta, err
		}
		if wire != 2 || (field != 1 && field != 2) {
			if err := r.skip(wire); err != nil {
				return meta, err
			}
			continue
		}
		n, err := r.varint()
		if err != nil {
			return meta, err
		}
		if field == 2 {
			b := make([]byte, n)
			if err := r.full(b); err != nil {
				return meta, err
			}
			if err := meta.Unmarshal(b); err != nil {
				return meta, fmt.Errorf("metadata: %w", err)
			}
			continue
		}
		if err := scan.stream(r, int64(n)); err != nil {
			return meta, err
		}
	}
	return meta, nil
}

// protoReader reads protobuf fields from a stream: left bytes remain in this message (-1: to EOF),
// and crc, if set, runs over everything read.
type protoReader struct {
	r    *bufio.Reader
	left int64
	crc  *uint32
}

func (p *protoReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if p.left > 0 && int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	if p.left > 0 {
		p.left -= int64(n)
		if err == io.EOF && p.left > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if p.crc != nil {
		*p.crc = crc32.Update(*p.crc, snapCRCTable, b[:n])
	}
	return n, err
}

func (p *protoReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(p, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

func (p *protoReader) varint() (uint64, error) {
	v, err := binary.ReadUvarint(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

// tag returns the next field number and wire type; io.EOF only at a clean end.
func (p *protoReader) tag() (uint64, uint64, error) {
	v, err := binary.ReadUvarint(p)
	return v >> 3, v & 7, err
}

func (p *protoReader) full(b []byte) error {
	_, err := io.ReadFull(p, b)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (p *protoReader) skip(wire uint64) error {
	var n uint64
	switch wire {
	case 0:
		_, err := p.varint()
		return err
	case 1:
		n = 8
	case 2:
		var err error
		if n, err = p.varint(); err != nil {
			return err
		}
	case 5:
		n = 4
	default:
		return fmt.Errorf("unexpected protobuf wire type %d", wire)
	}
	_, err := io.CopyN(io.Discard, p, int64(n))
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// pathScan finds node paths in the v2 store JSON by their "Path" keys instead of decoding the
// store: a snapshot holds every value, and encoding/json needs seconds for a large one. A value
// cannot fake the key: inside a JSON string every quote is escaped, so `"Path":"` only appears where
// a path begins. Only paths that may have a hidden segment are kept: those holding "/_" (neither '/'
// nor '_' is ever escaped).
type pathScan struct {
	paths []string
	buf   []byte
}

var pathKey = []byte(`"Path":"`)

// stream scans n bytes of JSON from r, one buffer at a time; a path cut by the buffer's end is
// carried over to the next read.
func (s *pathScan) stream(r io.Reader, n int64) error {
	if s.buf == nil {
		s.buf = make([]byte, 1<<20)
	}
	kept := 0
	for n > 0 {
		if kept == len(s.buf) { // one path longer than the buffer
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := io.ReadFull(r, s.buf[kept:min(int64(len(s.buf)), int64(kept)+n)])
		if err != nil {
			return fmt.Errorf("store data: %w", err)
		}
		n -= int64(m)
		b := s.buf[:kept+m]
		done, err := s.scan(b, n == 0)
		if err != nil {
			return err
		}
		kept = copy(s.buf, b[done:])
	}
	return nil
}

// scan records the complete paths in b and returns how far it got: the start of a path (or of a
// possible key) that b cuts off, unless last.
func (s *pathScan) scan(b []byte, last bool) (int, error) {
	i := 0
	for {
		j := bytes.Index(b[i:], pathKey)
		if j < 0 {
			if last {
				return len(b), nil
			}
			return max(i, len(b)-len(pathKey)+1), nil
		}
		start := i + j + len(pathKey) - 1 // the path's opening quote
		end := start + 1
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(b) {
			if last {
				return 0, fmt.Errorf("a path in the store data is not closed")
			}
			return i + j, nil
		}
		raw := b[start+1 : end]
		if bytes.Contains(raw, []byte("/_")) {
			p := string(raw)
			if bytes.IndexByte(raw, '\\') >= 0 {
				if err := json.Unmarshal(b[start:end+1], &p); err != nil {
					return 0, fmt.Errorf("a path in the store data: %w", err)
				}
			}
			s.paths = append(s.paths, p)
		}
		i = end + 1
	}
}
