package runtime

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/adminingress"
	"github.com/rap-fabric/core/agent/facts"
	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/domain"
)

// RunOptions configure an Agent.
type RunOptions struct {
	// Interval between heartbeats; 0 means 5 s. Each wait is jittered ±10 %.
	Interval time.Duration
	// DesiredEvery is how often desired roles are polled; 0 means 3 intervals.
	DesiredEvery time.Duration
	// FactsEvery is how often facts are gathered again; 0 means 1 min.
	FactsEvery time.Duration
	// DegradedAfter is the number of consecutive failed heartbeat rounds
	// (no authority answered) before the membership turns degraded; 0 means 2.
	DegradedAfter int
	// RequestTimeout bounds one exchange with one authority; 0 means 3 s.
	RequestTimeout time.Duration
	// StatusSocket is the unix socket of the status endpoint; "" means none.
	StatusSocket string
	// MetricsListen is the loopback address of the Prometheus metrics
	// listener; DebugListen of the pprof listener; "" runs none (metrics.go).
	// Non-loopback addresses are refused.
	MetricsListen string
	DebugListen   string
	// Capabilities are configured capabilities (added to the detected ones).
	Capabilities []domain.Capability
	// AgentVersion is reported in heartbeats.
	AgentVersion string
	// Logger; nil means a null logger.
	Logger hclog.Logger
	// Gather replaces fact gathering (tests); nil means facts.Gather.
	Gather func(facts.Options) (facts.Facts, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Snapshot configures the snapshot loop and config-storage serving
	// (snapshot.go); Mesh the mesh (mesh.go).
	Snapshot SnapshotOptions
	Mesh     MeshOptions
	// Workloads supervises the assigned service workloads; nil runs none
	// (the heartbeat then reports an empty list).
	Workloads Workloads
	// VPN configures the VPN lease loop (vpn.go).
	VPN VPNOptions
	// Update configures self-update (update.go); zero disables it.
	Update UpdateOptions
	// Admin configures the Cluster Admin Endpoint (adminingress.go); zero
	// runs none.
	Admin AdminOptions
}

func (o *RunOptions) defaults() {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.DesiredEvery <= 0 {
		o.DesiredEvery = 3 * o.Interval
	}
	if o.FactsEvery <= 0 {
		o.FactsEvery = time.Minute
	}
	if o.DegradedAfter <= 0 {
		o.DegradedAfter = 2
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Gather == nil {
		o.Gather = facts.Gather
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Snapshot.defaults()
	o.VPN.defaults()
	o.Update.defaults()
}

// Agent runs every membership of a state file.
type Agent struct {
	st      *state.Store
	o       RunOptions
	log     hclog.Logger
	started time.Time

	mu      sync.Mutex
	members map[string]*member

	// updates carries snapshot update sections to the update loop (nil:
	// self-update disabled); reportedRunning is the version last reported
	// as running (update loop only).
	updates         chan updateOrder
	reportedRunning string

	// upMu guards upState, the update state heartbeats carry (set by every
	// update report; computed from the slots and pending_update at start).
	upMu    sync.Mutex
	upState *updateReport
	// wlStatus is the update state of each service workload product.
	wlStatus map[string]updateReport
	// admin is the Cluster Admin Endpoint (nil: none; set before Run's
	// loops start, under mu).
	admin *adminingress.Endpoint
}

// NewAgent builds an agent over an open state store.
func NewAgent(st *state.Store, o RunOptions) *Agent {
	o.defaults()
	a := &Agent{st: st, o: o, log: o.Logger, members: map[string]*member{}}
	if o.Update.SlotsDir != "" {
		a.updates = make(chan updateOrder, 1)
	}
	return a
}

// Run runs until ctx ends: the status endpoint and, for each enrolled
// membership that is not revoked, its heartbeat loop.
func (a *Agent) Run(ctx context.Context) error {
	ctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	a.started = a.o.Now()
	clusters, err := a.st.Memberships()
	if err != nil {
		return err
	}
	a.cleanupTunnels()
	var wg sync.WaitGroup
	n := 0
	for _, c := range clusters {
		id, err := a.st.Identity(c)
		if err != nil || id.CertificatePEM == "" {
			a.log.Info("skipping membership that is not enrolled", "cluster_id", c)
			continue
		}
		m, err := newMember(a, c, id)
		if err != nil {
			a.log.Error("membership cannot start", "cluster_id", c, "error", err)
			continue
		}
		a.mu.Lock()
		a.members[c] = m
		a.mu.Unlock()
		n++
		if m.mode() == state.ModeRevoked {
			a.log.Warn("membership is revoked; not starting it (enroll again with a new token)", "cluster_id", c)
			m.stopWorkloads("membership revoked")
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); m.loop(ctx) }()
		if !a.o.Snapshot.Disabled {
			wg.Add(1)
			go func() { defer wg.Done(); m.snapshotLoop(ctx) }()
			if a.o.Workloads != nil {
				wg.Add(1)
				go func() { defer wg.Done(); m.workloadUpdateLoop(ctx) }()
			}
		}
		if !a.o.VPN.Disabled {
			wg.Add(1)
			go func() { defer wg.Done(); m.vpnLoop(ctx) }()
		}
	}
	if n == 0 {
		return ErrNoMemberships
	}
	adm, err := a.startAdmin()
	if err != nil {
		return err
	}
	if adm != nil {
		a.mu.Lock()
		a.admin = adm
		a.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := adm.Run(ctx); err != nil {
				a.log.Error("cluster admin endpoint stopped", "error", err)
			}
		}()
	}
	if a.o.StatusSocket != "" {
		srv, err := serveStatus(a.o.StatusSocket, a)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	obs, err := a.serveObservers()
	if err != nil {
		return err
	}
	defer obs.close()
	a.log.Info("agent running", "memberships", n, "interval", a.o.Interval)
	if a.updates == nil {
		<-ctx.Done()
		wg.Wait()
		return nil
	}
	err = a.updateLoop(ctx)
	if errors.Is(err, ErrSwitchRequested) {
		stopAll()
	}
	wg.Wait()
	return err
}

// Status reports every membership as the running agent sees it.
func (a *Agent) Status() StatusReport {
	r := StatusReport{Source: "agent", AgentVersion: a.o.AgentVersion, StatePath: a.st.Path(), StartedAt: a.started, Memberships: []MemberStatus{}}
	a.mu.Lock()
	ms := make([]*member, 0, len(a.members))
	for _, m := range a.members {
		ms = append(ms, m)
	}
	a.mu.Unlock()
	for _, m := range ms {
		r.Memberships = append(r.Memberships, m.status())
	}
	slices.SortFunc(r.Memberships, func(x, y MemberStatus) int { return strings.Compare(x.ClusterID, y.ClusterID) })
	r.Mesh = a.MeshStatuses()
	a.mu.Lock()
	adm := a.admin
	a.mu.Unlock()
	if adm != nil {
		st := adm.Status()
		r.AdminEndpoint = &st
	}
	return r
}

// member is one cluster membership's runtime.
type member struct {
	a       *Agent
	cluster string

	// idMu serializes changes of the stored identity (updateIdentity).
	idMu sync.Mutex
	mu   sync.Mutex
	id   state.Identity
	keys *identity.Keys
	cert *x509.Certificate
	// ca is the pinned root that issued cert; roots are every pinned root
	// (caroots.go).
	ca     *x509.Certificate
	roots  []*x509.Certificate
	client *apiclient.Client
	st     MemberStatus
	// renewFor is the active CA root an early renewal is pending for;
	// renewTried the root whose early renewal did not yield a certificate
	// of it (not retried).
	renewFor, renewTried string

	seq          int64
	failures     int
	sendFacts    bool
	factsJSON    json.RawMessage
	factsHash    string
	caps         []domain.Capability
	factsAt      time.Time
	desiredAt    time.Time
	loopsStopped bool
	snap         *snapRun
	// hbs sends the heartbeats (stream or POST; heartbeat loop only).
	hbs hbSender
	// kick asks the heartbeat loop for an early round (a workload changed
	// state); see WorkloadsChanged.
	kick chan struct{}
	// vpnLoopRun is the VPN loop's state (vpn.go; its goroutine only).
	vpnLoopRun *vpnRun
	// wlState is the workload update records (workload_updates.go).
	wlState *wlState
	// lastPing is the last `mesh ping` from this membership, sent with every
	// heartbeat after it (the authority keeps the latest heartbeat's).
	lastPing *pingReport
}

func newMember(a *Agent, cluster string, id state.Identity) (*member, error) {
	m := &member{a: a, cluster: cluster, sendFacts: true, kick: make(chan struct{}, 1)}
	if err := m.load(id); err != nil {
		return nil, err
	}
	ms, _ := a.st.Membership(cluster)
	p, _ := a.st.Partition(cluster)
	h, _ := a.st.Health(cluster)
	v, _ := a.st.AppliedVersion(cluster)
	m.st = MemberStatus{ClusterID: cluster, NodeID: id.NodeID, Authorities: id.AuthorityURLs, MembershipStatus: string(ms.Status),
		Mode: string(p.Mode), ModeSince: p.Since, ModeReason: p.Reason, LastHeartbeatAck: h.LastHeartbeatOK, ConsecutiveErrors: h.ConsecutiveErrors,
		LastError: h.LastError, AppliedVersion: v, Roles: roleStrings(ms.Roles)}
	m.fillCert()
	return m, nil
}

func (m *member) load(id state.Identity) error {
	keys, err := identity.LoadKeys(id.SigningKey, id.NoiseKey)
	if err != nil {
		return err
	}
	roots, err := pinnedRoots(id)
	if err != nil {
		return err
	}
	cert, err := identity.ParseCertificatePEM([]byte(id.CertificatePEM))
	if err != nil {
		return err
	}
	ca := issuerOf(cert, roots)
	if ca == nil {
		ca = roots[0]
	}
	pins := pinsOf(id, roots)
	if len(pins) == 0 || pins[0] == "" {
		return errors.New("runtime: the identity pins no CA")
	}
	client, err := apiclient.New(apiclient.Options{Servers: id.AuthorityURLs, CAPins: pins, ServerName: serverNameForCluster(m.cluster),
		Certificate: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: keys.Signing, Leaf: cert}, Timeout: m.a.o.RequestTimeout})
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.client
	m.id, m.keys, m.cert, m.ca, m.roots, m.client = id, keys, cert, ca, roots, client
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// pins returns the CA pins of the membership's API clients.
func (m *member) pins() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return pinsOf(m.id, m.roots)
}

func (m *member) fillCert() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.CertificateSerial = m.cert.SerialNumber.Text(16)
	m.st.CertificateNotAfter = m.cert.NotAfter
	if m.st.Mode == "" {
		m.st.Mode = string(state.ModeNormal)
	}
}

func (m *member) mode() state.Mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return state.Mode(m.st.Mode)
}

func (m *member) status() MemberStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.Authorities = slices.Clone(s.Authorities)
	s.CARoots = caRootIDs(m.id)
	s.CertificateIssuer = issuerKeyID(m.cert, m.roots)
	s.Roles = slices.Clone(s.Roles)
	s.VPN = slices.Clone(s.VPN)
	s.Running = !m.loopsStopped && s.Mode != string(state.ModeRevoked)
	m.mu.Unlock()
	s.Snapshot = m.snapshotStatus()
	sn := m.sn()
	sn.mu.Lock()
	c := sn.cache
	sn.mu.Unlock()
	if c != nil {
		s.UpdateCache = c.status()
	}
	if w := m.a.o.Workloads; w != nil {
		s.Workloads = w.Statuses(m.cluster)
	}
	m.mu.Lock()
	return s
}

func (m *member) loop(ctx context.Context) {
	log := m.a.log.With("cluster_id", m.cluster)
	defer func() {
		m.mu.Lock()
		m.loopsStopped = true
		c := m.client
		m.mu.Unlock()
		m.hbs.close()
		c.Close()
	}()
	first := true
	var last time.Time
	for {
		if !first {
			wait := jitter(m.a.o.Interval)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			case <-m.kick:
				// Early, but at most one extra round per minKickGap.
				if gap := minKickGap - time.Since(last); gap > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(gap):
					}
				}
			}
		}
		first = false
		last = time.Now()
		if ctx.Err() != nil {
			return
		}
		if revoked := m.round(ctx, log); revoked {
			log.Warn("membership revoked: its loops stop and are not retried; enroll again with a new token")
			return
		}
	}
}

// minKickGap is the shortest time between two heartbeat rounds when
// workload changes ask for early ones.
const minKickGap = 200 * time.Millisecond

// WorkloadsChanged asks cluster's membership for an early heartbeat, so a
// workload's new state reaches the authority without waiting a full
// interval (agent/workload Options.OnChange). It never blocks.
func (a *Agent) WorkloadsChanged(cluster string) {
	a.mu.Lock()
	m := a.members[cluster]
	a.mu.Unlock()
	if m == nil {
		return
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func jitter(d time.Duration) time.Duration {
	j := time.Duration(float64(d) * 0.1 * (2*rand.Float64() - 1))
	return d + j
}

// round is one heartbeat round (with renewal and desired-state polling when
// due). It reports whether the membership is now revoked.
func (m *member) round(ctx context.Context, log hclog.Logger) bool {
	now := m.a.o.Now()
	m.refreshFacts(now, log)
	if m.renewDue(now) || m.earlyRenewal() {
		if err := m.renew(ctx); err != nil {
			log.Warn("certificate renewal failed; retrying next round", "error", err)
			if m.isRevocation(ctx, err) {
				m.revoke(err)
				return true
			}
		} else {
			m.renewedEarly(log)
			m.mu.Lock()
			issuer := m.ca.Subject.CommonName
			m.mu.Unlock()
			log.Info("certificate renewed", "serial", m.status().CertificateSerial, "not_after", m.status().CertificateNotAfter, "issuer", issuer)
		}
	}
	ack, err := m.heartbeat(ctx)
	if err != nil {
		if m.isRevocation(ctx, err) {
			m.revoke(err)
			return true
		}
		m.fail(err, log)
		return false
	}
	m.ok(ack, log)
	if now.Sub(m.desiredAt) >= m.a.o.DesiredEvery {
		if err := m.pollDesired(ctx); err != nil {
			if m.isRevocation(ctx, err) {
				m.revoke(err)
				return true
			}
			log.Debug("desired state poll failed", "error", err)
		} else {
			m.desiredAt = now
		}
	}
	return false
}

func (m *member) refreshFacts(now time.Time, log hclog.Logger) {
	if m.factsJSON != nil && now.Sub(m.factsAt) < m.a.o.FactsEvery && !m.takeFactsRefresh() {
		return
	}
	eps := m.endpoints()
	f, err := m.a.o.Gather(facts.Options{AgentVersion: m.a.o.AgentVersion, Configured: m.a.o.Capabilities})
	if err != nil {
		log.Warn("gathering facts failed", "error", err)
		return
	}
	m.factsAt = now
	stamp := f.GatheredAt
	f.GatheredAt = time.Time{}
	raw, _ := json.Marshal(f)
	raw = withEndpoints(raw, eps)
	sum := sha256.Sum256(raw)
	h := hex.EncodeToString(sum[:])
	f.GatheredAt = stamp
	if h != m.factsHash {
		m.factsJSON, _ = json.Marshal(f)
		m.factsJSON = withEndpoints(m.factsJSON, eps)
		m.factsHash = h
		m.caps = nonNilCaps(f.Capabilities)
		m.sendFacts = true
	}
}

func (m *member) heartbeat(ctx context.Context) (heartbeatAck, error) {
	m.mu.Lock()
	m.seq++
	hb := heartbeat{Seq: m.seq, SentAt: m.a.o.Now().UTC(), AgentVersion: m.a.o.AgentVersion, AppliedVersion: int64(m.st.AppliedVersion),
		State: m.st.Mode}
	if hb.State != string(state.ModeDegraded) {
		hb.State = string(state.ModeNormal)
	}
	health, _ := json.Marshal(map[string]any{"status": "ok", "consecutive_errors": m.failures, "uptime_seconds": int64(m.a.o.Now().Sub(m.a.started).Seconds())})
	hb.Health = health
	sendFacts := m.sendFacts
	if sendFacts {
		hb.Facts, hb.Capabilities = m.factsJSON, m.caps
	}
	hb.LastPing = m.lastPing
	client := m.client
	m.mu.Unlock()
	hb.Services = m.workloadReport()
	hb.Updates = m.a.updateStatus()
	hb.Load = readLoad(m.linksUp())

	ack, err := m.hbs.send(ctx, client, hb, m.a.o.RequestTimeout, m.a.o.Now())
	if err == nil {
		m.mu.Lock()
		m.sendFacts = ack.NeedFacts || (m.sendFacts && !sendFacts)
		m.mu.Unlock()
	}
	return ack, err
}

func (m *member) ok(ack heartbeatAck, log hclog.Logger) {
	now := m.a.o.Now().UTC()
	m.mu.Lock()
	wasDegraded := m.st.Mode == string(state.ModeDegraded)
	m.failures = 0
	m.st.Mode = string(state.ModeNormal)
	m.st.LastHeartbeatAck = now
	m.st.LastAckAuthority = ack.AuthorityID
	m.st.ConsecutiveErrors = 0
	m.st.LastError = ""
	m.st.HeartbeatsAcked++
	if wasDegraded {
		m.st.ModeSince, m.st.ModeReason = now, ""
	}
	m.mu.Unlock()
	if wasDegraded {
		log.Info("an authority answers again: leaving degraded mode", "authority", ack.AuthorityID)
		m.putMode(state.ModeNormal, now, "recovered")
	}
	_ = m.a.st.PutHealth(m.cluster, state.LocalHealth{LastHeartbeatOK: now})
}

func (m *member) fail(err error, log hclog.Logger) {
	now := m.a.o.Now().UTC()
	m.mu.Lock()
	m.failures++
	m.st.ConsecutiveErrors = m.failures
	m.st.HeartbeatFailures++
	m.st.LastError = shortErr(err)
	enter := m.failures >= m.a.o.DegradedAfter && m.st.Mode == string(state.ModeNormal)
	if enter {
		m.st.Mode, m.st.ModeSince, m.st.ModeReason = string(state.ModeDegraded), now, "no authority answers: "+shortErr(err)
	}
	h := state.LocalHealth{LastHeartbeatOK: m.st.LastHeartbeatAck, ConsecutiveErrors: m.failures, LastError: m.st.LastError}
	reason := m.st.ModeReason
	m.mu.Unlock()
	log.Warn("heartbeat failed", "consecutive", h.ConsecutiveErrors, "error", err)
	if enter {
		log.Warn("entering degraded mode: keeping the last good state and retrying", "reason", reason)
		m.putMode(state.ModeDegraded, now, reason)
	}
	_ = m.a.st.PutHealth(m.cluster, h)
}

// isRevocation tells a revoked (or expired) identity from an authority that
// cannot answer: a 403 revoked answer is final; a refused TLS handshake or an
// unauthenticated answer is confirmed by asking for the certificate's status
// without a client certificate.
func (m *member) isRevocation(ctx context.Context, err error) bool {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case "revoked":
			return true
		case "unauthenticated":
		default:
			return false
		}
	} else if !strings.Contains(err.Error(), "remote error: tls:") {
		return false
	}
	s, cerr := m.certStatus(ctx)
	return cerr == nil && (s == "revoked" || s == "expired")
}

func (m *member) certStatus(ctx context.Context) (string, error) {
	m.mu.Lock()
	id, der := m.id, m.cert.Raw
	m.mu.Unlock()
	c, err := apiclient.New(apiclient.Options{Servers: id.AuthorityURLs, CAPins: m.pins(), ServerName: serverNameForCluster(m.cluster), Timeout: m.a.o.RequestTimeout})
	if err != nil {
		return "", err
	}
	defer c.Close()
	var out certStatus
	if err := c.Do(ctx, http.MethodPost, pathCertStatus, map[string][]byte{"certificate": der}, &out, nil); err != nil {
		return "", err
	}
	return out.Status, nil
}

func (m *member) revoke(cause error) {
	now := m.a.o.Now().UTC()
	reason := "revoked: " + shortErr(cause)
	m.mu.Lock()
	m.st.Mode, m.st.ModeSince, m.st.ModeReason = string(state.ModeRevoked), now, reason
	m.st.MembershipStatus = string(domain.MembershipRevoked)
	m.mu.Unlock()
	m.putMode(state.ModeRevoked, now, reason)
	m.stopWorkloads(reason)
	if ms, err := m.a.st.Membership(m.cluster); err == nil {
		ms.Status = domain.MembershipRevoked
		_ = m.a.st.PutMembership(m.cluster, ms)
	}
}

// renewDue: less than a third of the certificate's lifetime remains.
func (m *member) renewDue(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	life := m.cert.NotAfter.Sub(m.cert.NotBefore)
	return m.cert.NotAfter.Sub(now) < life/3
}

func (m *member) renew(ctx context.Context) error {
	m.mu.Lock()
	client, keys, roots, id := m.client, m.keys, m.roots, m.id
	m.mu.Unlock()
	// Naming the pinned roots lets the authority issue from the active
	// root during a CA rotation's overlap (caroots.go).
	var rc renewedCert
	if err := client.Do(ctx, http.MethodPost, pathRenew, agentapi.RenewRequest{TrustedRoots: m.pinnedKeyIDs()}, &rc, nil); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.Certificate})
	var verr error
	for _, ca := range roots {
		if _, verr = identity.VerifyNodeCertificate(certPEM, identity.NodeCertOptions{CA: ca, ClusterID: m.cluster, NodeID: id.NodeID, PublicKey: keys.SigningPublic(), Now: m.a.o.Now()}); verr == nil {
			break
		}
	}
	if verr != nil {
		return fmt.Errorf("%w: renewed certificate (no pinned root issued it): %w", ErrBadEnrollment, verr)
	}
	if _, err := m.updateIdentity(func(id *state.Identity) bool {
		id.CertificatePEM = string(certPEM)
		return true
	}); err != nil {
		return err
	}
	m.fillCert()
	return nil
}

func (m *member) pollDesired(ctx context.Context) error {
	m.mu.Lock()
	client := m.client
	m.mu.Unlock()
	var d desiredState
	if err := client.Do(ctx, http.MethodGet, pathDesired, nil, &d, nil); err != nil {
		return err
	}
	roles := make([]domain.Role, 0, len(d.Roles))
	for _, r := range d.Roles {
		if r.Status == "" || r.Status == "active" {
			roles = append(roles, r.Role)
		}
	}
	slices.Sort(roles)
	roles = slices.Compact(roles)
	ms, err := m.a.st.Membership(m.cluster)
	if err != nil {
		return err
	}
	status := domain.MembershipStatus(d.MembershipStatus)
	if !slices.Equal(ms.Roles, roles) || ms.Status != status {
		ms.Roles, ms.Status = roles, status
		if err := m.a.st.PutMembership(m.cluster, ms); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.st.Roles = roleStrings(roles)
	m.st.MembershipStatus = string(status)
	m.st.DesiredPolledAt = m.a.o.Now().UTC()
	m.mu.Unlock()
	return nil
}

func roleStrings(rs []domain.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// putMode records the agent's mode in the state file, keeping the cluster's
// authority (partition) state learned from the last snapshot.
func (m *member) putMode(mode state.Mode, since time.Time, reason string) {
	p, _ := m.a.st.Partition(m.cluster)
	p.Mode, p.Since, p.Reason = mode, since, reason
	_ = m.a.st.PutPartition(m.cluster, p)
}
