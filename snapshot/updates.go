package snapshot

import (
	"cmp"
	"fmt"
	"slices"
)

// Updates is a node's update instructions (spec stage C19), in the base
// scope of its snapshot: the release root keys it verifies key sets and
// manifests with, the versions it must run (only its own), and the
// blocklisted versions it must never run. The snapshot's signature (cluster
// CA) is what makes a rollback or pin (AllowDowngrade) a signed instruction.
type Updates struct {
	ReleaseRoots ReleaseRoots     `json:"release_roots"`
	Desired      []DesiredVersion `json:"desired,omitempty"`
	Blocklist    []BlockedVersion `json:"blocklist,omitempty"`
}

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
	return &Updates{ReleaseRoots: x.updates.Roots, Desired: x.updates.Desired[nodeID], Blocklist: x.updates.Blocklist}
}
