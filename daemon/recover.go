package daemon

import (
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/fsm"
)

// Recover rewrites the Raft state of a stopped authority (its --data-dir and
// --id) whose group lost its quorum for good, so that it restarts as the
// only voter with every entry of its log (`rap-authority recover`, the
// lost-quorum procedure of docs/operations.md). With dryRun it only reports
// the last index, term and configuration on disk. See raftnode.Recover for
// what it cannot undo.
func Recover(dataDir, id string, dryRun bool, log hclog.Logger) (raftnode.RecoverResult, error) {
	return raftnode.Recover(filepath.Join(dataDir, "raft"), id, func() raft.FSM { return fsm.New(fsm.Options{}) }, dryRun, log)
}
