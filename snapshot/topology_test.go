package snapshot

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// pickReference is pick as first written: every mesh node offered to both
// lists through topN.offer, reading its hash and region through the node.
// pick's flat arrays and early refusals must choose exactly the same nodes.
func pickReference(mesh []*nodeInfo, self *nodeInfo, skip int32, salt uint64, n int) []int32 {
	same := topN{n: (n + 1) / 2, best: make([]cand, 0, (n+1)/2)}
	all := topN{n: n, best: make([]cand, 0, n)}
	region := self.n.Region
	for i, m := range mesh {
		if int32(i) == skip {
			continue
		}
		c := cand{score: mix64(self.h ^ m.h ^ salt), idx: int32(i)}
		if region != "" && m.n.Region == region {
			same.offer(c)
		}
		all.offer(c)
	}
	out := make([]int32, 0, n)
	for _, c := range same.best {
		out = append(out, c.idx)
	}
	for _, c := range all.best {
		if len(out) == n {
			break
		}
		if !slices.Contains(out, c.idx) {
			out = append(out, c.idx)
		}
	}
	return out
}

// TestPickMatchesReference compares pick with pickReference on random mesh
// sets: regions shared, unique, missing and unknown to the mesh; duplicate
// hashes (equal scores, decided by index); skip inside and outside; fan-outs
// from 1 to more than the mesh holds.
func TestPickMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	regions := []string{"", "eu", "us", "ap"}
	for round := range 300 {
		size := 1 + r.Intn(60)
		mesh := make([]*nodeInfo, size)
		for i := range mesh {
			h := r.Uint64()
			if r.Intn(8) == 0 && i > 0 {
				h = mesh[r.Intn(i)].h // an equal score for some self
			}
			mesh[i] = &nodeInfo{n: &Node{ID: fmt.Sprint("m", i), Region: regions[r.Intn(len(regions))]}, h: h}
		}
		keys := newMeshKeys(mesh)
		for range 10 {
			self := &nodeInfo{n: &Node{ID: "self", Region: append(regions, "mars")[r.Intn(len(regions)+1)]}, h: r.Uint64()}
			skip := int32(-1)
			if r.Intn(2) == 0 {
				skip = int32(r.Intn(size))
				self = mesh[skip]
			}
			n := 1 + r.Intn(size+3)
			salt := []uint64{saltMesh, saltConsumer}[r.Intn(2)]
			want := pickReference(mesh, self, skip, salt, n)
			got := pick(&keys, self, skip, salt, n)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: pick(n=%d, skip=%d, region %q) = %v, reference %v", round, n, skip, self.n.Region, got, want)
			}
		}
	}
}
