// Package v2disk reads a member's v2 store from its data dir, without the member's help and safe
// beside a running member (it only reads; the snapshot is mapped, not loaded): the newest intact
// v2 snapshot (as etcd's snap package writes it), the WAL after it (as etcd's wal package reads
// it), and the names those hold that the v2 API never lists (hidden segments, "_…").
//
// The API:
//   - HiddenPaths(option, dataDir): the hidden v2 paths of a member's store.
//   - StartSnapScan + ReadMemberLog: a MemberLog, the newest snapshot (kept open for a copy that
//     reads the store from it) and what the v2 writes in the WAL after it touched.
//   - WALMember: the node and cluster ids a WAL belongs to; CheckDataDir: a data dir holds a WAL.
//   - IsHidden and StoreKeysPrefix: the v2 store's naming.
//
// pkg/v2data decides when a copy may read the store from here rather than through the API.
package v2disk
