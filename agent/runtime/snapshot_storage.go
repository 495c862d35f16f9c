package runtime

// Config-storage serving: a node whose snapshot lists cache_nodes fetches
// those nodes' snapshots from the authority, each sealed to its target's
// X25519 key (snapshot.Seal), verifies each sealed envelope against the
// cluster's keys with the served node as audience (keeping the highest
// verified version per node) without being able to read it, refuses any
// unsealed one, and serves them on a small mTLS endpoint:
// GET /v1/storage/snapshot?after_version=N answers the calling node (named by
// its client certificate) with its own newest snapshot, or 204.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/snapshot"
)

type storedSnap struct {
	version uint64
	raw     []byte
}

type storageServer struct {
	advertised string
	srv        *http.Server
	cancel     context.CancelFunc
	done       chan struct{}
	// kick asks the refresh loop for an immediate refresh (the node's own
	// snapshot changed, and with it possibly the nodes it serves).
	kick chan struct{}

	mu    sync.Mutex
	nodes map[string]bool
	items map[string]storedSnap
}

func (s *storageServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *snapRun) closeStorage() {
	s.mu.Lock()
	ss := s.storage
	s.storage = nil
	s.mu.Unlock()
	if ss != nil {
		ss.cancel()
		_ = ss.srv.Close()
		<-ss.done
	}
}

// applyStorage starts, updates or stops config-storage serving.
func (m *member) applyStorage(snap snapshot.Snapshot, log hclog.Logger) {
	s := m.sn()
	if len(snap.Body.CacheNodes) == 0 {
		s.mu.Lock()
		had := s.storage != nil
		s.mu.Unlock()
		if had {
			s.closeStorage()
			m.setEndpoints()
			log.Info("no longer a config-storage node")
		}
		return
	}
	s.mu.Lock()
	ss := s.storage
	s.mu.Unlock()
	if ss == nil {
		var err error
		if ss, err = m.startStorage(log); err != nil {
			log.Error("config-storage endpoint cannot start", "error", err)
			return
		}
		s.mu.Lock()
		s.storage = ss
		s.mu.Unlock()
		m.setEndpoints()
		log.Info("serving as config-storage node", "endpoint", ss.advertised, "nodes", len(snap.Body.CacheNodes))
	}
	ss.mu.Lock()
	ss.nodes = map[string]bool{}
	for _, n := range snap.Body.CacheNodes {
		ss.nodes[n] = true
	}
	for n := range ss.items {
		if !ss.nodes[n] {
			delete(ss.items, n)
		}
	}
	ss.mu.Unlock()
	select {
	case ss.kick <- struct{}{}:
	default:
	}
}

func (m *member) startStorage(log hclog.Logger) (*storageServer, error) {
	o := m.a.o.Snapshot
	ln, err := net.Listen("tcp", o.StorageListen)
	if err != nil {
		return nil, err
	}
	adv := o.StorageAdvertise
	if adv == "" {
		ap, _ := netip.ParseAddrPort(ln.Addr().String())
		adv = ap.String()
		if ap.Addr().IsUnspecified() {
			m.mu.Lock()
			eps := m.meshEndpointsLocked()
			m.mu.Unlock()
			host := "127.0.0.1"
			if len(eps) > 0 {
				if a, err := netip.ParseAddrPort(eps[0]); err == nil {
					host = a.Addr().String()
				}
			}
			adv = net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
		}
	}
	cluster := m.cluster
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: m.nodeTLSCertificate,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no client certificate")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: m.rootPool(), CurrentTime: m.a.o.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				return err
			}
			if len(c.URIs) != 1 {
				return errors.New("client certificate has no node identity")
			}
			cl, _, err := identity.ParseNodeURI(c.URIs[0])
			if err != nil || cl != cluster {
				return fmt.Errorf("client certificate of another cluster: %v", err)
			}
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	ss := &storageServer{advertised: adv, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1), nodes: map[string]bool{}, items: map[string]storedSnap{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStorageServe, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"client certificate required"}}`, http.StatusUnauthorized)
			return
		}
		_, node, err := identity.ParseNodeURI(r.TLS.PeerCertificates[0].URIs[0])
		if err != nil {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"bad client certificate"}}`, http.StatusUnauthorized)
			return
		}
		after, _ := strconv.ParseUint(r.URL.Query().Get("after_version"), 10, 64)
		ss.mu.Lock()
		it, ok := ss.items[node]
		ss.mu.Unlock()
		if !ok || it.version <= after {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(agentSnapshotWire{NodeID: node, Version: it.version, Snapshot: it.raw})
	})
	ss.srv = &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ss.srv.Serve(tls.NewListener(ln, tc)) }()
	go func() {
		defer close(ss.done)
		m.storageRefreshLoop(ctx, ss, log)
	}()
	return ss, nil
}

// storageRefreshLoop fetches the served nodes' newest snapshots.
func (m *member) storageRefreshLoop(ctx context.Context, ss *storageServer, log hclog.Logger) {
	every := m.a.o.Snapshot.StorageRefresh
	for {
		if err := m.refreshStorage(ctx, ss); err != nil && ctx.Err() == nil {
			log.Debug("config-storage refresh failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ss.kick:
		case <-time.After(jitter(every)):
		}
	}
}

func (m *member) refreshStorage(ctx context.Context, ss *storageServer) error {
	m.mu.Lock()
	client := m.client
	m.mu.Unlock()
	var l agentapi.SnapshotList
	if err := client.Do(ctx, http.MethodGet, pathStorageSnaps, nil, &l, nil); err != nil {
		return err
	}
	keys := m.trustedKeys()
	var refused []string
	for _, it := range l.Items {
		ss.mu.Lock()
		allowed, cur := ss.nodes[it.NodeID], ss.items[it.NodeID].version
		ss.mu.Unlock()
		if !allowed || it.Version <= cur {
			continue
		}
		if !snapshot.IsSealed(it.Snapshot) {
			// Never cache what the target alone should read.
			refused = append(refused, it.NodeID+": not sealed")
			continue
		}
		sealed, err := snapshot.VerifySealed(it.Snapshot, snapshot.Expect{ClusterID: m.cluster, NodeID: it.NodeID, AppliedVersion: cur, Now: m.a.o.Now(), TrustedKeys: keys})
		if err != nil {
			refused = append(refused, it.NodeID+": "+snapshot.Reason(err))
			continue
		}
		ss.mu.Lock()
		if v := sealed.Header.Version; ss.items[it.NodeID].version < v {
			ss.items[it.NodeID] = storedSnap{version: v, raw: slices.Clone(it.Snapshot)}
		}
		ss.mu.Unlock()
	}
	if len(refused) > 0 {
		return fmt.Errorf("refused served snapshots: %v", refused)
	}
	return nil
}

// storageGet asks one config-storage node for this node's snapshot newer
// than after; nil means it has nothing newer (204).
//
// The storage node presents its node certificate, which the cluster CA
// issues for client authentication only, so apiclient (which expects an
// authority's server certificate) cannot talk to it. The chain is checked
// here against the cluster CA (client-auth usage, at the agent's clock) and
// the certificate must name exactly the storage node the signed snapshot
// lists, in this cluster.
func (m *member) storageGet(ctx context.Context, storageNode, addr string, after uint64) (*agentSnapshotWire, error) {
	m.mu.Lock()
	keys, cert := m.keys, m.cert
	m.mu.Unlock()
	roots := m.rootPool()
	cluster := m.cluster
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, //nolint:gosec // verified in VerifyPeerCertificate
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: keys.Signing, Leaf: cert}},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("config-storage node presented no certificate")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if ic, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(ic)
				}
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: m.a.o.Now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				return fmt.Errorf("config-storage certificate: %w", err)
			}
			if len(c.URIs) != 1 {
				return errors.New("config-storage certificate has no node identity")
			}
			cl, node, err := identity.ParseNodeURI(c.URIs[0])
			if err != nil {
				return err
			}
			if cl != cluster || node != storageNode {
				return fmt.Errorf("config-storage certificate names %s/%s, expected %s/%s", cl, node, cluster, storageNode)
			}
			return nil
		}}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: m.a.o.RequestTimeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://%s%s?after_version=%d", addr, pathStorageServe, after), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	// The JSON carries the envelope base64-encoded: allow for that, no more.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 2*snapshot.DefaultMaxSize))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("config-storage answered %s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	var w agentSnapshotWire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("config-storage answer: %w", err)
	}
	if len(w.Snapshot) == 0 {
		return nil, nil
	}
	return &w, nil
}
