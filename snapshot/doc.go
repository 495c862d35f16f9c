// Package snapshot owns the signed, need-to-know configuration snapshot of one
// node in one cluster: the model (Snapshot, Signed, Body), its canonical
// encoding, the per-node builder that decides what each node may learn from
// the authority's State, signing with the cluster CA key, offline
// verification by agents and caches, and dirty tracking (which nodes must be
// rebuilt after a change).
//
// The package is pure: it performs no I/O beyond the io.Reader handed to
// Decode, never reads the clock (time is passed in through BuildOptions and
// Expect) and never draws randomness. It must not learn about PostgreSQL,
// Raft, HTTP or bbolt: the authority fills State from PostgreSQL and stores
// the Signed results; the agent persists the applied version.
//
// Usage on the authority:
//
//	idx, err := snapshot.NewIndex(state, snapshot.DefaultConfig())
//	snap, err := idx.Build(nodeID, snapshot.BuildOptions{Version: v, Epoch: e, IssuedAt: now, TTL: ttl})
//	signed, err := snapshot.Sign(snap, caKey)
//	wire, err := signed.MarshalBinary()
//
// Usage on an agent or config-storage cache:
//
//	signed, err := snapshot.Decode(r, snapshot.DefaultMaxSize)
//	snap, err := snapshot.Verify(signed, snapshot.Expect{ClusterID: c, NodeID: n,
//		AppliedVersion: applied, Now: now, TrustedKeys: keys})
//	if err != nil { log(snapshot.Reason(err)); keep the last good snapshot }
//
// See docs/snapshots.md for the format and the need-to-know table.
package snapshot
