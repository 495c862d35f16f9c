package snapshot

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/rap-fabric/core/domain"
)

// Updates is a node's update instructions (spec stage C19), in the base
// scope of its snapshot: the release root keys it verifies key sets and
// manifests with, the versions it must run (only its own), and the
// blocklisted versions it must never run. The snapshot's signature (cluster
// CA) is what makes a rollback or pin (AllowDowngrade) a signed instruction.
//
// Mirrors lists the cluster's update-cache nodes this node may fetch
// artifacts from (nearest first: same region, then by node id; at most
// MaxMirrors); they are untrusted, the node verifies every byte against the
// signed manifest. Mirror, on an update-cache node only, lists the releases
// its cluster's nodes are told to run: the approved artifacts it mirrors
// (it never invents versions).
type Updates struct {
	ReleaseRoots ReleaseRoots      `json:"release_roots"`
	Desired      []DesiredVersion  `json:"desired,omitempty"`
	Blocklist    []BlockedVersion  `json:"blocklist,omitempty"`
	Mirrors      []StorageEndpoint `json:"mirrors,omitempty"`
	Mirror       []DesiredVersion  `json:"mirror,omitempty"`
}

// MaxMirrors bounds Updates.Mirrors.
const MaxMirrors = 8

// ReleaseRoots are the registered release root public keys and threshold.
type ReleaseRoots struct {
	Version   uint64   `json:"version"`
	Threshold int      `json:"threshold"`
	Keys      [][]byte `json:"keys"`
}

// DesiredVersion is a version the node must run for a product.
type DesiredVersion struct {
	Product string `json:"product"`
	Version string `json:"version"`
	// ManifestDigest names the signed manifest ("sha256:…").
	ManifestDigest string `json:"manifest_digest"`
	RolloutID      string `json:"rollout_id,omitempty"`
	Wave           int    `json:"wave"`
	// AllowDowngrade: a rollback or emergency pin allows going below the
	// running version, to exactly Version.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// DeadlineSeconds: the new version must report healthy within this
	// long, or the node rolls back by itself.
	DeadlineSeconds int `json:"deadline_seconds,omitempty"`
}

// BlockedVersion is a blocklisted release.
type BlockedVersion struct {
	Product string `json:"product"`
	Version string `json:"version"`
}

// UpdateState is the builder's input for Updates. Nil means release roots
// are not registered: snapshots carry no updates section.
type UpdateState struct {
	Roots ReleaseRoots
	// Desired holds each node's desired versions, by node id.
	Desired   map[string][]DesiredVersion
	Blocklist []BlockedVersion
}

func indexUpdates(u *UpdateState) (*UpdateState, error) {
	if u == nil {
		return nil, nil
	}
	if u.Roots.Threshold < 1 || u.Roots.Threshold > len(u.Roots.Keys) {
		return nil, fmt.Errorf("%w: release roots threshold %d of %d keys", ErrInvalidState, u.Roots.Threshold, len(u.Roots.Keys))
	}
	c := &UpdateState{Roots: u.Roots, Desired: map[string][]DesiredVersion{}, Blocklist: slices.Clone(u.Blocklist)}
	for n, ds := range u.Desired {
		ds = slices.Clone(ds)
		slices.SortFunc(ds, func(a, b DesiredVersion) int { return cmp.Compare(a.Product, b.Product) })
		for i := 1; i < len(ds); i++ {
			if ds[i].Product == ds[i-1].Product {
				return nil, fmt.Errorf("%w: node %s has two desired versions of %s", ErrInvalidState, n, ds[i].Product)
			}
		}
		c.Desired[n] = ds
	}
	slices.SortFunc(c.Blocklist, func(a, b BlockedVersion) int {
		return cmp.Or(cmp.Compare(a.Product, b.Product), cmp.Compare(a.Version, b.Version))
	})
	return c, nil
}

// updatesFor returns nodeID's updates section (nil without release roots).
func (x *Index) updatesFor(nodeID string) *Updates {
	if x.updates == nil {
		return nil
	}
	u := &Updates{ReleaseRoots: x.updates.Roots, Desired: x.updates.Desired[nodeID], Blocklist: x.updates.Blocklist}
	self := x.nodes[nodeID]
	var mirrors []string
	for _, id := range x.mirrorNodes {
		if id != nodeID {
			mirrors = append(mirrors, id)
		}
	}
	region := ""
	if self != nil && self.n != nil {
		region = self.n.Region
	}
	slices.SortStableFunc(mirrors, func(a, b string) int {
		ra, rb := x.nodes[a].n.Region == region, x.nodes[b].n.Region == region
		switch {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		return cmp.Compare(a, b)
	})
	for _, id := range mirrors[:min(len(mirrors), MaxMirrors)] {
		u.Mirrors = append(u.Mirrors, StorageEndpoint{NodeID: id, Endpoints: x.nodes[id].endpoints})
	}
	if self != nil && self.active && self.has(domain.RoleUpdateCache) {
		u.Mirror = x.mirrorSet
	}
	return u
}

// indexMirrors finds the update-cache nodes (active members holding the
// role, not revoked) and the set of releases desired anywhere in the
// cluster (what they mirror), once per Index.
func (x *Index) indexMirrors() {
	if x.updates == nil {
		return
	}
	for _, id := range x.buildable {
		if ni := x.nodes[id]; ni.active && !ni.revoked && ni.has(domain.RoleUpdateCache) {
			x.mirrorNodes = append(x.mirrorNodes, id)
		}
	}
	if len(x.mirrorNodes) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, ds := range x.updates.Desired {
		for _, d := range ds {
			k := d.Product + "@" + d.Version + "@" + d.ManifestDigest
			if !seen[k] {
				seen[k] = true
				x.mirrorSet = append(x.mirrorSet, DesiredVersion{Product: d.Product, Version: d.Version, ManifestDigest: d.ManifestDigest})
			}
		}
	}
	slices.SortFunc(x.mirrorSet, func(a, b DesiredVersion) int {
		return cmp.Or(cmp.Compare(a.Product, b.Product), cmp.Compare(a.Version, b.Version), cmp.Compare(a.ManifestDigest, b.ManifestDigest))
	})
}
