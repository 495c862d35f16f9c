package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestPauseAuditChain: while the chain is paused ChainAudit links nothing
// and events stay unchained; once resumed they are linked in insertion
// order, and resuming twice is an error.
func TestPauseAuditChain(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	hash := func(prev []byte, seq int64, e store.AuditEvent) []byte {
		h := sha256.New()
		h.Write(prev)
		_ = binary.Write(h, binary.BigEndian, seq)
		h.Write([]byte(e.Action))
		return h.Sum(nil)
	}
	add := func(action string) {
		require.NoError(t, store.AppendAudit(ctx, db.Pool, store.AuditEvent{At: time.Now(), Actor: "t", ActorKind: "system", Action: action, Outcome: "ok"}))
	}
	add("test.before")
	n, err := store.ChainAudit(ctx, db, hash, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	resume, err := store.PauseAuditChain(ctx, db)
	require.NoError(t, err)
	add("test.paused.a")
	add("test.paused.b")
	n, err = store.ChainAudit(ctx, db, hash, 100)
	require.NoError(t, err)
	require.Zero(t, n, "a paused chain links nothing")
	left, err := store.UnchainedAudit(ctx, db.Pool)
	require.NoError(t, err)
	require.EqualValues(t, 2, left)

	require.NoError(t, resume())
	n, err = store.ChainAudit(ctx, db, hash, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	evs, err := store.ListAuditChained(ctx, db.Pool, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i, a := range []string{"test.before", "test.paused.a", "test.paused.b"} {
		require.Equal(t, a, evs[i].Action)
		require.EqualValues(t, i+1, *evs[i].Seq)
	}
	require.Equal(t, hash(evs[1].Hash, 3, evs[2]), evs[2].Hash)
	require.ErrorContains(t, resume(), "already resumed")
}
