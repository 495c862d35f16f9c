package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rap-fabric/core/httpapi"
)

// memberHealth remembers when each authority member last answered its status
// endpoint.
type memberHealth struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	version map[string]string // as each member last reported it
}

func newMemberHealth() *memberHealth {
	return &memberHealth{seen: map[string]time.Time{}, version: map[string]string{}}
}

func (h *memberHealth) mark(id, version string, t time.Time) {
	h.mu.Lock()
	h.seen[id] = t
	h.version[id] = version
	h.mu.Unlock()
}

// versionOf is the version member id reported in its last answer ("" when
// it never answered).
func (h *memberHealth) versionOf(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.version[id]
}

func (h *memberHealth) healthy(id string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.seen[id]
	return ok && now.Sub(t) < 6*time.Second
}

// healthLoop probes every member's status endpoint every 2 s.
func (d *Daemon) healthLoop() {
	defer d.wg.Done()
	client := &http.Client{Timeout: 1500 * time.Millisecond, Transport: &http.Transport{
		// Liveness only: the response is not trusted for anything but "answered".
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, //nolint:gosec
	}}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		d.health.mark(d.cfg.NodeID, d.version(), time.Now())
		for _, m := range d.FSM.Members() {
			if m.ID == d.cfg.NodeID || m.APIAddr == "" {
				continue
			}
			resp, err := client.Get("https://" + m.APIAddr + "/v1/authority/status")
			if err == nil {
				var st httpapi.AuthorityStatus
				if json.NewDecoder(resp.Body).Decode(&st) == nil && st.NodeID == m.ID {
					d.health.mark(m.ID, st.Version, time.Now())
				}
				resp.Body.Close()
			}
		}
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

// version is this binary's version ("dev" when not stamped).
func (d *Daemon) version() string {
	if d.cfg.Version == "" {
		return "dev"
	}
	return d.cfg.Version
}

// Status implements httpapi.StatusSource.
func (d *Daemon) Status() httpapi.AuthorityStatus {
	st := d.Raft.Stats()
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second) // bounded while PostgreSQL fails over
	fence, _ := d.DB.Fence(fctx)
	fcancel()
	out := httpapi.AuthorityStatus{NodeID: d.cfg.NodeID, State: st.State, LeaderID: st.LeaderID, AgreedEpoch: d.FSM.AgreedEpoch(), ClaimedEpoch: st.ClaimedEpoch, FenceEpoch: fence.Epoch, FenceEpochHeld: d.Auth.FenceEpoch(),
		Epoch: d.FSM.AgreedEpoch(), Version: d.version(),
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Members: []httpapi.MemberStatus{}}
	if p := d.DB.Primary(); !p.Server.Started.IsZero() {
		out.Database = &p
	}
	if !st.LastContact.IsZero() {
		lc := st.LastContact
		out.LastContact = &lc
	}
	if m, ok := d.FSM.Member(st.LeaderID); ok {
		out.LeaderAPIAddr = m.APIAddr
	}
	if d.Raft.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		out.Quorum = d.Raft.VerifyLeader(ctx) == nil
		cancel()
	} else {
		out.Quorum = st.LeaderID != "" && !st.LastContact.IsZero() && time.Since(st.LastContact) < 3*time.Second
	}
	now := time.Now()
	servers, _ := d.Raft.Servers()
	for _, s := range servers {
		ms := httpapi.MemberStatus{ID: s.ID, RaftAddr: s.Address, Suffrage: string(s.Suffrage), Healthy: d.health.healthy(s.ID, now), Version: d.health.versionOf(s.ID)}
		if s.ID == d.cfg.NodeID {
			ms.Version = d.version()
		}
		if m, ok := d.FSM.Member(s.ID); ok {
			ms.APIAddr = m.APIAddr
		}
		out.Members = append(out.Members, ms)
	}
	return out
}

func (d *Daemon) registerMetrics() {
	reg := d.API.Registry()
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("rap_raft_is_leader", "1 when this authority is the Raft leader.", func() float64 {
		if d.Raft.IsLeader() {
			return 1
		}
		return 0
	})
	gauge("rap_raft_term", "Current Raft term.", func() float64 { return float64(d.Raft.Stats().Term) })
	gauge("rap_raft_commit_index", "Raft commit index.", func() float64 { return float64(d.Raft.Stats().CommitIndex) })
	gauge("rap_authority_epoch", "Agreed authority epoch in the replicated state (FSM).", func() float64 { return float64(d.FSM.AgreedEpoch()) })
	gauge("rap_fence_epoch_held", "Epoch of the PostgreSQL fence this authority holds (0 when none).", func() float64 { return float64(d.Auth.FenceEpoch()) })
	gauge("rap_db_server_changes", "PostgreSQL server incarnations reached after the first (failovers, restarts).", func() float64 { return float64(d.DB.Primary().ServerChanges) })
	gauge("rap_fence_reaffirms", "Fence re-affirmations on a newly reached PostgreSQL server before its first fenced write.", func() float64 { return float64(d.DB.Primary().FenceReaffirms) })
	gauge("rap_fence_reaffirms_moved", "Fence re-affirmations that had to move the fence forward (the server had lost the claim).", func() float64 { return float64(d.DB.Primary().FenceMoved) })
}
