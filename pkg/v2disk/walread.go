package v2disk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// WAL record types (etcd's wal package).
const (
	walMetadata = 1
	walEntry    = 2
	walState    = 3
	walCRC      = 4
	walSnapshot = 5
)

// walEntryFunc receives one raft entry after the snapshot; data is only valid during the call.
type walEntryFunc func(index uint64, typ raftpb.EntryType, data []byte)

// readWAL reads a member's WAL from the segment holding the snapshot at snapIndex (term snapTerm)
// onward, as etcd's wal package does in read mode (OpenForRead, ReadAll): the same segments, CRC
// chain and snapshot record, stopping at the end of what was written or at a torn last record. It
// hands over the entries after the snapshot one at a time instead of returning them all: ReadAll
// holds them in memory, and on a member that wrote much since its last snapshot that is the
// keyspace again. It returns the reader once it has read to the end: the member's metadata, the last
// entry (the snapshot's when none follows) and the newest hard state's commit.
func readWAL(dir string, snapIndex, snapTerm uint64, fn walEntryFunc) (*walReader, error) {
	files, err := walSegments(dir, snapIndex)
	if err != nil {
		return nil, err
	}
	r := &walReader{snapIndex: snapIndex, snapTerm: snapTerm, last: snapIndex, lastTerm: snapTerm, fn: fn, md: &pb.Metadata{}}
	if err := r.read(dir, files); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *walReader) read(dir string, files []string) error {
	for i, f := range files {
		done, err := r.segment(filepath.Join(dir, f), i == len(files)-1)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if done {
			break
		}
	}
	if !r.matched {
		return fmt.Errorf("the WAL in %s holds no record of the snapshot at index %d", dir, r.snapIndex)
	}
	return nil
}

// WALMember reads a member's metadata (node and cluster ids) from the head of its newest WAL
// segment: every segment begins with it.
func WALMember(dir string) (pb.Metadata, error) {
	var md pb.Metadata
	files, err := walSegments(dir, math.MaxUint64)
	if err != nil {
		return md, err
	}
	r := &walReader{snapIndex: math.MaxUint64, fn: func(uint64, raftpb.EntryType, []byte) {}, md: &md, untilMetadata: true}
	if _, err := r.segment(filepath.Join(dir, files[0]), true); err != nil {
		return md, err
	}
	if md.NodeID == 0 {
		return md, fmt.Errorf("the WAL in %s names no member", dir)
	}
	return md, nil
}

// walSegments lists the segments to read: the last one starting at or before index, and all after
// it, in an unbroken sequence.
func walSegments(dir string, index uint64) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type segment struct {
		name       string
		seq, start uint64
	}
	var segs []segment
	for _, e := range ents {
		var s segment
		if n, _ := fmt.Sscanf(e.Name(), "%016x-%016x.wal", &s.seq, &s.start); n == 2 && strings.HasSuffix(e.Name(), ".wal") {
			s.name = e.Name()
			segs = append(segs, s)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	first := -1
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].start <= index {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("no WAL segment in %s covers index %d", dir, index)
	}
	var names []string
	for i := first; i < len(segs); i++ {
		if i > first && segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("WAL segments in %s are not in sequence: %s after %s", dir, segs[i].name, segs[i-1].name)
		}
		names = append(names, segs[i].name)
	}
	return names, nil
}

type walReader struct {
	snapIndex, snapTerm uint64
	fn                  walEntryFunc
	md                  *pb.Metadata
	crc                 uint32
	matched             bool
	last, lastTerm      uint64 // the last entry after the snapshot (the snapshot's while none follows)
	commit              uint64 // the newest hard state's
	buf                 []byte
	untilMetadata       bool // stop once the metadata is read
}

var walCRCTable = crc32.MakeTable(crc32.Castagnoli)

// errPastEnd: a record's length runs past the end of its segment.
var errPastEnd = errors.New("a record runs past the end of the segment")

// segment reads one segment file; done: the WAL ended in it.
func (r *walReader) segment(file string, last bool) (done bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	// An incomplete record ends the last segment (it was being written); anywhere else it is damage.
	incomplete := func(err error) (bool, error) {
		if last && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errPastEnd)) {
			return true, nil
		}
		return false, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	for off := int64(0); ; {
		var frame [8]byte
		if _, err := io.ReadFull(br, frame[:]); err == io.EOF {
			return false, nil
		} else if err != nil {
			return incomplete(err)
		}
		lenField := int64(binary.LittleEndian.Uint64(frame[:]))
		if lenField == 0 {
			return false, nil // preallocated space: the segment ends here
		}
		size := int64(uint64(lenField) & ^(uint64(0xff) << 56))
		pad := int64(0)
		if lenField < 0 {
			pad = int64((uint64(lenField) >> 56) & 0x7)
		}
		if size > st.Size()-off-8-pad {
			return incomplete(fmt.Errorf("%w (%d bytes at offset %d)", errPastEnd, size, off))
		}
		if int64(cap(r.buf)) < size+pad {
			r.buf = make([]byte, size+pad)
		}
		data := r.buf[:size+pad]
		if _, err := io.ReadFull(br, data); err != nil {
			return incomplete(err)
		}
		if err := r.record(data[:size]); err != nil {
			if last && tornWrite(data, off+8) {
				return true, nil
			}
			return false, fmt.Errorf("the record at offset %d: %w", off, err)
		}
		off += 8 + size + pad
		if r.untilMetadata && r.md.NodeID != 0 {
			return true, nil
		}
	}
}

// tornWrite: a sector (512 bytes) of the record is all zeros, as when a write was cut short.
func tornWrite(data []byte, fileOff int64) bool {
	for len(data) > 0 {
		n := min(int(512-fileOff%512), len(data))
		zero := true
		for _, b := range data[:n] {
			if b != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
		data, fileOff = data[n:], fileOff+int64(n)
	}
	return false
}

// record checks one walpb.Record {1: type, 2: crc, 3: data} against the CRC chain and handles it.
func (r *walReader) record(rec []byte) error {
	f, err := protoPick(rec, 1, 2, 3)
	if err != nil {
		return err
	}
	typ, crc, data := f[0].v, f[1].v, f[2].b
	if typ == walCRC {
		if r.crc != 0 && uint32(crc) != r.crc {
			return errors.New("CRC mismatch at a segment boundary")
		}
		r.crc = uint32(crc)
		return nil
	}
	if r.crc = crc32.Update(r.crc, walCRCTable, data); r.crc != uint32(crc) {
		return errors.New("CRC mismatch")
	}
	switch typ {
	case walMetadata:
		return r.md.Unmarshal(data)
	case walState: // raftpb.HardState {1: term, 2: vote, 3: commit}
		f, err := protoPick(data, 3)
		if err == nil && f[0].v > 0 {
			r.commit = f[0].v
		}
		return err
	case walSnapshot: // walpb.Snapshot {1: index, 2: term}
		f, err := protoPick(data, 1, 2)
		if err == nil && f[0].v == r.snapIndex {
			if f[1].v != r.snapTerm {
				return fmt.Errorf("the snapshot record at index %d has term %d, the snapshot %d", f[0].v, f[1].v, r.snapTerm)
			}
			r.matched = true
		}
		return err
	case walEntry: // raftpb.Entry {1: type, 2: term, 3: index, 4: data}
		f, err := protoPick(data, 1, 2, 3, 4)
		if err == nil && f[2].v > r.snapIndex {
			r.last, r.lastTerm = f[2].v, f[1].v
			r.fn(f[2].v, raftpb.EntryType(f[0].v), f[3].b)
		}
		return err
	}
	return fmt.Errorf("unexpected record type %d", typ)
}
