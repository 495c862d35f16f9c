package snapshot

import "slices"

// Topology: who appears in whose peer directory.
//
// Mesh nodes (an active relay-node or core-mesh role) pick MeshFanout other
// mesh nodes by rendezvous (highest-random-weight) score, half of them from
// their own region when possible. The score of a pair is symmetric, so the
// picks are stable: adding or removing one mesh node changes only the picks
// that involved it. Directories must be symmetric (a peer is accepted only if
// it is in the receiver's directory), so a node's directory holds its own
// picks plus the nodes that picked it; a node picked by more than
// MaxMeshPeers-MeshFanout others keeps only the best-scored of those extra
// edges and the dropped edges disappear from both sides. Hence every mesh
// directory has at most MaxMeshPeers mesh entries.
//
// Non-mesh nodes with at least one active role (consumers) pick UplinkFanout
// mesh nodes the same way (half in-region). A mesh node keeps at most
// MaxConsumers of the consumers that picked it (best score first); a consumer
// lists as uplinks only the mesh nodes that kept it. Nodes of other clusters,
// revoked and disabled nodes never take part.

const (
	saltMesh     uint64 = 0x6d657368_70656572 // "meshpeer"
	saltConsumer uint64 = 0x75706c69_6e6b7321 // "uplinks!"
)

func hash64(s string) uint64 { // FNV-1a, then mixed
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(z uint64) uint64 { // splitmix64 finalizer
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

type cand struct {
	score uint64
	idx   int32
}

func better(a, b cand) bool { return a.score > b.score || (a.score == b.score && a.idx < b.idx) }

// topN keeps the n best candidates in a small sorted slice.
type topN struct {
	n    int
	best []cand
}

func (t *topN) offer(c cand) {
	if len(t.best) == t.n && !better(c, t.best[len(t.best)-1]) {
		return
	}
	i := len(t.best)
	if i < t.n {
		t.best = append(t.best, c)
	} else {
		i--
	}
	for ; i > 0 && better(c, t.best[i-1]); i-- {
		t.best[i] = t.best[i-1]
	}
	t.best[i] = c
}

// meshKeys are the mesh nodes' pick inputs in flat arrays: pick scans every
// mesh node for every node (N² pairs at a rebuild, 100 million at 10,000
// mesh nodes), so the scan reads two contiguous arrays instead of following
// a pointer per node to its hash and region.
type meshKeys struct {
	h      []uint64
	region []int32 // index of the node's region; -1 when it has none
	ids    map[string]int32
}

func newMeshKeys(mesh []*nodeInfo) meshKeys {
	k := meshKeys{h: make([]uint64, len(mesh)), region: make([]int32, len(mesh)), ids: map[string]int32{}}
	for i, m := range mesh {
		k.h[i] = m.h
		k.region[i] = k.regionOf(m.n.Region, true)
	}
	return k
}

// regionOf is region's index (added when add), -1 for "" or one no mesh
// node has.
func (k *meshKeys) regionOf(region string, add bool) int32 {
	if region == "" {
		return -1
	}
	id, ok := k.ids[region]
	if !ok {
		if !add {
			return -1
		}
		id = int32(len(k.ids))
		k.ids[region] = id
	}
	return id
}

// pick chooses up to n of the mesh nodes for self: ceil(n/2) best from the
// same region, then the best overall. skip is a mesh index to exclude (-1).
func pick(k *meshKeys, self *nodeInfo, skip int32, salt uint64, n int) []int32 {
	same := topN{n: (n + 1) / 2, best: make([]cand, 0, (n+1)/2)}
	all := topN{n: n, best: make([]cand, 0, n)}
	region := k.regionOf(self.n.Region, false)
	key := self.h ^ salt
	// Candidates come in index order, so a later one with the same score
	// is worse: once a list is full, only a higher score than its last gets
	// in, and most pairs are refused after one score and two comparisons.
	var allFull, sameFull bool
	var allMin, sameMin uint64
	for i, h := range k.h {
		sc := mix64(key ^ h)
		if allFull && sc <= allMin && (region < 0 || sameFull && sc <= sameMin) {
			continue
		}
		if int32(i) == skip {
			continue
		}
		c := cand{score: sc, idx: int32(i)}
		if region >= 0 && k.region[i] == region && (!sameFull || sc > sameMin) {
			same.offer(c)
			if sameFull = len(same.best) == same.n; sameFull {
				sameMin = same.best[same.n-1].score
			}
		}
		if !allFull || sc > allMin {
			all.offer(c)
			if allFull = len(all.best) == all.n; allFull {
				allMin = all.best[all.n-1].score
			}
		}
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

func (x *Index) computeTopology() {
	x.meshPeers = map[string][]string{}
	x.consumers = map[string][]string{}
	x.uplinks = map[string][]string{}
	var mesh, cons []*nodeInfo
	for _, id := range x.buildable {
		ni := x.nodes[id]
		if !ni.active || len(ni.roles) == 0 {
			continue
		}
		if ni.mesh {
			mesh = append(mesh, ni)
		} else {
			cons = append(cons, ni)
		}
	}
	if len(mesh) == 0 {
		return
	}
	// Mesh to mesh.
	keys := newMeshKeys(mesh)
	picks := make([][]int32, len(mesh))
	pickedBy := make([][]int32, len(mesh))
	parallel(len(mesh), 0, func(i int) {
		picks[i] = pick(&keys, mesh[i], int32(i), saltMesh, x.cfg.MeshFanout)
	})
	for i := range mesh {
		for _, j := range picks[i] {
			pickedBy[j] = append(pickedBy[j], int32(i))
		}
	}
	dropped := map[[2]int32]bool{} // {picker, picked}
	for i, m := range mesh {
		var extra []cand
		for _, j := range pickedBy[i] {
			if !slices.Contains(picks[i], j) {
				extra = append(extra, cand{score: mix64(m.h ^ mesh[j].h ^ saltMesh), idx: j})
			}
		}
		room := x.cfg.MaxMeshPeers - len(picks[i])
		if len(extra) > room {
			slices.SortFunc(extra, func(a, b cand) int {
				if better(a, b) {
					return -1
				}
				return 1
			})
			for _, c := range extra[room:] {
				dropped[[2]int32{c.idx, int32(i)}] = true
			}
		}
	}
	for i, m := range mesh {
		set := map[int32]bool{}
		for _, j := range picks[i] {
			if !dropped[[2]int32{int32(i), j}] {
				set[j] = true
			}
		}
		for _, j := range pickedBy[i] {
			if !dropped[[2]int32{j, int32(i)}] {
				set[j] = true
			}
		}
		ids := make([]string, 0, len(set))
		for j := range set {
			ids = append(ids, mesh[j].n.ID)
		}
		slices.Sort(ids)
		x.meshPeers[m.n.ID] = ids
	}
	// Consumers to mesh.
	fan := min(x.cfg.UplinkFanout, len(mesh))
	cpicks := make([][]int32, len(cons))
	chosen := make([][]cand, len(mesh)) // per mesh node: consumers that picked it
	parallel(len(cons), 0, func(ci int) {
		cpicks[ci] = pick(&keys, cons[ci], -1, saltConsumer, fan)
	})
	for ci, c := range cons {
		for _, j := range cpicks[ci] {
			chosen[j] = append(chosen[j], cand{score: mix64(c.h ^ mesh[j].h ^ saltConsumer), idx: int32(ci)})
		}
	}
	kept := make([]map[int32]bool, len(mesh))
	for j, l := range chosen {
		if len(l) > x.cfg.MaxConsumers {
			slices.SortFunc(l, func(a, b cand) int {
				if better(a, b) {
					return -1
				}
				return 1
			})
			l = l[:x.cfg.MaxConsumers]
		}
		kept[j] = make(map[int32]bool, len(l))
		ids := make([]string, 0, len(l))
		for _, c := range l {
			kept[j][c.idx] = true
			ids = append(ids, cons[c.idx].n.ID)
		}
		slices.Sort(ids)
		x.consumers[mesh[j].n.ID] = ids
	}
	for ci, c := range cons {
		var ids []string
		for _, j := range cpicks[ci] {
			if kept[j][int32(ci)] {
				ids = append(ids, mesh[j].n.ID)
			}
		}
		slices.Sort(ids)
		x.uplinks[c.n.ID] = ids
	}
}
