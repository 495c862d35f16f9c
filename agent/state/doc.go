// Package state owns the node agent's local state: one bbolt file per host
// holding, for every cluster membership in its own namespace, the node
// identity (including private keys), membership, the last applied signed
// snapshot and its version, peer/route/service-assignment caches, local health,
// the partition/degraded mode and pending update metadata.
//
// Guarantees:
//   - The file is created with mode 0600; an existing file that is group- or
//     world-accessible, a symlink or not a regular file is refused with
//     ErrInsecurePermissions (never silently fixed: the keys may have leaked).
//   - A meta bucket records the schema version; a newer schema yields
//     ErrNewerSchema and the file is not modified.
//   - A garbage, truncated or structurally inconsistent file yields ErrCorrupt
//     from Open: before bbolt trusts the file, Open opens it read-only and
//     walks its pages itself (validate.go), because some damage (a page cycle,
//     a huge freelist count) is fatal inside bbolt rather than a panic. Any
//     remaining bbolt panic or page fault on the caller's goroutine is
//     recovered as ErrCorrupt, and a record that no longer decodes is
//     ErrCorrupt, so a bad file never crash-loops the agent. bbolt has no
//     checksums on data pages: a flipped byte inside a value can go unnoticed
//     (snapshots carry their own signature).
//   - Open waits at most Options.LockTimeout for bbolt's exclusive flock and
//     then returns ErrLocked.
//   - AdvanceAppliedVersion persists a snapshot and its version in one fsync'd
//     transaction and refuses any version not strictly greater than the stored
//     one, across restarts (TESTING.md N1).
//
// Memberships are isolated: every record lives in the bucket of its cluster
// id and no method reads across clusters.
//
// This package must not talk to the network, verify signatures or interpret
// snapshot bodies: callers verify a snapshot before they advance to it.
package state
