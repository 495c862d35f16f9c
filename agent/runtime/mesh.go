package runtime

// The mesh of a membership: started when an applied snapshot carries peers
// or uplinks (agent/meshrun), updated with every newer snapshot (revoked or
// removed peers torn down), its UDP endpoints advertised in the heartbeat
// facts ("endpoints", which the authority copies into peer directories),
// link and route health POSTed to /v1/agent/links, and mesh ping served on
// the status socket.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/agent/statusclient"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/link"
	"github.com/rap-fabric/core/snapshot"
)

// MeshOptions configure the agent's mesh.
type MeshOptions struct {
	// Disabled never starts the mesh.
	Disabled bool
	// Listen is the UDP address of each membership's mesh socket; "" means
	// 0.0.0.0:0.
	Listen string
	// Advertise overrides the advertised endpoints (host:port).
	Advertise []string
	// NoDirect lists node ids never linked directly (drills and tests:
	// their traffic is relayed).
	NoDirect []string
	// ReportEvery is the period of link reports; 0 means 3 heartbeat
	// intervals.
	ReportEvery time.Duration
}

// linkReport maps the mesh's link and route state to the body of POST
// /v1/agent/links. DownSince stays local (status socket): the authority has
// no column for it.
func linkReport(links []link.LinkReport, routes []meshrun.RouteStatus) agentapi.LinkReport {
	out := agentapi.LinkReport{Links: make([]agentapi.LinkStatus, 0, len(links)), Routes: make([]agentapi.RouteStatus, 0, len(routes))}
	for _, l := range links {
		out.Links = append(out.Links, agentapi.LinkStatus{ClusterID: l.ClusterID, PeerNodeID: l.PeerNodeID, State: l.State, RTTMs: l.RTTMs,
			Loss: l.Loss, LastHandshakeAt: l.LastHandshakeAt, Set: l.Set})
	}
	for _, r := range routes {
		out.Routes = append(out.Routes, agentapi.RouteStatus{Destination: r.Destination, NextHop: r.NextHop, Cost: int(r.Cost), Hops: r.Hops})
	}
	return out
}

func (m *member) meshEndpointsLocked() []string {
	if m.snap == nil || m.snap.mesh == nil {
		return nil
	}
	return m.snap.mesh.Endpoints()
}

// setEndpoints recomputes the advertised endpoints (mesh UDP host:port and
// https://host:port of the config-storage endpoint) and asks the heartbeat
// loop to send facts again.
func (m *member) setEndpoints() {
	s := m.sn()
	s.mu.Lock()
	var eps []string
	if s.mesh != nil {
		eps = append(eps, s.mesh.Endpoints()...)
	}
	if s.storage != nil {
		eps = append(eps, storageEndpointPref+s.storage.advertised)
	}
	if s.cache != nil {
		eps = append(eps, updateCacheEndpointPref+s.cache.advertised)
	}
	s.eps = eps
	s.mu.Unlock()
	s.refreshFacts.Store(true)
}

// endpoints returns the advertised endpoints.
func (m *member) endpoints() []string {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.eps...)
}

// withEndpoints adds "endpoints" to a facts document.
func withEndpoints(raw []byte, eps []string) []byte {
	if len(eps) == 0 {
		return raw
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil {
		return raw
	}
	doc["endpoints"], _ = json.Marshal(eps)
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}

// applyMesh starts, updates or stops the membership's mesh.
func (m *member) applyMesh(snap snapshot.Snapshot, log hclog.Logger) {
	o := m.a.o.Mesh
	if o.Disabled {
		return
	}
	s := m.sn()
	want := len(snap.Body.Peers)+len(snap.Body.Uplinks) > 0
	s.mu.Lock()
	node := s.mesh
	s.mu.Unlock()
	if !want {
		if node != nil {
			m.stopMesh()
			m.setEndpoints()
			log.Info("mesh stopped: the snapshot carries no peers")
		}
		return
	}
	if node == nil {
		m.mu.Lock()
		keys, nodeID := m.keys, m.id.NodeID
		m.mu.Unlock()
		nk, err := channel.KeyFromBytes(keys.NoisePrivateBytes())
		if err != nil {
			log.Error("mesh cannot start: bad noise key", "error", err)
			return
		}
		node, err = meshrun.New(meshrun.Config{ClusterID: m.cluster, NodeID: nodeID, NoiseKey: nk, IdentityKey: keys.Signing, Region: snap.Body.Self.Region,
			Listen: o.Listen, Advertise: o.Advertise, NoDirect: o.NoDirect, Logger: log.Named("mesh")})
		if err != nil {
			log.Error("mesh cannot start", "error", err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		s.mu.Lock()
		s.mesh, s.meshCancel, s.meshDone = node, cancel, done
		s.mu.Unlock()
		go func() {
			defer close(done)
			go m.linkReportLoop(ctx, node, log)
			_ = node.Run(ctx)
		}()
		m.setEndpoints()
		log.Info("mesh started", "listen", node.LocalAddr(), "endpoints", node.Endpoints())
	}
	before := node.Endpoints()
	if _, err := node.Update(meshrun.FromSnapshot(snap.Version, snap.Body)); err != nil {
		log.Warn("mesh directory update failed", "version", snap.Version, "error", err)
	}
	if !slices.Equal(before, node.Endpoints()) {
		// gossip started, stopped or moved: advertise its address (the
		// authority copies it into the peers' directories as a join seed)
		m.setEndpoints()
	}
}

func (m *member) stopMesh() {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	node, cancel, done := s.mesh, s.meshCancel, s.meshDone
	s.mesh, s.meshCancel, s.meshDone = nil, nil, nil
	s.mu.Unlock()
	if node == nil {
		return
	}
	cancel()
	<-done
	_ = node.Close()
}

func (m *member) meshNode() *meshrun.Node {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mesh
}

// linkReportLoop posts link and route health to the control plane.
func (m *member) linkReportLoop(ctx context.Context, node *meshrun.Node, log hclog.Logger) {
	every := m.a.o.Mesh.ReportEvery
	if every <= 0 {
		every = max(3*m.a.o.Interval, time.Second)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(every)):
		}
		m.mu.Lock()
		client := m.client
		m.mu.Unlock()
		body := linkReport(node.Reports(), node.Status().Routes)
		rctx, cancel := context.WithTimeout(ctx, m.a.o.RequestTimeout)
		err := client.Do(rctx, http.MethodPost, agentapi.PathLinks, body, nil, nil)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Debug("link report failed", "error", err)
		}
	}
}

// MeshStatus is one membership's mesh as the status socket reports it.
type MeshStatus struct {
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
	meshrun.Status
}

// PingRequest and PingResult are the status socket's mesh ping types
// (agent/statusclient owns them, so the CLIs need not link the mesh).
type (
	PingRequest = statusclient.PingRequest
	PingResult  = statusclient.PingResult
)

// meshMembers returns the members running a mesh, optionally of one
// cluster.
func (a *Agent) meshMembers(cluster string) []*member {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*member
	for c, m := range a.members {
		if (cluster == "" || c == cluster) && m.meshNode() != nil {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cluster < out[j].cluster })
	return out
}

// MeshPing runs a mesh ping from the running agent.
func (a *Agent) MeshPing(ctx context.Context, req PingRequest) (PingResult, error) {
	ms := a.meshMembers(req.ClusterID)
	if len(ms) == 0 {
		return PingResult{}, errors.New("no membership runs a mesh (no peers in the applied snapshot)")
	}
	if len(ms) > 1 && req.ClusterID == "" {
		return PingResult{}, errors.New("several memberships run a mesh: name the cluster")
	}
	m := ms[0]
	to := time.Duration(req.TimeoutMs) * time.Millisecond
	if to <= 0 {
		to = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	r, err := m.meshNode().Ping(ctx, req.Node)
	if err != nil {
		return PingResult{}, err
	}
	m.recordPing(r.Destination, r.Path, r.Reverse, r.RTTMs, a.o.Now())
	return PingResult{ClusterID: m.cluster, From: m.status().NodeID, Destination: r.Destination, Path: r.Path, Reverse: r.Reverse,
		SetupRTTMs: r.SetupRTTMs, RTTMs: r.RTTMs, EchoRTTMs: r.EchoRTTMs}, nil
}

// recordPing keeps a ping's result for the heartbeats (the authority draws
// its path on the topology) and asks for an early heartbeat. Paths longer
// than the wire allows are not reported.
func (m *member) recordPing(dst string, path, reverse []string, rttMs float64, at time.Time) {
	if len(path) < 2 || len(path) > agentapi.MaxPingPathLen || len(reverse) > agentapi.MaxPingPathLen {
		return
	}
	p := &agentapi.PingReport{Destination: dst, Path: slices.Clone(path), Reverse: slices.Clone(reverse), RTTMs: rttMs, At: at.UTC()}
	m.mu.Lock()
	m.lastPing = p
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// StreamRequest is the body of POST /v1/mesh/stream on the status socket: a
// numbered echo stream over one end-to-end flow (failover drills).
type StreamRequest struct {
	ClusterID  string `json:"cluster_id,omitempty"`
	Node       string `json:"node"`
	Count      int    `json:"count"`
	IntervalMs int    `json:"interval_ms"`
	// GraceMs is how long to wait for late echoes after the last send; 0
	// means 1 s.
	GraceMs int `json:"grace_ms,omitempty"`
}

// MeshStream runs meshrun.Node.EchoStream from the running agent.
func (a *Agent) MeshStream(ctx context.Context, req StreamRequest) (meshrun.StreamReport, error) {
	ms := a.meshMembers(req.ClusterID)
	if len(ms) == 0 {
		return meshrun.StreamReport{}, errors.New("no membership runs a mesh (no peers in the applied snapshot)")
	}
	if len(ms) > 1 && req.ClusterID == "" {
		return meshrun.StreamReport{}, errors.New("several memberships run a mesh: name the cluster")
	}
	grace := time.Duration(req.GraceMs) * time.Millisecond
	if grace <= 0 {
		grace = time.Second
	}
	return ms[0].meshNode().EchoStream(ctx, req.Node, req.Count, time.Duration(req.IntervalMs)*time.Millisecond, grace)
}

// MeshStatuses reports every running mesh.
func (a *Agent) MeshStatuses() []MeshStatus {
	out := []MeshStatus{}
	for _, m := range a.meshMembers("") {
		if n := m.meshNode(); n != nil {
			out = append(out, MeshStatus{ClusterID: m.cluster, NodeID: m.status().NodeID, Status: n.Status()})
		}
	}
	return out
}

// meshRoutes adds the mesh routes to the status socket's mux.
func (a *Agent) meshRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+statusclient.PathMesh, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.MeshStatuses())
	})
	mux.HandleFunc("POST "+statusclient.PathMeshStream, func(w http.ResponseWriter, r *http.Request) {
		var req StreamRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Node == "" {
			http.Error(w, "body must be {\"node\": NODE_ID, \"count\": N, \"interval_ms\": MS}", http.StatusBadRequest)
			return
		}
		res, err := a.MeshStream(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("POST "+statusclient.PathMeshPing, func(w http.ResponseWriter, r *http.Request) {
		var req PingRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Node == "" {
			http.Error(w, "body must be {\"node\": NODE_ID}", http.StatusBadRequest)
			return
		}
		res, err := a.MeshPing(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
}

// MeshStatusVia reads the running agent's mesh status.
func MeshStatusVia(ctx context.Context, socket string) ([]MeshStatus, error) {
	hc := statusclient.HTTPClient(socket, 5*time.Second)
	defer hc.CloseIdleConnections()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+statusclient.PathMesh, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAgentNotRunning, err)
	}
	defer resp.Body.Close()
	var out []MeshStatus
	err = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&out)
	return out, err
}

// WriteMeshTable prints the mesh statuses for people.
func WriteMeshTable(w io.Writer, ms []MeshStatus) {
	for _, s := range ms {
		fmt.Fprintf(w, "mesh %s node %s: listen %s, endpoints %s, directory v%d (%d peers), gossip %s\n", s.ClusterID, s.NodeID, s.Listen,
			strings.Join(s.Endpoints, ","), s.DirectoryVersion, s.DirectoryPeers, s.Gossip)
		for _, l := range s.Links {
			fmt.Fprintf(w, "  link %-36s %-10s set=%-6s rtt=%.3fms loss=%.2f endpoint=%s\n", l.NodeID, l.State, l.Set, l.RTTMs, l.Loss, dash(l.Endpoint))
		}
		for _, r := range s.Routes {
			fmt.Fprintf(w, "  route %-36s via %-36s cost=%d hops=%d\n", r.Destination, r.NextHop, r.Cost, r.Hops)
		}
		fmt.Fprintf(w, "  e2e sent=%d delivered=%d forwarded=%d handshakes=%d", s.E2ESent, s.E2EDelivered, s.E2EForwarded, s.E2EHandshakes)
		if len(s.E2EDropped) > 0 {
			reasons := slices.Sorted(maps.Keys(s.E2EDropped))
			parts := make([]string, len(reasons))
			for i, k := range reasons {
				parts[i] = fmt.Sprintf("%s=%d", k, s.E2EDropped[k])
			}
			fmt.Fprintf(w, " dropped %s", strings.Join(parts, " "))
		}
		fmt.Fprintln(w)
	}
}
