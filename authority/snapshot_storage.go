package authority

// Config-storage nodes: which storage nodes hold which members' snapshots
// (storageAssignments, in every storage node's snapshot) and the snapshots a
// storage node fetches to serve (StorageSnapshots).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"strings"

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

// StorageSnapshots returns the newest signed snapshots a config-storage node
// caches and serves: those of the nodes listed in its own snapshot's
// cache_nodes. The node must hold an active config-storage role.
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
	out, err := store.LatestSnapshots(ctx, a.db.Pool, node.ClusterID, s.Body.CacheNodes)
	return out, asErrorOrNil(err)
}
