package runtime

// The snapshot loop of one membership: long-poll the authorities for the
// node's signed snapshot, verify it (trusted CA keys, cluster, audience,
// strictly newer version, expiry), persist the version with
// state.AdvanceAppliedVersion BEFORE using it, apply it (peer cache, service
// assignments, mesh), and keep running on the last good snapshot when a new
// one is refused or no authority answers (then it asks the config-storage
// nodes its own snapshot lists). An expired applied snapshot marks the
// membership stale.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/snapshot"
)

// API paths of the snapshot loop.
const (
	pathStorageServe    = "/v1/storage/snapshot"
	storageEndpointPref = "https://"
)

// SnapshotOptions configure the snapshot loop, the mesh and config-storage
// serving of `rap-node-agent run`.
type SnapshotOptions struct {
	// Disabled turns the snapshot loop off (and with it the mesh).
	Disabled bool
	// Wait is the long-poll wait asked of the authority; 0 means 20 s.
	Wait time.Duration
	// StorageAfter is the number of failed polls in a row before the
	// config-storage nodes are asked; 0 means 2.
	StorageAfter int
	// StorageListen is the TCP address of the config-storage endpoint this
	// agent serves when its snapshot makes it a config-storage node; ""
	// means 0.0.0.0:0.
	StorageListen string
	// StorageAdvertise overrides the advertised storage address (host:port).
	StorageAdvertise string
	// StorageRefresh is how often a config-storage node refreshes the
	// snapshots it serves; 0 means 10 s.
	StorageRefresh time.Duration
}

// SnapshotStatus is the snapshot part of a membership's status.
type SnapshotStatus struct {
	AppliedVersion uint64    `json:"applied_version"`
	AppliedAt      time.Time `json:"applied_at,omitzero"`
	IssuedAt       time.Time `json:"issued_at,omitzero"`
	ExpiresAt      time.Time `json:"expires_at,omitzero"`
	Source         string    `json:"source,omitempty"`
	Scope          []string  `json:"scope,omitempty"`
	// Stale: the applied snapshot expired; the node keeps running on it.
	Stale bool `json:"stale"`
	// Rejected counts refused snapshots; LastRejectReason is
	// snapshot.Reason of the last one.
	Rejected         uint64 `json:"rejected"`
	LastRejectReason string `json:"last_reject_reason,omitempty"`
	LastRejectDetail string `json:"last_reject_detail,omitempty"`
	LastError        string `json:"last_error,omitempty"`
	// Peers and Services are counts of the applied peer directory and
	// service assignments.
	Peers    int `json:"peers"`
	Services int `json:"services"`
	// Serving is the number of other nodes' snapshots this config-storage
	// node serves, StorageEndpoint where.
	Serving         int    `json:"serving,omitempty"`
	StorageEndpoint string `json:"storage_endpoint,omitempty"`
	// AuthorityState is the cluster's partition state as the platform owner
	// set it (degraded, promoted, fenced), from the applied snapshot; empty
	// when normal.
	AuthorityState string `json:"authority_state,omitempty"`
}

// snapRun is a membership's snapshot state (the member holds a pointer).
type snapRun struct {
	mu         sync.Mutex
	st         SnapshotStatus
	cur        *snapshot.Snapshot
	trust      map[string]ed25519.PublicKey
	cursor     uint64            // highest version offered (polling cursor)
	client     *apiclient.Client // the long poll's: base with a longer timeout
	clientBase *apiclient.Client
	eps        []string // advertised endpoints (mesh and storage)

	refreshFacts atomic.Bool
	mesh         *meshrun.Node
	meshCancel   context.CancelFunc
	meshDone     chan struct{}
	storage      *storageServer
	cache        *updateCache
}

func (m *member) sn() *snapRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		m.snap = &snapRun{}
	}
	return m.snap
}

// snapshotLoop runs until ctx ends or the membership is revoked.
func (m *member) snapshotLoop(ctx context.Context) {
	log := m.a.log.With("cluster_id", m.cluster, "loop", "snapshot")
	s := m.sn()
	defer m.stopMesh()
	defer s.closeStorage()
	defer s.closeCache()
	m.restoreSnapshot(log)
	o := m.a.o.Snapshot
	failures := 0
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil && m.mode() != state.ModeRevoked {
		m.checkStale(log)
		err := m.pollSnapshot(ctx, log)
		if err == nil {
			failures, backoff = 0, 500*time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		s.mu.Lock()
		s.st.LastError = shortErr(err)
		s.mu.Unlock()
		log.Debug("snapshot poll failed", "consecutive", failures, "error", err)
		if failures >= o.StorageAfter {
			if serr := m.fetchFromStorage(ctx, log); serr != nil {
				log.Debug("no config-storage node answered", "error", serr)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// restoreSnapshot re-applies the last good snapshot from the state file
// (it was verified when it was accepted).
func (m *member) restoreSnapshot(log hclog.Logger) {
	as, err := m.a.st.AppliedSnapshot(m.cluster)
	if err != nil {
		return
	}
	signed, err := snapshot.Decode(bytes.NewReader(as.Raw), snapshot.DefaultMaxSize)
	if err != nil {
		log.Warn("the stored snapshot cannot be decoded; waiting for a new one", "error", err)
		return
	}
	snap, err := snapshot.DecodeSnapshot(signed.Payload)
	if err != nil || snap.Version != as.Version {
		log.Warn("the stored snapshot is inconsistent; waiting for a new one", "error", err)
		return
	}
	s := m.sn()
	s.mu.Lock()
	s.cursor = max(s.cursor, snap.Version)
	s.st.AppliedAt = as.AppliedAt
	s.st.Source = "state-file"
	s.mu.Unlock()
	// It was verified when it was accepted: its roots are the pins (moved
	// again here in case the agent stopped between storing the snapshot
	// and its pins).
	m.moveCARoots(snap, signed.KeyID, log)
	m.apply(snap, "state-file", log)
	log.Info("running on the stored snapshot", "version", snap.Version)
}

func (m *member) checkStale(log hclog.Logger) {
	s := m.sn()
	now := m.a.o.Now()
	s.mu.Lock()
	stale := s.cur != nil && !now.Before(s.cur.ExpiresAt)
	was := s.st.Stale
	s.st.Stale = stale
	var exp time.Time
	if s.cur != nil {
		exp = s.cur.ExpiresAt
	}
	s.mu.Unlock()
	if stale && !was {
		log.Warn("the applied snapshot expired: running on the last good config, marked stale", "expired_at", exp)
	}
}

// trustedKeys returns the CA keys snapshots are verified with: the pinned
// roots' keys (caroots.go), narrowed by the authority's /v1/agent/ca
// (fetched over the pinned mTLS connection) when it lists some rotated out
// — or, before any snapshot carried ca_roots, widened by it (the CA
// certificate stored at enrollment, then the keys it lists).
func (m *member) trustedKeys() map[string]ed25519.PublicKey {
	s := m.sn()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trust == nil {
		m.mu.Lock()
		roots := m.roots
		m.mu.Unlock()
		s.trust = rootKeys(roots)
	}
	out := make(map[string]ed25519.PublicKey, len(s.trust))
	for k, v := range s.trust {
		out[k] = v
	}
	return out
}

// refreshTrust asks an authority for the cluster's current and rotated-out
// keys. A new current CA certificate is stored in the identity (bbolt) so
// that a restart without authorities still trusts it.
func (m *member) refreshTrust(ctx context.Context, log hclog.Logger) error {
	m.mu.Lock()
	client := m.client
	m.mu.Unlock()
	var t trustedCAWire
	if err := client.Do(ctx, http.MethodGet, pathCA, nil, &t, nil); err != nil {
		return err
	}
	if t.ClusterID != "" && t.ClusterID != m.cluster {
		return fmt.Errorf("trusted keys for cluster %q, expected %q", t.ClusterID, m.cluster)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range t.Keys {
		if len(k.PublicKey) == ed25519.PublicKeySize {
			pub := ed25519.PublicKey(k.PublicKey)
			keys[snapshot.KeyID(pub)] = pub
		}
	}
	if len(keys) == 0 {
		return errors.New("the authority named no usable snapshot key")
	}
	for _, r := range t.Rotated {
		delete(keys, r.KeyID)
	}
	m.mu.Lock()
	pinned := len(m.id.CARoots) > 0
	pinnedKeys := rootKeys(m.roots)
	m.mu.Unlock()
	if pinned {
		// Roots move only with verified snapshots: the authority's list
		// may narrow the pinned keys, never widen them.
		for k := range keys {
			if pinnedKeys[k] == nil {
				delete(keys, k)
			}
		}
		if len(keys) == 0 {
			return errors.New("the authority named none of the pinned CA roots")
		}
	}
	s := m.sn()
	s.mu.Lock()
	s.trust = keys
	s.mu.Unlock()
	if cert, err := x509.ParseCertificate(t.CACert); err == nil && !pinned {
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		m.mu.Lock()
		cur := m.ca
		m.mu.Unlock()
		if ok && keys[snapshot.KeyID(pub)] != nil && !bytes.Equal(cert.Raw, cur.Raw) {
			stored, err := m.updateIdentity(func(id *state.Identity) bool {
				if len(id.CARoots) > 0 {
					return false // pins moved from a snapshot meanwhile
				}
				id.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
				return true
			})
			if err != nil {
				return err
			}
			if stored {
				log.Info("stored the cluster's new CA certificate", "key_id", snapshot.KeyID(pub))
			}
		}
	}
	return nil
}

// snapClient is the membership's mTLS client with a timeout that covers the
// long poll. It shares the membership's client's connections (one HTTP/2
// connection per authority carries the long poll beside the heartbeat stream
// and every other request) and is made again when that client is replaced (a
// new certificate or new pins).
func (m *member) snapClient() (*apiclient.Client, error) {
	s := m.sn()
	m.mu.Lock()
	base := m.client
	m.mu.Unlock()
	if base == nil {
		return nil, errors.New("runtime: the membership has no API client yet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil || s.clientBase != base {
		s.client, s.clientBase = base.WithTimeout(m.a.o.Snapshot.Wait+m.a.o.RequestTimeout+2*time.Second), base
	}
	return s.client, nil
}

// pollSnapshot is one long poll. It returns an error only when no authority
// answered; a refused snapshot is recorded and the cursor moves past it.
func (m *member) pollSnapshot(ctx context.Context, log hclog.Logger) error {
	c, err := m.snapClient()
	if err != nil {
		return err
	}
	s := m.sn()
	applied, _ := m.a.st.AppliedVersion(m.cluster)
	s.mu.Lock()
	after := max(applied, s.cursor)
	s.mu.Unlock()
	var w agentSnapshotWire
	path := fmt.Sprintf("%s?after_version=%d&wait=%d", pathSnapshot, after, int(m.a.o.Snapshot.Wait/time.Second))
	if err := c.Do(ctx, http.MethodGet, path, nil, &w, nil); err != nil {
		if m.isRevocation(ctx, err) {
			m.revoke(err)
			return nil
		}
		return err
	}
	if len(w.Snapshot) == 0 {
		return nil // 204: nothing newer
	}
	m.offer(ctx, w.Snapshot, w.Version, "authority", log)
	return nil
}

// offer verifies and, when it is good, persists and applies a signed
// snapshot. hint is the unverified version its carrier claims, used only as
// the polling cursor so that a refused snapshot is not fetched again.
func (m *member) offer(ctx context.Context, raw []byte, hint uint64, source string, log hclog.Logger) bool {
	s := m.sn()
	snap, signer, err := m.verify(raw)
	if errors.Is(err, snapshot.ErrUnknownKey) {
		if terr := m.refreshTrust(ctx, log); terr == nil {
			snap, signer, err = m.verify(raw)
		}
	}
	if err == nil {
		// Persist the version before anything uses the snapshot (N1).
		err = m.a.st.AdvanceAppliedVersion(m.cluster, snap.Version, raw)
		if errors.Is(err, state.ErrStaleVersion) {
			err = fmt.Errorf("%w: %w", snapshot.ErrStaleVersion, err)
		}
	}
	if err != nil {
		m.refuse(err, hint, source, log)
		return false
	}
	s.mu.Lock()
	s.cursor = max(s.cursor, snap.Version)
	s.st.AppliedAt = m.a.o.Now().UTC()
	s.st.LastError = ""
	s.mu.Unlock()
	m.moveCARoots(snap, signer, log)
	m.apply(snap, source, log)
	log.Info("snapshot applied", "version", snap.Version, "source", source, "scope", strings.Join(snap.Scope, ","), "expires_at", snap.ExpiresAt)
	return true
}

// refuse records a refused snapshot: counted, reason kept, the cursor moved
// past its claimed version so that it is not fetched again.
func (m *member) refuse(err error, hint uint64, source string, log hclog.Logger) {
	s := m.sn()
	s.mu.Lock()
	s.st.Rejected++
	s.st.LastRejectReason, s.st.LastRejectDetail = snapshot.Reason(err), shortErr(err)
	if hint > s.cursor {
		s.cursor = hint
	}
	s.mu.Unlock()
	log.Warn("snapshot refused: keeping the last good one", "source", source, "version", hint, "reason", snapshot.Reason(err), "error", err)
}

// unseal opens a sealed snapshot a config-storage node served: the outer
// signature, audience (this node) and version are checked, then the box is
// opened with this node's Noise (X25519) private key. The inner envelope
// still goes through offer's full verification. A plain envelope (served by
// a storage node of an older release) is passed on as it is: offer
// verifies it all the same.
func (m *member) unseal(ctx context.Context, raw []byte, log hclog.Logger) ([]byte, error) {
	if !snapshot.IsSealed(raw) {
		return raw, nil
	}
	applied, err := m.a.st.AppliedVersion(m.cluster)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	nodeID, keys := m.id.NodeID, m.keys
	m.mu.Unlock()
	if keys == nil {
		return nil, errors.New("no Noise key to open a sealed snapshot")
	}
	open := func() ([]byte, error) {
		return snapshot.OpenSealed(raw, snapshot.Expect{ClusterID: m.cluster, NodeID: nodeID, AppliedVersion: applied,
			Now: m.a.o.Now(), TrustedKeys: m.trustedKeys()}, keys.Noise)
	}
	inner, err := open()
	if errors.Is(err, snapshot.ErrUnknownKey) {
		if terr := m.refreshTrust(ctx, log); terr == nil {
			inner, err = open()
		}
	}
	return inner, err
}

// verify checks a signed snapshot; it returns it with the id of the key
// that signed it.
func (m *member) verify(raw []byte) (snapshot.Snapshot, string, error) {
	signed, err := snapshot.Decode(bytes.NewReader(raw), snapshot.DefaultMaxSize)
	if err != nil {
		return snapshot.Snapshot{}, "", err
	}
	applied, err := m.a.st.AppliedVersion(m.cluster)
	if err != nil {
		return snapshot.Snapshot{}, "", err
	}
	m.mu.Lock()
	nodeID := m.id.NodeID
	m.mu.Unlock()
	snap, err := snapshot.Verify(signed, snapshot.Expect{ClusterID: m.cluster, NodeID: nodeID, AppliedVersion: applied, Now: m.a.o.Now(), TrustedKeys: m.trustedKeys()})
	return snap, signed.KeyID, err
}

// apply makes a verified (and persisted) snapshot current: caches, status,
// mesh and config-storage serving.
func (m *member) apply(snap snapshot.Snapshot, source string, log hclog.Logger) {
	pc := state.PeerCache{SnapshotVersion: snap.Version, Peers: []state.Peer{}}
	for _, p := range append(append([]snapshot.Peer{}, snap.Body.Peers...), snap.Body.Uplinks...) {
		pc.Peers = append(pc.Peers, state.Peer{NodeID: p.NodeID, NoisePublicKey: p.NoisePublicKey, Endpoints: p.Endpoints, Roles: p.RoleHints})
	}
	if err := m.a.st.PutPeerCache(m.cluster, pc); err != nil {
		log.Warn("storing the peer cache failed", "error", err)
	}
	sa := state.ServiceAssignments{SnapshotVersion: snap.Version, Assignments: []state.ServiceAssignment{}}
	for _, sv := range snap.Body.Services {
		sa.Assignments = append(sa.Assignments, state.ServiceAssignment{ServiceID: sv.ID, Role: sv.Role, Desired: "running", Config: sv.Config})
	}
	if err := m.a.st.PutServiceAssignments(m.cluster, sa); err != nil {
		log.Warn("storing the service assignments failed", "error", err)
	}
	s := m.sn()
	s.mu.Lock()
	cp := snap
	s.cur = &cp
	s.st.AppliedVersion, s.st.IssuedAt, s.st.ExpiresAt, s.st.Source = snap.Version, snap.IssuedAt, snap.ExpiresAt, source
	s.st.Scope = append([]string(nil), snap.Scope...)
	s.st.Peers, s.st.Services = len(pc.Peers), len(sa.Assignments)
	s.st.Stale = !m.a.o.Now().Before(snap.ExpiresAt)
	prevAuth := s.st.AuthorityState
	s.st.AuthorityState = string(snap.Body.Membership.AuthorityState)
	s.mu.Unlock()
	if auth := snap.Body.Membership.AuthorityState; string(auth) != prevAuth {
		if p, err := m.a.st.Partition(m.cluster); err == nil {
			p.AuthorityState = auth
			if err := m.a.st.PutPartition(m.cluster, p); err != nil {
				log.Warn("storing the cluster's authority state failed", "error", err)
			}
		}
		if auth != "" {
			log.Warn("the platform owner changed the cluster's partition state", "authority_state", auth)
		} else {
			log.Info("the cluster's partition state is normal again")
		}
	}
	m.mu.Lock()
	m.st.AppliedVersion = snap.Version
	m.mu.Unlock()
	m.applyMesh(snap, log)
	m.applyStorage(snap, log)
	m.applyUpdateCache(snap, log)
	m.applyWorkloads(snap, log)
	if m.a.o.Workloads != nil {
		m.noteWorkloadSnapshot(snap)
	}
	m.offerUpdates(snap.Body.Updates)
}

// fetchFromStorage asks the config-storage nodes the last good snapshot
// lists for a newer snapshot of this node. It returns nil when at least one
// of them answered (with a snapshot, offered to the verifier, or with
// nothing newer).
func (m *member) fetchFromStorage(ctx context.Context, log hclog.Logger) error {
	s := m.sn()
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur == nil || len(cur.Body.ConfigStorage) == 0 {
		return errors.New("the last good snapshot lists no config-storage node")
	}
	var errs []error
	tried, answered := 0, false
	for _, se := range cur.Body.ConfigStorage {
		for _, e := range se.Endpoints {
			addr, ok := strings.CutPrefix(e, storageEndpointPref)
			if !ok {
				continue
			}
			tried++
			s.mu.Lock()
			after := s.cursor
			s.mu.Unlock()
			w, err := m.storageGet(ctx, se.NodeID, addr, after)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s at %s: %w", se.NodeID, addr, err))
				continue
			}
			answered = true
			if w == nil {
				break // nothing newer there; ask the next storage node
			}
			raw, err := m.unseal(ctx, w.Snapshot, log)
			if err != nil {
				m.refuse(err, w.Version, "config-storage", log)
				continue
			}
			if m.offer(ctx, raw, w.Version, "config-storage", log) {
				return nil
			}
		}
	}
	if tried == 0 {
		return errors.New("the config-storage nodes advertise no endpoint")
	}
	if answered {
		return nil
	}
	return errors.Join(errs...)
}

// snapshotStatus returns a copy of the snapshot status.
func (m *member) snapshotStatus() *SnapshotStatus {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Scope = append([]string(nil), st.Scope...)
	if s.storage != nil {
		st.Serving = s.storage.count()
		st.StorageEndpoint = s.storage.advertised
	}
	return &st
}

func (o *SnapshotOptions) defaults() {
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.Wait > 25*time.Second {
		o.Wait = 25 * time.Second
	}
	if o.StorageAfter <= 0 {
		o.StorageAfter = 2
	}
	if o.StorageListen == "" {
		o.StorageListen = "0.0.0.0:0"
	}
	if o.StorageRefresh <= 0 {
		o.StorageRefresh = 10 * time.Second
	}
}

// takeFactsRefresh reports (once) that the advertised endpoints changed.
func (m *member) takeFactsRefresh() bool {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	return s != nil && s.refreshFacts.Swap(false)
}

func writeSnapshotLine(w io.Writer, s *SnapshotStatus) {
	if s == nil {
		return
	}
	stale := ""
	if s.Stale {
		stale = " STALE (expired, running on the last good config)"
	}
	fmt.Fprintf(w, "\t  snapshot: v%d from %s, expires %s, scope %s, peers %d, services %d, rejected %d%s\n", s.AppliedVersion, dash(s.Source),
		s.ExpiresAt.Local().Format(time.RFC3339), strings.Join(s.Scope, ","), s.Peers, s.Services, s.Rejected, stale)
	if s.AuthorityState != "" {
		fmt.Fprintf(w, "\t  cluster partition state: %s (set by the platform owner)\n", s.AuthorityState)
	}
	if s.LastRejectReason != "" {
		fmt.Fprintf(w, "\t  last refused: %s (%s)\n", s.LastRejectReason, s.LastRejectDetail)
	}
	if s.StorageEndpoint != "" {
		fmt.Fprintf(w, "\t  config-storage: serving %d snapshots at %s\n", s.Serving, s.StorageEndpoint)
	}
}
