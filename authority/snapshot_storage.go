package authority

// Config-storage nodes: which storage nodes hold which members' snapshots
// (storageAssignments, in every storage node's snapshot) and the snapshots a
// storage node fetches to serve (StorageSnapshots).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// storageAssignments picks, for every member that gets a snapshot, the
// config-storage nodes that cache and serve it: the StorageFanout active
// config-storage nodes with the highest rendezvous score, among those whose
// role policy either lists no "groups" or lists a group on the member's group
// path. A storage node never serves itself.
func storageAssignments(members []store.SnapshotMember, roles []store.RoleAssignment, groupOf, parent map[string]string, fanout int) []snapshot.StorageAssignment {
	type storage struct {
		id     string
		groups []string
	}
	active := map[string]bool{}
	for _, m := range members {
		if m.MembershipStatus == string(domain.MembershipActive) {
			active[m.NodeID] = true
		}
	}
	var stores []storage
	for _, r := range roles {
		if r.Role != string(domain.RoleConfigStorage) || r.Status != "active" || !active[r.NodeID] {
			continue
		}
		var p struct {
			Groups []string `json:"groups"`
		}
		_ = json.Unmarshal(r.Policy, &p)
		stores = append(stores, storage{id: r.NodeID, groups: p.Groups})
	}
	if len(stores) == 0 {
		return nil
	}
	served := map[string][]string{}
	for _, m := range members {
		if m.MembershipStatus == string(domain.MembershipRevoked) {
			continue
		}
		path := map[string]bool{}
		for g, i := groupOf[m.NodeID], 0; g != "" && i < 1000; g, i = parent[g], i+1 {
			path[g] = true
		}
		type cand struct {
			id    string
			score uint64
		}
		var cands []cand
		for _, s := range stores {
			if s.id == m.NodeID {
				continue
			}
			if len(s.groups) > 0 && !slices.ContainsFunc(s.groups, func(g string) bool { return path[g] }) {
				continue
			}
			h := fnv.New64a()
			h.Write([]byte(s.id + "|" + m.NodeID))
			cands = append(cands, cand{s.id, h.Sum64()})
		}
		slices.SortFunc(cands, func(x, y cand) int {
			if x.score != y.score {
				if x.score > y.score {
					return -1
				}
				return 1
			}
			return strings.Compare(x.id, y.id)
		})
		for i := 0; i < len(cands) && i < fanout; i++ {
			served[cands[i].id] = append(served[cands[i].id], m.NodeID)
		}
	}
	var out []snapshot.StorageAssignment
	for _, s := range stores {
		if ids := served[s.id]; len(ids) > 0 {
			out = append(out, snapshot.StorageAssignment{StorageNodeID: s.id, NodeIDs: ids})
		}
	}
	return out
}

// StorageSnapshots returns the newest snapshots a config-storage node
// caches and serves: those of the nodes listed in its own snapshot's
// cache_nodes, each sealed to its target's X25519 (Noise) key
// (snapshot.Seal): Signed holds the sealed envelope, which the storage node
// can verify (cluster key, audience, version, expiry) but not read. A node
// without a usable Noise key is left out. The node must hold an active
// config-storage role.
func (a *Authority) StorageSnapshots(ctx context.Context, node NodePrincipal) ([]store.StoredSnapshot, error) {
	roles, err := store.ListRoleAssignments(ctx, a.db.Pool, node.ClusterID, node.NodeID, store.Page{Limit: 500})
	if err != nil {
		return nil, asError(err)
	}
	if !slices.ContainsFunc(roles, func(r store.RoleAssignment) bool {
		return r.Role == string(domain.RoleConfigStorage) && r.Status == "active"
	}) {
		return nil, Errf(CodeForbidden, "this node holds no active config-storage role in this cluster")
	}
	own, err := store.LatestSnapshot(ctx, a.db.Pool, node.ClusterID, node.NodeID)
	if errors.Is(err, store.ErrNotFound) {
		return []store.StoredSnapshot{}, nil
	}
	if err != nil {
		return nil, asError(err)
	}
	signed, err := snapshot.Decode(bytes.NewReader(own.Signed), snapshot.DefaultMaxSize)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "stored snapshot does not decode", Err: err}
	}
	s, err := snapshot.DecodeSnapshot(signed.Payload)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "stored snapshot does not decode", Err: err}
	}
	if len(s.Body.CacheNodes) == 0 {
		return []store.StoredSnapshot{}, nil
	}
	latest, err := store.LatestSnapshots(ctx, a.db.Pool, node.ClusterID, s.Body.CacheNodes)
	if err != nil {
		return nil, asError(err)
	}
	return a.sealForStorage(ctx, node.ClusterID, latest)
}

// sealForStorage replaces each snapshot's Signed with its sealed envelope.
func (a *Authority) sealForStorage(ctx context.Context, clusterID string, snaps []store.StoredSnapshot) ([]store.StoredSnapshot, error) {
	if len(snaps) == 0 {
		return []store.StoredSnapshot{}, nil
	}
	ids := make([]string, len(snaps))
	for i, x := range snaps {
		ids[i] = x.NodeID
	}
	noise, err := a.noiseKeys(ctx, clusterID, ids)
	if err != nil {
		return nil, err
	}
	key, _, kid, err := a.publishingClusterSigner(clusterID)
	if err != nil {
		return nil, err
	}
	out := make([]store.StoredSnapshot, 0, len(snaps))
	for _, x := range snaps {
		pub := noise[x.NodeID]
		if len(pub) != 32 {
			continue
		}
		ck := fmt.Sprintf("%s|%s|%d|%s|%x|%x", clusterID, x.NodeID, x.Version, kid, pub, sha256.Sum256(x.Signed))
		sealed, ok := a.snapshots.sealed.get(ck)
		if !ok {
			if sealed, err = snapshot.Seal(x.Signed, pub, key, a.cfg.Rand); err != nil {
				return nil, &Error{Code: CodeInternal, Message: "a stored snapshot cannot be sealed", Err: err}
			}
			a.snapshots.sealed.put(ck, sealed)
		}
		x.Signed = sealed
		out = append(out, x)
	}
	return out, nil
}

// noiseKeys returns the X25519 Noise public keys of nodes, from the same
// identity the snapshot builder picks (active first, then newest).
func (a *Authority) noiseKeys(ctx context.Context, clusterID string, nodeIDs []string) (map[string][]byte, error) {
	rows, err := a.db.Pool.Query(ctx, `SELECT DISTINCT ON (node_id) node_id::text, noise_public_key FROM node_identities
	      WHERE cluster_id = rap_uuid($1) AND node_id = ANY(rap_uuids($2::text[]))
	      ORDER BY node_id, (identity_status = 'active') DESC, created_at DESC`, clusterID, nodeIDs)
	if err != nil {
		return nil, asError(store.MapError(err))
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var pub []byte
		if err := rows.Scan(&id, &pub); err != nil {
			return nil, asError(store.MapError(err))
		}
		out[id] = pub
	}
	return out, asErrorOrNil(store.MapError(rows.Err()))
}

// maxSealCacheBytes bounds the sealed-envelope cache; when a new envelope
// would exceed it the cache starts over (old versions are never asked for
// again, so a reset costs at most one seal per served node).
const maxSealCacheBytes = 64 << 20

// sealCache keeps sealed envelopes by (cluster, node, version, key, target
// key, content) so that a storage node's periodic refresh does not cost an
// X25519 and a signature per served node each time.
type sealCache struct {
	mu    sync.Mutex
	m     map[string][]byte
	bytes int
}

func (c *sealCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *sealCache) put(k string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.bytes+len(v)+len(k) > maxSealCacheBytes {
		c.m, c.bytes = map[string][]byte{}, 0
	}
	if old, ok := c.m[k]; ok {
		c.bytes -= len(old) + len(k)
	}
	c.m[k] = v
	c.bytes += len(v) + len(k)
}
