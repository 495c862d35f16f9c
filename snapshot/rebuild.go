package snapshot

import (
	"crypto/ed25519"
	"runtime"
	"sync"
)

// Result is the outcome of one node of a rebuild (Index.Rebuild).
type Result struct {
	NodeID string
	// Digest is the node's Index.Digest; set whenever Err is nil.
	Digest [32]byte
	// Skipped: the caller's unchanged func reported the digest unchanged, so
	// nothing was built or signed; Header, Signed and Wire are empty.
	Skipped bool
	// Header is the built snapshot without its Body (which is not kept, to
	// keep the results of a large cluster small).
	Header Snapshot
	// Signed is the signed snapshot and Wire its MarshalBinary encoding (what
	// the authority stores and serves).
	Signed Signed
	Wire   []byte
	Err    error
}

// Unchanged tells Rebuild that a node's stored snapshot with this digest
// needs no new signature (e.g. same digest, same key, far from expiry). It is
// called from several goroutines at once and must not block.
type Unchanged func(nodeID string, digest [32]byte) bool

// Rebuild is the one build-and-sign pipeline of cluster rebuilds: for each of
// nodeIDs (nil means every node of x.Nodes()) on a pool of workers (<= 0
// means GOMAXPROCS) it computes the Digest, skips the node when unchanged
// (nil: never) reports true, and otherwise builds, signs (with the Index's
// MaxSize) and encodes its snapshot. The authority's rebuild runs it and the
// rebuild benchmarks time it. Results are in the order of nodeIDs; a failure
// of one node does not stop the others.
func (x *Index) Rebuild(nodeIDs []string, opts BuildOptions, key ed25519.PrivateKey, workers int, unchanged Unchanged) []Result {
	if nodeIDs == nil {
		nodeIDs = x.buildable
	}
	out := make([]Result, len(nodeIDs))
	optsErr := opts.validate()
	parallel(len(nodeIDs), workers, func(i int) {
		r := &out[i]
		r.NodeID = nodeIDs[i]
		// The body is built once: its digest decides, and it is what is signed.
		body, scope, err := x.body(r.NodeID)
		if err != nil {
			r.Err = err
			return
		}
		if r.Digest, r.Err = digest(body, scope); r.Err != nil {
			return
		}
		if unchanged != nil && unchanged(r.NodeID, r.Digest) {
			r.Skipped = true
			return
		}
		if optsErr != nil {
			r.Err = optsErr
			return
		}
		s := x.snapshot(r.NodeID, body, scope, opts)
		if r.Signed, r.Err = Sign(s, key, x.cfg.MaxSize); r.Err != nil {
			return
		}
		if r.Wire, r.Err = r.Signed.MarshalBinary(); r.Err != nil {
			return
		}
		// The envelope ends with the payload: share its bytes instead of
		// keeping a second copy of every node's payload until the caller
		// stored the batch (10,000 nodes: ~40 MB).
		r.Signed.Payload = r.Wire[len(r.Wire)-len(r.Signed.Payload):]
		s.Body = Body{}
		r.Header = s
	})
	return out
}

// BuildAll indexes state and rebuilds every node's snapshot (Index.Rebuild
// with nothing skipped): the cluster-wide rebuild after a policy change.
func BuildAll(state *State, cfg Config, opts BuildOptions, key ed25519.PrivateKey, workers int) ([]Result, error) {
	x, err := NewIndex(state, cfg)
	if err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return x.Rebuild(nil, opts, key, workers, nil), nil
}

// Dirty is the outcome of Affected.
type Dirty struct {
	// Rebuild are the nodes whose snapshot content differs between the two
	// states (or that newly get one), sorted.
	Rebuild []string
	// Withdraw are the nodes that had a snapshot before and get none now
	// (revoked, removed, left the cluster), sorted. Their peers are in
	// Rebuild.
	Withdraw []string
}

// Affected returns the nodes whose snapshots must be rebuilt after the State
// changed from before to after. It compares the Digest of every node's
// scope and body under both states (no signing, in parallel), so it is exact
// by construction: a one-node service change yields that node only; a role
// change also yields the mesh nodes that list it (role hints); a revocation
// yields every node, because every body carries the revocation list, and in
// particular every node that had the revoked node in its peer directory.
func Affected(before, after *State, cfg Config) (Dirty, error) {
	xb, err := NewIndex(before, cfg)
	if err != nil {
		return Dirty{}, err
	}
	xa, err := NewIndex(after, cfg)
	if err != nil {
		return Dirty{}, err
	}
	return xb.Diff(xa), nil
}

// Diff is Affected for two prepared indexes (x is before).
func (x *Index) Diff(after *Index) Dirty {
	db, da := x.digests(), after.digests()
	var d Dirty
	for _, id := range after.buildable {
		old, ok := db[id]
		if !ok || old != da[id] {
			d.Rebuild = append(d.Rebuild, id)
		}
	}
	for _, id := range x.buildable {
		if _, ok := da[id]; !ok {
			d.Withdraw = append(d.Withdraw, id)
		}
	}
	return d
}

func (x *Index) digests() map[string][32]byte {
	sums := make([][32]byte, len(x.buildable))
	parallel(len(x.buildable), 0, func(i int) {
		sums[i], _ = x.Digest(x.buildable[i]) // buildable nodes always build
	})
	m := make(map[string][32]byte, len(sums))
	for i, id := range x.buildable {
		m[id] = sums[i]
	}
	return m
}

// parallel runs f(0..n-1) on workers goroutines.
func parallel(n, workers int, f func(i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	var wg sync.WaitGroup
	next := make(chan int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
