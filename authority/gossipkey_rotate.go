package authority

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/rap-fabric/core/fsm"
)

// rotateGossipKeys replaces the current gossip key of every pool of a
// cluster with a fresh one (leader only): revoking a node must also revoke
// what it knows, and a revoked node holds the cluster's gossip key. The FSM
// keeps the replaced key as the pool's previous key; snapshots carry the new
// one, so every remaining node restarts gossip on it, and the revoked node,
// which can no longer fetch snapshots, is left outside. A cluster whose
// pools have no key yet has nothing to rotate. The cluster is marked dirty
// so that its snapshots are rebuilt with the new key at once.
func (a *Authority) rotateGossipKeys(ctx context.Context, clusterID string, actor Actor, reason string) error {
	var pools []fsm.GossipKey
	for _, k := range a.state.GossipKeys(clusterID) {
		if k.Status == fsm.GossipKeyCurrent {
			pools = append(pools, k)
		}
	}
	if len(pools) == 0 {
		return nil
	}
	for _, old := range pools {
		key := make([]byte, GossipKeyLen)
		var id [8]byte
		if _, err := io.ReadFull(a.cfg.Rand, key); err != nil {
			return &Error{Code: CodeInternal, Message: "could not generate a gossip key", Err: err}
		}
		if _, err := io.ReadFull(a.cfg.Rand, id[:]); err != nil {
			return &Error{Code: CodeInternal, Message: "could not generate a gossip key id", Err: err}
		}
		kid := "gk-" + hex.EncodeToString(id[:])
		sealed, err := a.cfg.Sealer.Seal(key, fsm.GossipKeyAAD(clusterID, old.Pool, kid))
		if err != nil {
			return &Error{Code: CodeInternal, Message: "could not seal the gossip key", Err: err}
		}
		if _, err := a.apply(ctx, "gossip-key/"+clusterID+"/"+old.Pool+"/"+kid, fsm.SetGossipKey{ClusterID: clusterID, Pool: old.Pool, KeyID: kid,
			SealedKey: sealed, At: a.cfg.Clock()}); err != nil {
			return err
		}
		a.caKeys.Store(gossipKeyCacheKey(clusterID, old.Pool, kid), key)
		a.log.Info("cluster gossip key rotated", "cluster_id", clusterID, "pool", old.Pool, "key_id", kid, "previous_key_id", old.KeyID, "reason", reason)
		_ = a.Audit(ctx, Op{Action: "gossip_key.rotate", Actor: actor, ClusterID: clusterID, TargetKind: "cluster", TargetID: clusterID,
			Details: map[string]any{"pool": old.Pool, "key_id": kid, "previous_key_id": old.KeyID, "reason": reason}}, "ok")
	}
	if _, err := a.db.Pool.Exec(ctx, `SELECT rap_mark_cluster_dirty($1::uuid, 'gossip_key')`, clusterID); err != nil {
		return fmt.Errorf("mark the cluster's snapshots for rebuild: %w", err)
	}
	return nil
}
