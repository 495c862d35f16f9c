package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/rap-fabric/core/httpapi"
)

// followerContactWindow is how recently a follower must have heard from its
// leader to count as part of a working quorum (as in Status).
const followerContactWindow = 3 * time.Second

// Health implements httpapi.HealthSource: a PostgreSQL ping and the Raft view
// (a leader confirms its quorum with one round, bounded by ctx).
func (d *Daemon) Health(ctx context.Context) httpapi.Health {
	st := d.Raft.Stats()
	h := httpapi.Health{NodeID: d.cfg.NodeID, Role: strings.ToLower(st.State), LeaderID: st.LeaderID}
	if m, ok := d.FSM.Member(st.LeaderID); ok {
		h.LeaderAPIAddr = m.APIAddr
	}
	h.Postgres = d.DB.Pool.Ping(ctx) == nil
	if d.Raft.IsLeader() {
		h.Quorum = d.Raft.VerifyLeader(ctx) == nil
		h.FenceHeld = d.Auth.FenceEpoch() > 0
	} else {
		h.Quorum = st.LeaderID != "" && !st.LastContact.IsZero() && time.Since(st.LastContact) < followerContactWindow
	}
	return h
}
