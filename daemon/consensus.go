package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/fsm"
)

// consensus adapts a raftnode.Node to authority.Consensus.
type consensus struct{ n *raftnode.Node }

func (c consensus) IsLeader() bool { return c.n.IsLeader() }

func (c consensus) LeaderID() string {
	_, id := c.n.Leader()
	return id
}

func (c consensus) VerifyLeader(ctx context.Context) error { return mapRaftErr(c.n.VerifyLeader(ctx)) }

func (c consensus) Apply(ctx context.Context, requestID string, cmd fsm.Command) (fsm.Result, error) {
	res, err := c.n.Apply(ctx, requestID, cmd)
	var ce *fsm.CommandError
	if errors.As(err, &ce) {
		return res, nil // the FSM rejected the command; res.Err says why
	}
	return res, mapRaftErr(err)
}

func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raftnode.ErrUnknownOutcome):
		return fmt.Errorf("%w: %w", authority.ErrConsensusUnknown, err)
	case errors.Is(err, raftnode.ErrNotLeader):
		return fmt.Errorf("%w: %w", authority.ErrConsensusNotLeader, err)
	case errors.Is(err, raftnode.ErrNoQuorum):
		return fmt.Errorf("%w: %w", authority.ErrConsensusNoQuorum, err)
	}
	return err
}
