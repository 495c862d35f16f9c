package daemon

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// Recover rewrites the Raft state of a stopped authority (its --data-dir and
// --id) whose group lost its quorum for good, so that it restarts as the
// only voter with every entry of its log. With dryRun it only reports the
// last index, term and configuration on disk. See raftnode.Recover for what
// it cannot undo. It ignores the PostgreSQL fence: `rap-authority recover`
// uses RecoverAboveFence.
func Recover(dataDir, id string, dryRun bool, log hclog.Logger) (raftnode.RecoverResult, error) {
	return raftnode.Recover(filepath.Join(dataDir, "raft"), id, func() raft.FSM { return fsm.New(fsm.Options{}) }, dryRun, 0, log)
}

// FenceRecoverResult is what RecoverAboveFence found and did.
type FenceRecoverResult struct {
	raftnode.RecoverResult
	// Fence is the PostgreSQL fence row read before the recovery.
	Fence store.FenceState
}

// RecoverAboveFence is Recover for `rap-authority recover` (the lost-quorum
// procedure of docs/operations.md): it first reads the PostgreSQL fence at
// databaseURL, and raises the stored Raft term to the fence epoch. The lost
// quorum may have elected leaders and claimed the fence after this authority
// last heard from it, so the fence can be ahead of everything in this log;
// the recovered leader then claims an epoch above the fence instead of being
// refused as stale (and serving no fenced write at all). PostgreSQL must be
// reachable: without the fence the outcome is unknown, and nothing is written.
func RecoverAboveFence(ctx context.Context, dataDir, id, databaseURL string, dryRun bool, log hclog.Logger) (FenceRecoverResult, error) {
	var out FenceRecoverResult
	db, err := store.Open(ctx, databaseURL, store.Options{})
	if err != nil {
		return out, fmt.Errorf("recover: open PostgreSQL to read the authority fence: %w", err)
	}
	out.Fence, err = db.Fence(ctx)
	db.Close()
	if err != nil {
		return out, fmt.Errorf("recover: read the authority fence: %w", err)
	}
	out.RecoverResult, err = raftnode.Recover(filepath.Join(dataDir, "raft"), id, func() raft.FSM { return fsm.New(fsm.Options{}) }, dryRun, out.Fence.Epoch, log)
	return out, err
}
