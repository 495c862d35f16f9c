// Package audit owns the audit event model and its tamper-evident hash chain:
// the event type, its deterministic canonical encoding, Chain (link an event to
// the chain head) and Verify (walk a chain and name the first broken link).
//
// Each chain (one per cluster, plus the "" chain for platform-level events) is
// linear: Hash(n) = SHA-256(Hash(n-1) || canonical(event n)), with sequence
// numbers 1, 2, 3... and a chain-specific genesis hash. Editing a row breaks its
// own hash; deleting, inserting or reordering rows breaks the sequence or the
// next row's PrevHash; rewriting an entire tail is caught only against an
// external anchor (a Head recorded elsewhere), which Verify accepts.
//
// It must not talk to a database: appends go through the Store interface, whose
// implementation must serialise appends per chain (see Store). MemStore is the
// in-memory implementation. The package never decides what is audited; callers
// record every mutation. Design notes: docs/admin-security.md.
package audit
