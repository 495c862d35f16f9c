package snapshot

import (
	"crypto/ed25519"
	"encoding/json"
	"math/rand"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
)

// BenchmarkEd25519Sign is the raw baseline: one Ed25519ctx signature over a
// 4 KiB message, nothing else.
func BenchmarkEd25519Sign(b *testing.B) {
	key := testKey(1)
	msg := make([]byte, 4096)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := key.Sign(nil, msg, signOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the raw baseline for BenchmarkVerify.
func BenchmarkEd25519Verify(b *testing.B) {
	key := testKey(1)
	msg := make([]byte, 4096)
	sig, _ := key.Sign(nil, msg, signOpts)
	pub := key.Public().(ed25519.PublicKey)
	for b.Loop() {
		if err := ed25519.VerifyWithOptions(pub, msg, sig, signOpts); err != nil {
			b.Fatal(err)
		}
	}
}

var benchStates = map[int]*State{}

func benchState(n int) *State {
	if st, ok := benchStates[n]; ok {
		return st
	}
	st := genState(rand.New(rand.NewSource(int64(n))), n, max(6, n/200))
	benchStates[n] = st
	return st
}

// BenchmarkBuildSignOne builds and signs one node's snapshot from a prepared
// index of a 10,000-node cluster (the one-node-change path).
func BenchmarkBuildSignOne(b *testing.B) {
	x, err := NewIndex(benchState(10000), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	key := testKey(1)
	nodes := x.Nodes()
	var bytes int64
	i := 0
	for b.Loop() {
		s, err := x.Build(nodes[i%len(nodes)], opts(1))
		if err != nil {
			b.Fatal(err)
		}
		sg, err := Sign(s, key, 0)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(sg.Payload))
		i++
	}
	b.ReportMetric(float64(bytes)/float64(i), "B/snapshot")
}

func benchRebuild(b *testing.B, n int) {
	st := benchState(n)
	key := testKey(1)
	var count int
	for b.Loop() {
		// a cluster-wide policy change: re-index the new state, then the
		// authority's pipeline (Index.Rebuild: digest, build, sign, encode)
		// over every node
		res, err := BuildAll(st, DefaultConfig(), opts(2), key, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		count = len(res)
	}
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(per*1000, "ms/rebuild")
	b.ReportMetric(float64(count)/per, "snapshots/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
}

// BenchmarkRebuildCluster1000: cluster-wide rebuild of 1,000 nodes.
func BenchmarkRebuildCluster1000(b *testing.B) { benchRebuild(b, 1000) }

// BenchmarkRebuildCluster10000: cluster-wide rebuild of 10,000 nodes (aim
// <= 1 s on 2 cores).
func BenchmarkRebuildCluster10000(b *testing.B) { benchRebuild(b, 10000) }

// BenchmarkIndex10000 is the share of the rebuild spent validating and
// indexing the state and computing the topology.
func BenchmarkIndex10000(b *testing.B) {
	st := benchState(10000)
	for b.Loop() {
		if _, err := NewIndex(st, DefaultConfig()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexAllMesh10000 is BenchmarkIndex10000 with every node a mesh
// node (relay-node), the fleet benchmark's shape: the topology scores every
// pair of mesh nodes (rendezvous picks), 100 million pairs.
func BenchmarkIndexAllMesh10000(b *testing.B) {
	st := *benchState(10000)
	st.Assignments = nil
	for _, n := range st.Nodes {
		st.Assignments = append(st.Assignments, RoleAssignment{NodeID: n.ID, Role: domain.RoleRelayNode, Policy: json.RawMessage(`{}`)})
	}
	for b.Loop() {
		if _, err := NewIndex(&st, DefaultConfig()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAffected10000 is dirty tracking after a one-node change in a
// 10,000-node cluster (digest of every body under both states, no signing).
func BenchmarkAffected10000(b *testing.B) {
	before := benchState(10000)
	after := *before
	after.Assignments = slices.Clone(before.Assignments)
	after.Assignments[len(after.Assignments)/2].Disabled = !after.Assignments[len(after.Assignments)/2].Disabled
	var dirty int
	for b.Loop() {
		d, err := Affected(before, &after, DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		dirty = len(d.Rebuild) + len(d.Withdraw)
	}
	b.ReportMetric(float64(dirty), "dirty-nodes")
}

// BenchmarkVerify is the agent side: Verify of a typical service node's
// snapshot (decode included), beside BenchmarkEd25519Verify.
func BenchmarkVerify(b *testing.B) {
	x, err := NewIndex(benchState(1000), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	key := testKey(1)
	var id string
	for _, n := range x.Nodes() {
		s, _ := x.Build(n, opts(1))
		if len(s.Body.Services) > 0 && len(s.Body.Uplinks) > 0 {
			id = n
			break
		}
	}
	sg := mustSigned(b, x, id, 9, key)
	e := Expect{ClusterID: "c1", NodeID: id, AppliedVersion: 8, Now: t0.Add(time.Minute),
		TrustedKeys: TrustedKeys(key.Public().(ed25519.PublicKey))}
	// The baseline, measured in this run alternately with Verify (blocks of
	// 64) so that changes in the machine's load fall on both: one Ed25519ctx
	// verify of the same payload with the same key.
	pub := key.Public().(ed25519.PublicKey)
	var tVerify, tRaw time.Duration
	var nVerify, nRaw int
	b.SetBytes(int64(len(sg.Payload)))
	for b.Loop() {
		t := time.Now()
		if _, err := Verify(sg, e); err != nil {
			b.Fatal(err)
		}
		tVerify += time.Since(t)
		nVerify++
		if nVerify%64 == 0 {
			t = time.Now()
			for range 64 {
				if err := ed25519.VerifyWithOptions(pub, sg.Payload, sg.Signature, signOpts); err != nil {
					b.Fatal(err)
				}
			}
			tRaw += time.Since(t)
			nRaw += 64
		}
	}
	b.ReportMetric(float64(len(sg.Payload)), "B/snapshot")
	if nRaw > 0 {
		v := float64(tVerify.Nanoseconds()) / float64(nVerify) / 1e3
		r := float64(tRaw.Nanoseconds()) / float64(nRaw) / 1e3
		b.ReportMetric(v, "verify_us")
		b.ReportMetric(r, "ed25519_verify_us")
		b.ReportMetric(v/r, "verify/ed25519")
	}
}

// BenchmarkSnapshotSizeByRole reports the mean and max encoded size of the
// snapshots of a 10,000-node cluster by role class.
func BenchmarkSnapshotSizeByRole(b *testing.B) {
	x, err := NewIndex(benchState(10000), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	class := func(s Snapshot) string {
		has := func(r domain.Role) bool {
			return slices.ContainsFunc(s.Body.Roles, func(g RoleGrant) bool { return g.Role == r })
		}
		switch {
		case has(domain.RoleCoreMesh) || has(domain.RoleRelayNode):
			return "mesh"
		case has(domain.RoleEntryNode):
			return "entry"
		case has(domain.RoleConfigStorage):
			return "config-storage"
		case len(s.Body.Services) > 0:
			return "service"
		default:
			return "other"
		}
	}
	sum, cnt, mx := map[string]int{}, map[string]int{}, map[string]int{}
	for b.Loop() {
		clear(sum)
		clear(cnt)
		clear(mx)
		for _, id := range x.Nodes() {
			s, err := x.Build(id, opts(1))
			if err != nil {
				b.Fatal(err)
			}
			p, err := Encode(s)
			if err != nil {
				b.Fatal(err)
			}
			c := class(s)
			sum[c] += len(p)
			cnt[c]++
			mx[c] = max(mx[c], len(p))
		}
	}
	for c := range sum {
		b.ReportMetric(float64(sum[c])/float64(cnt[c]), "B-mean/"+c)
		b.ReportMetric(float64(mx[c]), "B-max/"+c)
	}
}

// BenchmarkEncode is the canonical encoder alone (200 different snapshots of
// a 1,000-node cluster).
func BenchmarkEncode(b *testing.B) {
	x, err := NewIndex(benchState(1000), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var snaps []Snapshot
	for _, id := range x.Nodes()[:200] {
		s, _ := x.Build(id, opts(1))
		snaps = append(snaps, s)
	}
	var n int64
	i := 0
	for b.Loop() {
		p, err := Encode(snaps[i%len(snaps)])
		if err != nil {
			b.Fatal(err)
		}
		n += int64(len(p))
		i++
	}
	b.ReportMetric(float64(n)/float64(i), "B/snapshot")
}
