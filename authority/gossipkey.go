package authority

// Per-cluster gossip keys: the 32-byte memberlist key (AES-256-GCM) that mesh
// nodes of a cluster share for their gossip pool.
//
// Storage: the replicated FSM (fsm.SetGossipKey), sealed with the
// authority's Sealer (AAD fsm.GossipKeyAAD), exactly like the cluster CA
// keys, so every authority holds the same key without PostgreSQL and a
// newly elected leader signs snapshots with the same key. The leader
// generates the first key of a pool on the first snapshot rebuild that
// needs it (OnlyIfNone: two racing leaders cannot replace each other's key;
// the loser reads the winner's). Rotation is a later SetGossipKey without
// OnlyIfNone: the FSM keeps the replaced key as the pool's "previous" key so
// that a future snapshot format can hand agents both during the overlap
// (memberlist's Keyring accepts several keys); today snapshots carry the
// current key only.
//
// The key never appears in logs, audit details or errors: only its key id.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/snapshot"
)

// GossipKeyLen is the length of a cluster gossip key (memberlist AES-256).
const GossipKeyLen = 32

// gossipKeyCacheKey names an opened gossip key in Authority.caKeys.
func gossipKeyCacheKey(clusterID, pool, keyID string) string {
	return "gossip|" + clusterID + "|" + pool + "|" + keyID
}

// clusterGossipKeys returns the current gossip key of every pool of the
// cluster, opened, for snapshot.State.Cluster.GossipKeys. When the default
// pool has none yet and this authority leads, it generates, seals and
// commits one first.
func (a *Authority) clusterGossipKeys(ctx context.Context, clusterID string) ([]snapshot.GossipKey, error) {
	if !hasCurrentGossipKey(a.state.GossipKeys(clusterID), "") {
		if err := a.createGossipKey(ctx, clusterID, ""); err != nil {
			return nil, err
		}
	}
	var out []snapshot.GossipKey
	for _, k := range a.state.GossipKeys(clusterID) {
		if k.Status != fsm.GossipKeyCurrent {
			continue
		}
		key, err := a.openGossipKey(clusterID, k)
		if err != nil {
			return nil, err
		}
		out = append(out, snapshot.GossipKey{Pool: k.Pool, KeyID: k.KeyID, Key: key})
	}
	return out, nil
}

func hasCurrentGossipKey(ks []fsm.GossipKey, pool string) bool {
	for _, k := range ks {
		if k.Pool == pool && k.Status == fsm.GossipKeyCurrent {
			return true
		}
	}
	return false
}

// openGossipKey opens a sealed gossip key (cached in memory).
func (a *Authority) openGossipKey(clusterID string, k fsm.GossipKey) ([]byte, error) {
	ck := gossipKeyCacheKey(clusterID, k.Pool, k.KeyID)
	if v, ok := a.caKeys.Load(ck); ok {
		return v.([]byte), nil
	}
	raw, err := a.cfg.Sealer.Open(k.SealedKey, fsm.GossipKeyAAD(clusterID, k.Pool, k.KeyID))
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "cannot open the cluster gossip key (wrong or missing key-encryption key?)", Err: err}
	}
	if len(raw) != GossipKeyLen {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("the cluster gossip key %s has %d bytes, want %d", k.KeyID, len(raw), GossipKeyLen)}
	}
	a.caKeys.Store(ck, raw)
	return raw, nil
}

// createGossipKey generates, seals and commits the first gossip key of a
// pool (leader only; the caller's rebuild already checked leadership).
func (a *Authority) createGossipKey(ctx context.Context, clusterID, pool string) error {
	key := make([]byte, GossipKeyLen)
	var id [8]byte
	if _, err := io.ReadFull(a.cfg.Rand, key); err != nil {
		return &Error{Code: CodeInternal, Message: "could not generate a gossip key", Err: err}
	}
	if _, err := io.ReadFull(a.cfg.Rand, id[:]); err != nil {
		return &Error{Code: CodeInternal, Message: "could not generate a gossip key id", Err: err}
	}
	kid := "gk-" + hex.EncodeToString(id[:])
	sealed, err := a.cfg.Sealer.Seal(key, fsm.GossipKeyAAD(clusterID, pool, kid))
	if err != nil {
		return &Error{Code: CodeInternal, Message: "could not seal the gossip key", Err: err}
	}
	_, err = a.apply(ctx, "gossip-key/"+clusterID+"/"+pool+"/"+kid, fsm.SetGossipKey{ClusterID: clusterID, Pool: pool, KeyID: kid,
		SealedKey: sealed, OnlyIfNone: true, At: a.cfg.Clock()})
	if errors.Is(err, fsm.ErrGossipKeyExists) {
		return nil // another leader won the race; its key is in the FSM now
	}
	if err != nil {
		return err
	}
	a.caKeys.Store(gossipKeyCacheKey(clusterID, pool, kid), key)
	a.log.Info("cluster gossip key created", "cluster_id", clusterID, "pool", pool, "key_id", kid)
	_ = a.Audit(ctx, Op{Action: "gossip_key.create", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: clusterID, TargetKind: "cluster",
		TargetID: clusterID, Details: map[string]any{"pool": pool, "key_id": kid}}, "ok")
	return nil
}
