// Package snapshot saves, inspects and restores etcd v3 snapshots on etcd's own etcdutl snapshot
// package: a save through one member's client endpoint written under a temporary name, synced,
// verified and renamed; the read-only facts of a snapshot file; a member data dir restored from one
// (cluster identity, revision bump, compaction mark) beside a previous member dir moved aside.
package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Info is what a snapshot file holds.
type Info struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Revision is the newest v3 revision in the snapshot (0 for an empty store).
	Revision int64 `json:"revision"`
	// Keys counts the live keys (what `etcdctl get "" --prefix --count-only` would say); Entries
	// counts every entry of the database, as etcdutl's snapshot status does (its totalKey).
	Keys    int   `json:"keys"`
	Entries int   `json:"entries"`
	Size    int64 `json:"size"`
}

// Status verifies a snapshot file and reads its facts: the SHA-256 etcd appends to a snapshot
// stream, bolt's integrity check (etcdutl's status), the revision and the live keys. Every error
// names the file. With skipHash the trailing SHA-256 is neither required nor checked, as etcdutl's
// --skip-hash-check: a member's snap/db copied from its data dir has none, bolt's check remains.
func Status(path string, skipHash bool) (info Info, err error) {
	info.Path = path
	defer func() {
		// bolt panics on some corrupt pages instead of returning an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s is not a readable etcd snapshot: %v", path, r)
		}
	}()
	if info.SHA256, info.Size, err = checkSum(path, skipHash); err != nil {
		return info, err
	}
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return info, fmt.Errorf("%s does not open as an etcd database: %w", path, err)
	}
	info.Revision, info.Entries = st.Revision, st.TotalKey
	if info.Keys, err = liveKeys(path); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// checkSum verifies the SHA-256 etcd appends to a snapshot stream (the bolt file is a multiple of
// 512 bytes; the 32 bytes after it are the hash of what precedes them) and returns the SHA-256 of
// the whole file and its size; with skipHash only the latter two.
func checkSum(path string, skipHash bool) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if skipHash {
		whole := sha256.New()
		_, err := io.Copy(whole, f)
		return hex.EncodeToString(whole.Sum(nil)), st.Size(), err
	}
	if st.Size()%512 != sha256.Size {
		return "", 0, fmt.Errorf("%s carries no trailing SHA-256 (size %d): the snapshot was cut short or is not "+
			"an etcd v3 snapshot (a member's snap/db copy is not one: skip_hash_check)", path, st.Size())
	}
	body, whole := sha256.New(), sha256.New()
	if _, err := io.CopyN(io.MultiWriter(body, whole), f, st.Size()-sha256.Size); err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	if string(body.Sum(nil)) != string(want) {
		return "", 0, fmt.Errorf("%s: SHA-256 mismatch; the snapshot is corrupt", path)
	}
	whole.Write(want)
	return hex.EncodeToString(whole.Sum(nil)), st.Size(), nil
}

// liveKeys replays the key bucket in revision order: a put makes a key live, a tombstone (a
// revision key with the trailing 't' mark) deletes it.
func liveKeys(path string) (int, error) {
	db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	live := map[string]struct{}{}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(rev, v []byte) error {
			var kv mvccpb.KeyValue
			if err := kv.Unmarshal(v); err != nil {
				return fmt.Errorf("revision %x does not decode: %w", rev, err)
			}
			if len(rev) == revBytesLen+1 && rev[revBytesLen] == 't' {
				delete(live, string(kv.Key))
			} else {
				live[string(kv.Key)] = struct{}{}
			}
			return nil
		})
	})
	return len(live), err
}

// revBytesLen is an mvcc revision key: 8 bytes main, '_', 8 bytes sub.
const revBytesLen = 8 + 1 + 8
