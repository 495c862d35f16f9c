package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rap-fabric/core/agent/adminingress"
	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/statusclient"
	"github.com/rap-fabric/core/agent/workload"
)

// StatusReport is the body of the local status endpoint (GET /v1/status on
// the agent's unix socket) and the output of `rap-node-agent status`.
type StatusReport struct {
	// Source is "agent" (the running agent answered) or "state-file" (read
	// from the state file while no agent runs).
	Source       string         `json:"source"`
	AgentVersion string         `json:"agent_version,omitempty"`
	StatePath    string         `json:"state_path"`
	StartedAt    time.Time      `json:"started_at,omitzero"`
	Memberships  []MemberStatus `json:"memberships"`
	// Mesh lists the running meshes: active peers, links and routes.
	Mesh []MeshStatus `json:"mesh,omitempty"`
	// AdminEndpoint is the Cluster Admin Endpoint's state: serving, or
	// down with the unmet preconditions (running agent with
	// --admin-listen only).
	AdminEndpoint *adminingress.Status `json:"admin_endpoint,omitempty"`
}

// MemberStatus is one membership's status.
type MemberStatus struct {
	ClusterID           string    `json:"cluster_id"`
	NodeID              string    `json:"node_id"`
	MembershipStatus    string    `json:"membership_status"`
	CertificateSerial   string    `json:"certificate_serial,omitempty"`
	CertificateNotAfter time.Time `json:"certificate_not_after,omitzero"`
	// CertificateIssuer is the key id of the pinned CA root that issued
	// the certificate; CARoots the key ids of the pinned roots, the active
	// one first (empty: only the root of the join pin; caroots.go).
	CertificateIssuer string   `json:"certificate_issuer,omitempty"`
	CARoots           []string `json:"ca_roots,omitempty"`
	Authorities       []string `json:"authorities"`
	// Mode is normal, degraded or revoked.
	Mode              string    `json:"mode"`
	ModeSince         time.Time `json:"mode_since,omitzero"`
	ModeReason        string    `json:"mode_reason,omitempty"`
	Running           bool      `json:"running"`
	LastHeartbeatAck  time.Time `json:"last_heartbeat_ack,omitzero"`
	LastAckAuthority  string    `json:"last_ack_authority,omitempty"`
	HeartbeatsAcked   uint64    `json:"heartbeats_acked"`
	ConsecutiveErrors int       `json:"consecutive_errors"`
	// HeartbeatFailures counts failed heartbeat rounds since the agent
	// started (running agent only).
	HeartbeatFailures uint64    `json:"heartbeat_failures,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	AppliedVersion    uint64    `json:"applied_version"`
	Roles             []string  `json:"roles"`
	DesiredPolledAt   time.Time `json:"desired_polled_at,omitzero"`
	// Snapshot is the snapshot loop's view (running agent only).
	Snapshot *SnapshotStatus `json:"snapshot,omitempty"`
	// Workloads are the supervised service instances (running agent only).
	Workloads []workload.Status `json:"workloads,omitempty"`
	// VPN lists the node's VPN assignments and leases (running agent only).
	VPN []VPNLeaseStatus `json:"vpn,omitempty"`
	// UpdateCache is the membership's artifact mirror, while the node holds
	// the update-cache role (running agent only).
	UpdateCache *CacheStatus `json:"update_cache,omitempty"`
}

// Health summarizes a membership for people: ok, degraded, revoked, failing
// (errors but not yet degraded) or pending (enrollment not finished).
func (s MemberStatus) Health() string {
	switch {
	case s.Mode == string(state.ModeRevoked):
		return "revoked"
	case s.Mode == string(state.ModeDegraded):
		return "degraded"
	case s.MembershipStatus == "pending":
		return "pending"
	case s.ConsecutiveErrors > 0:
		return "failing"
	default:
		return "ok"
	}
}

type statusServer struct {
	srv *http.Server
	ln  net.Listener
}

func (s *statusServer) Close() error {
	err := s.srv.Close()
	return err
}

// serveStatus serves GET /v1/status on a unix socket with mode 0600 (only the
// agent's user may connect).
func serveStatus(path string, a *Agent) (*statusServer, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("status socket %s exists and is not a socket", path)
		}
		_ = os.Remove(path) // left by a previous run
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statusclient.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
	a.meshRoutes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &statusServer{srv: srv, ln: ln}, nil
}

// ReadStatus asks the running agent behind the unix socket for its status.
func ReadStatus(ctx context.Context, socket string) (StatusReport, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+statusclient.PathStatus, nil)
	if err != nil {
		return StatusReport{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return StatusReport{}, fmt.Errorf("%w: %w", ErrAgentNotRunning, err)
	}
	defer resp.Body.Close()
	var r StatusReport
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status endpoint answered %s", resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&r)
	return r, err
}

// StatusFromState builds a report from the state file (no agent running).
func StatusFromState(st *state.Store) (StatusReport, error) {
	r := StatusReport{Source: "state-file", StatePath: st.Path(), Memberships: []MemberStatus{}}
	clusters, err := st.Memberships()
	if err != nil {
		return r, err
	}
	for _, c := range clusters {
		id, err := st.Identity(c)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return r, err
		}
		ms, _ := st.Membership(c)
		p, _ := st.Partition(c)
		h, _ := st.Health(c)
		v, _ := st.AppliedVersion(c)
		s := MemberStatus{ClusterID: c, NodeID: id.NodeID, MembershipStatus: string(ms.Status), Authorities: id.AuthorityURLs, Mode: string(p.Mode),
			ModeSince: p.Since, ModeReason: p.Reason, LastHeartbeatAck: h.LastHeartbeatOK, ConsecutiveErrors: h.ConsecutiveErrors, LastError: h.LastError,
			AppliedVersion: v, Roles: roleStrings(ms.Roles)}
		if cert, err := identity.ParseCertificatePEM([]byte(id.CertificatePEM)); err == nil {
			s.CertificateSerial, s.CertificateNotAfter = cert.SerialNumber.Text(16), cert.NotAfter
			if roots, err := pinnedRoots(id); err == nil {
				s.CertificateIssuer = issuerKeyID(cert, roots)
			}
		}
		s.CARoots = caRootIDs(id)
		r.Memberships = append(r.Memberships, s)
	}
	return r, nil
}

// WriteStatusTable prints a report for people.
func WriteStatusTable(w io.Writer, r StatusReport) error {
	fmt.Fprintf(w, "state: %s (%s)\n", r.StatePath, r.Source)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNODE\tMEMBERSHIP\tHEALTH\tMODE\tLAST ACK\tAUTHORITY\tAPPLIED\tROLES\tCERT NOT AFTER")
	for _, m := range r.Memberships {
		ack := "-"
		if !m.LastHeartbeatAck.IsZero() {
			ack = m.LastHeartbeatAck.Local().Format(time.RFC3339)
		}
		roles := slices.Clone(m.Roles)
		if len(roles) == 0 {
			roles = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ClusterID, m.NodeID, m.MembershipStatus, m.Health(), m.Mode, ack,
			dash(m.LastAckAuthority), m.AppliedVersion, strings.Join(roles, ","), m.CertificateNotAfter.Local().Format(time.RFC3339))
		if len(m.CARoots) > 0 {
			fmt.Fprintf(tw, "\t  CA roots: %s (active first), certificate issued by %s\n", strings.Join(m.CARoots, ","), dash(m.CertificateIssuer))
		}
		if m.ModeReason != "" {
			fmt.Fprintf(tw, "\t  reason: %s\n", m.ModeReason)
		}
		writeSnapshotLine(tw, m.Snapshot)
		for _, s := range m.Workloads {
			name := s.Type
			if s.Instance != "" {
				name += "/" + s.Instance
			}
			fmt.Fprintf(tw, "	  workload %s: %s since %s, health %s, version %s, restarts %d", name, s.State, s.Since.Local().Format(time.RFC3339), s.Health, dash(s.Version), s.Restarts)
			if s.Reason != "" {
				fmt.Fprintf(tw, " (%s)", s.Reason)
			}
			fmt.Fprintln(tw)
		}
		for _, v := range m.VPN {
			until := ""
			if !v.ValidUntil.IsZero() {
				until = " until " + v.ValidUntil.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "	  vpn %s: %s generation %d%s (reported %s; acquired %d, lost %d)\n", v.Name, v.State, v.Generation, until, dash(v.Reported), v.Acquired, v.Lost)
			if t := v.Tunnel; t != nil {
				fmt.Fprintf(tw, "	    tunnel %s %s running=%t exit %s: tx %d pkts/%d B, rx %d pkts/%d B, drops %v", t.Role, dash(t.Interface), t.Running,
					dash(t.ExitNodeID), t.TxPackets, t.TxBytes, t.RxPackets, t.RxBytes, t.Drops)
				if t.Error != "" {
					fmt.Fprintf(tw, " (%s)", t.Error)
				}
				fmt.Fprintln(tw)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	WriteMeshTable(w, r.Mesh)
	writeAdminStatus(w, r.AdminEndpoint)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
