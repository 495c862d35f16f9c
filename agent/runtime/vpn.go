package runtime

// The VPN lease loop of a membership (spec C18B/C18C; authority/vpn.go).
//
// Each tick the loop polls the node's VPN assignments (when due), renews the
// leases it holds, acquires a lease for an assignment it is eligible for and
// no other node holds, and reports its observed status per assignment
// (assigned, lease_required, blocked, not_started). It runs no tunnel: the
// workload supervisor acts on the lease events (VPNOptions.OnLease).
//
// Safety: a lease is counted from when the agent sent the request that
// granted or renewed it, on the agent's own clock (the authority's expiry is
// at least that late). When that local term ends without a successful
// renewal — the authorities are unreachable — the agent suspends the lease
// (the workload must stop) and keeps trying to renew it. A renewal the
// authority accepts resumes it; lease_lost (it expired, was fenced, revoked
// or superseded while the agent was cut off) ends it for good.

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
)

// VPNOptions configure the VPN lease loop.
type VPNOptions struct {
	// Disabled: no VPN loop (the node never holds a lease).
	Disabled bool
	// Every is the loop period (renewals and acquisitions); 0 means 500 ms.
	// A lease is renewed after a third of its term; it is suspended a margin
	// (a tenth of the term, at most 500 ms) before its local term ends, and
	// no network call of the loop outlasts the term of a held lease.
	Every time.Duration
	// PollEvery is how often assignments are polled; 0 means 2 s.
	PollEvery time.Duration
	// OnLease, when set, is called (from the loop goroutine) on every lease
	// event: the workload supervisor starts on acquired/resumed and must stop
	// on suspended, lost and released.
	OnLease func(LeaseEvent)
	// NoTunnels: run the lease loop only, no data path (vpntunnel.go).
	NoTunnels bool
	// TunnelNet is where tunnel interface addresses come from (a /30 per
	// connection); the zero value means DefaultTunnelNet.
	TunnelNet netip.Prefix
	// ReportEvery is how often a running tunnel's counters are reported to
	// the authority; 0 means 5 s.
	ReportEvery time.Duration
}

func (o *VPNOptions) defaults() {
	if o.Every <= 0 {
		o.Every = 500 * time.Millisecond
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 2 * time.Second
	}
	if !o.TunnelNet.IsValid() {
		o.TunnelNet = DefaultTunnelNet
	}
	if o.ReportEvery <= 0 {
		o.ReportEvery = 5 * time.Second
	}
}

// Lease event kinds.
const (
	LeaseAcquired  = "acquired"
	LeaseResumed   = "resumed"
	LeaseSuspended = "suspended"
	LeaseLost      = "lost"
	LeaseReleased  = "released"
)

// LeaseEvent is a change of a VPN lease held by this node.
type LeaseEvent struct {
	ClusterID    string    `json:"cluster_id"`
	ConnectionID string    `json:"connection_id"`
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	Generation   int64     `json:"generation"`
	Reason       string    `json:"reason,omitempty"`
	At           time.Time `json:"at"`
}

// VPNLeaseStatus is one VPN assignment as the running agent sees it.
type VPNLeaseStatus struct {
	ConnectionID string `json:"connection_id"`
	Name         string `json:"name"`
	// State: holding (the node runs the connection), suspended (its local
	// term ended without a renewal: stopped, renewing), standby (eligible,
	// another node holds it), blocked (not eligible) or disabled.
	State      string    `json:"state"`
	Generation int64     `json:"generation,omitempty"`
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// Reported is the status last reported to the authority.
	Reported string `json:"reported,omitempty"`
	// Role is the node's data-path part: exit or connector.
	Role string `json:"role,omitempty"`
	// ExitNodeID is the current lease holder as last polled.
	ExitNodeID string `json:"exit_node_id,omitempty"`
	// Tunnel is the data path (interface, counters, drops, current exit).
	Tunnel *agentapi.VPNTunnelStatus `json:"tunnel,omitempty"`
	// Acquired and Lost count this process's lease acquisitions and losses.
	Acquired  int    `json:"acquired"`
	Lost      int    `json:"lost"`
	LastEvent string `json:"last_event,omitempty"`
}

// vpnConn is the loop's state of one assignment.
type vpnConn struct {
	as          agentapi.VPNAssignment
	holding     bool
	suspended   bool
	gen         int64
	ttl         time.Duration
	deadline    time.Time
	renewedAt   time.Time
	nextAcquire time.Time
	reported    string
	acquired    int
	lost        int
	lastEvent   string
	eligibleNow bool
	// tunnelAt and tunnelSent: when and what data-path report was sent last.
	tunnelAt   time.Time
	tunnelSent agentapi.VPNTunnelStatus
}

// vpnRun is a membership's VPN loop state.
type vpnRun struct {
	conns map[string]*vpnConn
	data  *vpnData
}

func (m *member) vpnLoop(ctx context.Context) {
	o := m.a.o.VPN
	log := m.a.log.With("cluster_id", m.cluster, "loop", "vpn")
	run := &vpnRun{conns: map[string]*vpnConn{}, data: newVPNData()}
	m.vpnLoopRun = run // touched by the loop goroutine only
	var nextPoll time.Time
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		if m.mode() == "revoked" {
			m.vpnDataStopAll(run, "membership revoked", log)
			m.vpnStopAll(run, "membership revoked")
			m.publishVPN(run)
			return
		}
		now := m.a.o.Now()
		// Only nodes with a VPN role (or an assignment still known) ask.
		if !now.Before(nextPoll) && (m.hasVPNRole() || len(run.conns) > 0) {
			if err := m.vpnPoll(ctx, run, log); err != nil {
				log.Debug("VPN assignments poll failed", "error", err)
			}
			nextPoll = now.Add(o.PollEvery)
		}
		m.vpnTick(ctx, run, log)
		m.vpnDataReconcile(run, log)
		m.publishVPN(run) // before the reports: a stop must show at once
		m.vpnReportTunnels(ctx, run, log)
		m.publishVPN(run)
		select {
		case <-ctx.Done():
			// Forwarding stops before the lease is released.
			m.vpnDataStopAll(run, "agent stopping", log)
			m.vpnRelease(run, log)
			m.publishVPN(run)
			return
		case <-t.C:
		}
	}
}

// termMargin is how much earlier than its local term the agent stops using a
// lease: the loop's tick and the authority's reclaimer must not let two
// holders overlap.
func termMargin(ttl time.Duration) time.Duration {
	return min(ttl/10, 500*time.Millisecond)
}

// callCtx bounds a network call of the loop by the earliest local term of a
// held lease, so an unreachable authority never delays a suspension.
func (m *member) callCtx(ctx context.Context, run *vpnRun) (context.Context, context.CancelFunc) {
	var first time.Time
	now := m.now()
	for _, c := range run.conns {
		if !c.holding {
			continue
		}
		end := c.deadline
		// The exit stops forwarding when a renewal has been overdue for a
		// renewal interval (vpntunnel.go): no call may delay that either.
		if fd := c.renewedAt.Add(2 * c.ttl / 3); !c.renewedAt.IsZero() && fd.After(now) && fd.Before(end) {
			end = fd
		}
		if first.IsZero() || end.Before(first) {
			first = end
		}
	}
	if first.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, first)
}

// now is the agent's clock (time.Now when the member has no agent: tests).
func (m *member) now() time.Time {
	if m.a == nil {
		return time.Now()
	}
	return m.a.o.Now()
}

// hasVPNRole reports whether the membership's desired roles include
// vpn-exit or vpn-connector.
func (m *member) hasVPNRole() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.st.Roles, "vpn-exit") || slices.Contains(m.st.Roles, "vpn-connector")
}

func (m *member) vpnClient() *apiclient.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// vpnPoll refreshes the assignments. A connection the node may no longer see
// while holding its lease is lost (it is neither eligible nor the holder).
func (m *member) vpnPoll(ctx context.Context, run *vpnRun, log hclog.Logger) error {
	ctx, cancel := m.callCtx(ctx, run)
	defer cancel()
	var out agentapi.VPNAssignments
	if err := m.vpnClient().Do(ctx, http.MethodGet, agentapi.PathVPNAssignments, nil, &out, nil); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, as := range out.Items {
		seen[as.ConnectionID] = true
		c := run.conns[as.ConnectionID]
		if c == nil {
			c = &vpnConn{}
			run.conns[as.ConnectionID] = c
		}
		c.as = as
		c.eligibleNow = as.Eligible
	}
	var gone []*vpnConn
	for id, c := range run.conns {
		if !seen[id] {
			if c.holding || c.suspended {
				gone = append(gone, c)
			}
			delete(run.conns, id)
		}
	}
	for _, c := range gone {
		m.vpnEnd(c, LeaseLost, "the connection is no longer assigned to this node", log)
	}
	return nil
}

func (m *member) vpnTick(ctx context.Context, run *vpnRun, log hclog.Logger) {
	m.vpnEnforce(run, log)
	for _, c := range run.conns {
		now := m.a.o.Now()
		cctx, cancel := m.callCtx(ctx, run)
		switch {
		case c.holding || c.suspended:
			if c.as.DesiredState != "enabled" && c.holding {
				m.vpnReleaseOne(ctx, c, log)
				break
			}
			if c.suspended || now.Sub(c.renewedAt) >= c.ttl/3 {
				m.vpnRenew(cctx, c, log)
			}
		case c.as.DesiredState == "enabled" && c.as.Eligible && !c.as.LeaseHeldByOther && !now.Before(c.nextAcquire) &&
			c.as.Role != agentapi.VPNRoleConnector: // connectors follow the lease, never hold it
			m.vpnAcquire(cctx, c, log)
		}
		cancel()
		m.vpnEnforce(run, log)
		cctx, cancel = m.callCtx(ctx, run)
		m.vpnReport(cctx, c, log)
		cancel()
	}
	m.vpnEnforce(run, log)
}

func (m *member) vpnAcquire(ctx context.Context, c *vpnConn, log hclog.Logger) {
	sent := m.a.o.Now()
	var g agentapi.VPNLeaseGrant
	err := m.vpnClient().Do(ctx, http.MethodPost, agentapi.PathVPNLease(c.as.ConnectionID), map[string]any{}, &g, nil)
	if err != nil {
		c.nextAcquire = sent.Add(m.a.o.VPN.PollEvery)
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			switch ae.Code {
			case "lease_held":
				c.as.LeaseHeldByOther = true // until the next poll says otherwise
			case "not_eligible", "connection_disabled", "not_found":
				c.as.Eligible = false
			}
		}
		log.Debug("VPN lease not acquired", "connection_id", c.as.ConnectionID, "error", err)
		return
	}
	c.gen, c.ttl = g.Generation, time.Duration(g.TTLSeconds)*time.Second
	c.holding, c.suspended = true, false
	c.renewedAt, c.deadline = sent, sent.Add(c.ttl-termMargin(c.ttl))
	if g.AlreadyHeld {
		// Held from before (a restart): its remaining term is unknown here,
		// so renew at once.
		c.renewedAt = time.Time{}
	}
	c.acquired++
	m.vpnEvent(c, LeaseAcquired, "", log)
}

func (m *member) vpnRenew(ctx context.Context, c *vpnConn, log hclog.Logger) {
	sent := m.a.o.Now()
	var g agentapi.VPNLeaseGrant
	err := m.vpnClient().Do(ctx, http.MethodPost, agentapi.PathVPNRenew(c.as.ConnectionID), agentapi.VPNLeaseRequest{Generation: c.gen}, &g, nil)
	if err == nil {
		c.ttl = time.Duration(g.TTLSeconds) * time.Second
		c.renewedAt, c.deadline = sent, sent.Add(c.ttl-termMargin(c.ttl))
		if !m.a.o.Now().Before(c.deadline) {
			return // the answer came too late to resume on
		}
		if c.suspended {
			c.suspended, c.holding = false, true
			m.vpnEvent(c, LeaseResumed, "renewed before the authority's expiry", log)
		}
		return
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) && (ae.Code == "lease_lost" || ae.Code == "not_found") {
		m.vpnEnd(c, LeaseLost, ae.Message, log)
		return
	}
	log.Debug("VPN lease renewal failed; retrying", "connection_id", c.as.ConnectionID, "generation", c.gen, "error", err)
}

// vpnEnforce suspends every held lease whose local term ended.
func (m *member) vpnEnforce(run *vpnRun, log hclog.Logger) {
	now := m.a.o.Now()
	for _, c := range run.conns {
		if c.holding && !now.Before(c.deadline) {
			m.vpnSuspend(c, log)
		}
	}
}

func (m *member) vpnSuspend(c *vpnConn, log hclog.Logger) {
	c.holding, c.suspended = false, true
	m.vpnEvent(c, LeaseSuspended, "the lease term ended without a renewal (no authority answered): stopped until a renewal succeeds", log)
}

// vpnEnd ends the node's hold on c (lost or released).
func (m *member) vpnEnd(c *vpnConn, kind, reason string, log hclog.Logger) {
	gen := c.gen
	c.holding, c.suspended = false, false
	if kind == LeaseLost {
		c.lost++
	}
	c.nextAcquire = m.a.o.Now().Add(m.a.o.VPN.PollEvery)
	m.vpnEventGen(c, kind, gen, reason, log)
	c.gen = 0
}

func (m *member) vpnReleaseOne(ctx context.Context, c *vpnConn, log hclog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.a.o.RequestTimeout)
	defer cancel()
	err := m.vpnClient().Do(rctx, http.MethodPost, agentapi.PathVPNRelease(c.as.ConnectionID), agentapi.VPNLeaseRequest{Generation: c.gen}, nil, nil)
	if err != nil {
		log.Warn("VPN lease release failed; it expires at the end of its term", "connection_id", c.as.ConnectionID, "error", err)
	}
	m.vpnEnd(c, LeaseReleased, "released", log)
}

// vpnRelease releases every held lease when the agent stops, so another
// node takes over without waiting for the expiry.
func (m *member) vpnRelease(run *vpnRun, log hclog.Logger) {
	for _, c := range run.conns {
		if c.holding {
			m.vpnReleaseOne(context.Background(), c, log)
		}
	}
}

func (m *member) vpnStopAll(run *vpnRun, reason string) {
	for _, c := range run.conns {
		if c.holding || c.suspended {
			m.vpnEnd(c, LeaseLost, reason, m.a.log)
		}
	}
}

func (m *member) vpnEvent(c *vpnConn, kind, reason string, log hclog.Logger) {
	m.vpnEventGen(c, kind, c.gen, reason, log)
}

func (m *member) vpnEventGen(c *vpnConn, kind string, gen int64, reason string, log hclog.Logger) {
	ev := LeaseEvent{ClusterID: m.cluster, ConnectionID: c.as.ConnectionID, Name: c.as.Name, Kind: kind, Generation: gen, Reason: reason, At: m.a.o.Now().UTC()}
	c.lastEvent = kind + " generation " + itoa64(gen) + " at " + ev.At.Format(time.RFC3339Nano)
	switch kind {
	case LeaseSuspended, LeaseLost, LeaseReleased:
		// Only the lease holder forwards: stop in this very step.
		m.vpnDataStop(m.vpnLoopRun, c.as.ConnectionID, "lease "+kind, log)
	case LeaseAcquired, LeaseResumed:
		// Start the exit at once: connectors may already see this node as
		// the holder.
		if m.vpnLoopRun != nil {
			m.vpnDataReconcile(m.vpnLoopRun, log)
		}
	}
	switch kind {
	case LeaseLost, LeaseSuspended:
		log.Warn("VPN lease "+kind+": the connection must stop", "connection_id", ev.ConnectionID, "name", ev.Name, "generation", gen, "reason", reason)
	default:
		log.Info("VPN lease "+kind, "connection_id", ev.ConnectionID, "name", ev.Name, "generation", gen)
	}
	if f := m.a.o.VPN.OnLease; f != nil {
		f(ev)
	}
	if m.vpnLoopRun != nil {
		m.publishVPN(m.vpnLoopRun) // at once: the status endpoint must not lag a stop
	}
}

// vpnReport sends the observed status of c when it changed.
func (m *member) vpnReport(ctx context.Context, c *vpnConn, log hclog.Logger) {
	st := "lease_required"
	switch {
	case c.holding:
		st = "assigned"
	case c.as.DesiredState != "enabled":
		st = "not_started"
	case c.as.Role == agentapi.VPNRoleConnector:
		st = "not_started"
		if t := m.tunnelStatus(m.vpnLoopRun, c.as.ConnectionID); t != nil && t.Running {
			st = "assigned"
		}
	case !c.as.Eligible:
		st = "blocked"
	}
	if st == c.reported {
		return
	}
	req := agentapi.VPNStatusRequest{Status: st, LeaseGeneration: c.gen, Tunnel: m.tunnelStatus(m.vpnLoopRun, c.as.ConnectionID)}
	if c.suspended {
		req.Detail = "lease suspended: renewing"
	}
	if err := m.vpnClient().Do(ctx, http.MethodPost, agentapi.PathVPNStatus(c.as.ConnectionID), req, nil, nil); err != nil {
		log.Debug("VPN status report failed; retrying", "connection_id", c.as.ConnectionID, "error", err)
		return
	}
	c.reported = st
	if req.Tunnel != nil {
		c.tunnelAt, c.tunnelSent = m.a.o.Now(), *req.Tunnel
	}
}

// vpnReportTunnels sends the data-path counters of each assignment whose
// tunnel changed since the last report, at most every ReportEvery.
func (m *member) vpnReportTunnels(ctx context.Context, run *vpnRun, log hclog.Logger) {
	now := m.a.o.Now()
	for _, c := range run.conns {
		t := m.tunnelStatus(run, c.as.ConnectionID)
		if t == nil || c.reported == "" || now.Sub(c.tunnelAt) < m.a.o.VPN.ReportEvery || sameTunnel(*t, c.tunnelSent) {
			continue
		}
		cctx, cancel := m.callCtx(ctx, run)
		err := m.vpnClient().Do(cctx, http.MethodPost, agentapi.PathVPNStatus(c.as.ConnectionID),
			agentapi.VPNStatusRequest{Status: c.reported, LeaseGeneration: c.gen, Tunnel: t}, nil, nil)
		cancel()
		if err != nil {
			log.Debug("VPN tunnel report failed; retrying", "connection_id", c.as.ConnectionID, "error", err)
			continue
		}
		c.tunnelAt, c.tunnelSent = now, *t
	}
}

func sameTunnel(a, b agentapi.VPNTunnelStatus) bool {
	return a.Running == b.Running && a.Interface == b.Interface && a.ExitNodeID == b.ExitNodeID && a.TxPackets == b.TxPackets &&
		a.RxPackets == b.RxPackets && a.Error == b.Error && maps.Equal(a.Drops, b.Drops)
}

// publishVPN publishes the loop's view for the status endpoint (only the
// loop goroutine touches run).
func (m *member) publishVPN(run *vpnRun) {
	out := make([]VPNLeaseStatus, 0, len(run.conns))
	for _, c := range run.conns {
		s := VPNLeaseStatus{ConnectionID: c.as.ConnectionID, Name: c.as.Name, Generation: c.gen, Reported: c.reported,
			Acquired: c.acquired, Lost: c.lost, LastEvent: c.lastEvent, Role: c.as.Role, ExitNodeID: c.as.ExitNodeID,
			Tunnel: m.tunnelStatus(run, c.as.ConnectionID)}
		switch {
		case c.holding:
			s.State, s.ValidUntil = "holding", c.deadline
		case c.suspended:
			s.State = "suspended"
		case c.as.DesiredState != "enabled":
			s.State = "disabled"
		case c.as.Role == agentapi.VPNRoleConnector:
			s.State = "connector"
		case !c.as.Eligible:
			s.State = "blocked"
		default:
			s.State = "standby"
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y VPNLeaseStatus) int { return strings.Compare(x.Name, y.Name) })
	m.mu.Lock()
	m.st.VPN = out
	m.mu.Unlock()
}

func itoa64(v int64) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
