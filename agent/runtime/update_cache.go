package runtime

// Update-cache mirrors (spec stage C19): a node holding the update-cache
// role mirrors the approved artifacts of its cluster — the releases its
// signed snapshot lists under updates.mirror, which are the versions the
// authority tells the cluster's nodes to run; it never invents one — and
// serves them to nearby agents on an mTLS endpoint:
//
//	GET /v1/agent/releases/artifacts/{sha256}?offset=N   (agentapi.PathReleaseArtifact)
//
// Before mirroring a release it verifies the key set against the release
// roots pinned in its snapshot, the manifest against the key set and the
// digest the snapshot names, and each artifact's size and sha256 while it
// streams from an authority. Artifacts no longer approved are deleted (the
// cache can always be rebuilt from version storage). The mirror is not
// trusted by anyone: a fetching agent verifies every byte against the
// signed manifest whoever served it (fetchSources, updater.Stage), so a
// corrupted or malicious mirror costs a retry elsewhere, never a bad binary.

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/snapshot"
)

// updateCacheEndpointPref marks an update-cache endpoint among a node's
// advertised endpoints (facts, snapshots).
const updateCacheEndpointPref = "update-cache+https://"

// CacheStatus is an update-cache node's mirror (status socket).
type CacheStatus struct {
	Endpoint string `json:"endpoint"`
	// Artifacts are the verified artifacts held; Releases the approved
	// releases they belong to.
	Artifacts int `json:"artifacts"`
	Releases  int `json:"releases"`
	// Served counts artifact downloads started by other agents, Mirrored
	// the artifacts fetched from an authority, Refused the mirrored
	// releases that did not verify.
	Served   uint64 `json:"served"`
	Mirrored uint64 `json:"mirrored"`
	Refused  uint64 `json:"refused"`
	// LastError is the last mirroring problem.
	LastError string `json:"last_error,omitempty"`
}

type updateCache struct {
	advertised string
	dir        string
	srv        *http.Server
	cancel     context.CancelFunc
	done       chan struct{}
	kick       chan struct{}
	// revoked tells whether the snapshot's revocation list names a node.
	revoked func(node string) bool

	mu      sync.Mutex
	want    []snapshot.DesiredVersion
	roots   snapshot.ReleaseRoots
	ready   map[string]int64 // sha256 → size of verified copies
	lastErr string

	served, mirrored, refused atomic.Uint64
}

func (c *updateCache) status() *CacheStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &CacheStatus{Endpoint: updateCacheEndpointPref + c.advertised, Artifacts: len(c.ready), Releases: len(c.want),
		Served: c.served.Load(), Mirrored: c.mirrored.Load(), Refused: c.refused.Load(), LastError: c.lastErr}
}

func (s *snapRun) closeCache() {
	s.mu.Lock()
	c := s.cache
	s.cache = nil
	s.mu.Unlock()
	if c != nil {
		c.cancel()
		_ = c.srv.Close()
		<-c.done
	}
}

func holdsRole(grants []snapshot.RoleGrant, r domain.Role) bool {
	for _, g := range grants {
		if g.Role == r {
			return true
		}
	}
	return false
}

// cacheDir is where a membership's mirror keeps its artifacts.
func (m *member) cacheDir() string {
	if d := m.a.o.Update.CacheDir; d != "" {
		return filepath.Join(d, m.cluster)
	}
	return filepath.Join(filepath.Dir(m.a.st.Path()), "update-cache", m.cluster)
}

// applyUpdateCache starts, updates or stops the membership's mirror.
func (m *member) applyUpdateCache(snap snapshot.Snapshot, log hclog.Logger) {
	s := m.sn()
	u := snap.Body.Updates
	want := m.a.o.Update.CacheListen != "" && u != nil && holdsRole(snap.Body.Roles, domain.RoleUpdateCache)
	s.mu.Lock()
	c := s.cache
	s.mu.Unlock()
	if !want {
		if c != nil {
			s.closeCache()
			m.setEndpoints()
			log.Info("no longer an update-cache node")
		}
		return
	}
	if c == nil {
		var err error
		if c, err = m.startCache(log); err != nil {
			log.Error("update-cache endpoint cannot start", "error", err)
			return
		}
		s.mu.Lock()
		s.cache = c
		s.mu.Unlock()
		m.setEndpoints()
		log.Info("serving as update-cache node", "endpoint", c.advertised, "releases", len(u.Mirror))
	}
	c.mu.Lock()
	c.want, c.roots = append([]snapshot.DesiredVersion(nil), u.Mirror...), u.ReleaseRoots
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// nodeServerTLS is the TLS configuration of an endpoint this node serves to
// other nodes of its cluster: it presents its node certificate and requires
// a client certificate the cluster CA issued to a node of this cluster. The
// certificate and the roots are read at each handshake, so a renewal and
// moved CA pins (caroots.go) apply at once.
func (m *member) nodeServerTLS() *tls.Config {
	cluster := m.cluster
	return &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
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
			if cl, _, err := identity.ParseNodeURI(c.URIs[0]); err != nil || cl != cluster {
				return fmt.Errorf("client certificate of another cluster: %v", err)
			}
			return nil
		}}
}

// advertise derives the address other nodes reach listener ln at.
func (m *member) advertise(ln net.Listener, configured string) string {
	if configured != "" {
		return configured
	}
	ap, _ := netip.ParseAddrPort(ln.Addr().String())
	if !ap.Addr().IsUnspecified() {
		return ap.String()
	}
	m.mu.Lock()
	eps := m.meshEndpointsLocked()
	m.mu.Unlock()
	host := "127.0.0.1"
	if len(eps) > 0 {
		if a, err := netip.ParseAddrPort(eps[0]); err == nil {
			host = a.Addr().String()
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
}

func (m *member) startCache(log hclog.Logger) (*updateCache, error) {
	dir := m.cacheDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", m.a.o.Update.CacheListen)
	if err != nil {
		return nil, err
	}
	tc := m.nodeServerTLS()
	ctx, cancel := context.WithCancel(context.Background())
	c := &updateCache{advertised: m.advertise(ln, m.a.o.Update.CacheAdvertise), dir: dir, cancel: cancel, done: make(chan struct{}),
		kick: make(chan struct{}, 1), ready: map[string]int64{}, revoked: func(node string) bool {
			s := m.sn()
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.cur != nil && slices.Contains(s.cur.Body.Revocations.NodeIDs, node)
		}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathReleaseArtifact, c.serveArtifact)
	c.srv = &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.srv.Serve(tls.NewListener(ln, tc)) }()
	go func() {
		defer close(c.done)
		m.cacheLoop(ctx, c, log)
	}()
	return c, nil
}

func httpErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

// serveArtifact streams a mirrored artifact (from ?offset=).
func (c *updateCache) serveArtifact(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.PeerCertificates[0].URIs) != 1 {
		httpErr(w, http.StatusUnauthorized, "unauthenticated", "a node client certificate is required")
		return
	}
	if _, node, err := identity.ParseNodeURI(r.TLS.PeerCertificates[0].URIs[0]); err != nil || c.revoked(node) {
		httpErr(w, http.StatusForbidden, "permission_denied", "this node is revoked")
		return
	}
	sha := r.PathValue("sha256")
	c.mu.Lock()
	size, ok := c.ready[sha]
	c.mu.Unlock()
	if !ok {
		httpErr(w, http.StatusNotFound, "not_found", "this update-cache holds no such artifact")
		return
	}
	off, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if r.URL.Query().Get("offset") == "" {
		off, err = 0, nil
	}
	if err != nil || off < 0 || off > size {
		httpErr(w, http.StatusBadRequest, "invalid_argument", "offset must be between 0 and the artifact's size")
		return
	}
	f, err := os.Open(filepath.Join(c.dir, sha))
	if err != nil {
		httpErr(w, http.StatusNotFound, "not_found", "this update-cache holds no such artifact")
		return
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		httpErr(w, http.StatusInternalServerError, "internal", "cannot read the artifact")
		return
	}
	c.served.Add(1)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size-off, 10))
	_, _ = io.Copy(w, io.LimitReader(f, size-off))
}

// cacheLoop mirrors the approved artifacts whenever the snapshot changes
// and every StorageRefresh-like period (to retry failures).
func (m *member) cacheLoop(ctx context.Context, c *updateCache, log hclog.Logger) {
	every := m.a.o.Snapshot.StorageRefresh
	if every <= 0 {
		every = 30 * time.Second
	}
	for {
		err := m.mirror(ctx, c, log)
		c.mu.Lock()
		c.lastErr = ""
		if err != nil && ctx.Err() == nil {
			c.lastErr = err.Error()
			log.Warn("update-cache mirroring incomplete", "error", err)
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-time.After(jitter(every)):
		}
	}
}

// mirror brings the cache in line with the approved releases: verify each
// release, fetch and verify its missing artifacts, delete the rest.
func (m *member) mirror(ctx context.Context, c *updateCache, log hclog.Logger) error {
	c.mu.Lock()
	want, roots := c.want, c.roots
	c.mu.Unlock()
	approved := map[string]release.Artifact{}
	var errs []error
	for _, d := range want {
		arts, err := m.verifiedArtifacts(ctx, d, roots)
		if err != nil {
			c.refused.Add(1)
			errs = append(errs, fmt.Errorf("%s %s: %w", d.Product, d.Version, err))
			continue
		}
		for _, a := range arts {
			approved[a.SHA256] = a
		}
	}
	// Invalidate what is no longer approved, only when the approved set is
	// known completely (an authority that cannot be reached does not empty
	// the cache).
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		if len(errs) > 0 {
			break
		}
		if _, ok := approved[e.Name()]; !ok {
			c.mu.Lock()
			delete(c.ready, e.Name())
			c.mu.Unlock()
			_ = os.Remove(filepath.Join(c.dir, e.Name()))
		}
	}
	for sha, a := range approved {
		c.mu.Lock()
		_, ok := c.ready[sha]
		c.mu.Unlock()
		if ok {
			continue
		}
		fetched, err := m.mirrorArtifact(ctx, c, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("artifact %s: %w", sha, err))
			continue
		}
		c.mu.Lock()
		c.ready[sha] = a.Size
		c.mu.Unlock()
		if fetched {
			c.mirrored.Add(1)
		}
		log.Info("artifact mirrored", "sha256", sha, "size", a.Size, "platform", a.Platform(), "fetched", fetched)
	}
	return errors.Join(errs...)
}

// verifiedArtifacts fetches a release from an authority and verifies it
// against the release roots of the snapshot and the digest it names.
func (m *member) verifiedArtifacts(ctx context.Context, d snapshot.DesiredVersion, sr snapshot.ReleaseRoots) ([]release.Artifact, error) {
	m.mu.Lock()
	client := m.client
	m.mu.Unlock()
	if client == nil {
		return nil, errors.New("no authority client")
	}
	var ar agentRelease
	rctx, cancel := context.WithTimeout(ctx, m.a.o.RequestTimeout*3)
	defer cancel()
	if err := client.Do(rctx, http.MethodGet, agentapi.ReleasePath(d.Product, d.Version), nil, &ar, nil); err != nil {
		return nil, err
	}
	roots := release.Roots{Threshold: sr.Threshold}
	for _, k := range sr.Keys {
		roots.Keys = append(roots.Keys, ed25519.PublicKey(k))
	}
	now := m.a.o.Now()
	kse, err := release.Unmarshal(ar.KeySet, 0)
	if err != nil {
		return nil, err
	}
	ks, err := release.VerifyKeySet(kse, roots, now, 0)
	if err != nil {
		return nil, err
	}
	me, err := release.Unmarshal(ar.Manifest, 0)
	if err != nil {
		return nil, err
	}
	if me.Digest() != d.ManifestDigest {
		return nil, fmt.Errorf("manifest %s is not the one the snapshot names (%s)", me.Digest(), d.ManifestDigest)
	}
	mf, err := release.VerifyManifestSignature(me, ks, now, 0)
	if err != nil {
		return nil, err
	}
	if mf.Product != d.Product || mf.Version != d.Version {
		return nil, fmt.Errorf("manifest is %s %s", mf.Product, mf.Version)
	}
	return mf.Artifacts, nil
}

// mirrorArtifact keeps a verified copy of a: a file already there is
// re-verified, otherwise the bytes stream from an authority into a
// temporary file through the size/sha256 check and are renamed into place
// (fetched reports that).
func (m *member) mirrorArtifact(ctx context.Context, c *updateCache, a release.Artifact) (fetched bool, err error) {
	path := filepath.Join(c.dir, a.SHA256)
	if f, err := os.Open(path); err == nil {
		d := release.NewDigester(a)
		_, err = io.Copy(d, f)
		f.Close()
		if err == nil && d.Verify() == nil {
			return false, nil
		}
		_ = os.Remove(path)
	}
	return true, m.fetchIntoCache(ctx, c, a, path)
}

func (m *member) fetchIntoCache(ctx context.Context, c *updateCache, a release.Artifact, path string) error {
	rc, err := m.a.fetchArtifact(ctx, m, a)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.dir, ".mirror-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	d := release.NewDigester(a)
	if _, err := io.Copy(io.MultiWriter(tmp, d), rc); err != nil {
		tmp.Close()
		return err
	}
	if err := d.Verify(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// artifactSources are the places an artifact may be fetched from, in
// order: the snapshot's update-cache mirrors (nearest first), then the
// authorities. Every source is untrusted (updater.Stage verifies).
func (a *Agent) artifactSources(ctx context.Context, m *member, u snapshot.Updates, art release.Artifact) []updater.Source {
	var out []updater.Source
	for _, mir := range u.Mirrors {
		for _, e := range mir.Endpoints {
			addr, ok := strings.CutPrefix(e, updateCacheEndpointPref)
			if !ok {
				continue
			}
			node, addr := mir.NodeID, addr
			out = append(out, updater.Source{Name: "update-cache " + node + " at " + addr,
				Open: func() (io.ReadCloser, error) { return m.cacheGet(ctx, node, addr, art.SHA256) }})
		}
	}
	return append(out, updater.Source{Name: "authorities", Open: func() (io.ReadCloser, error) { return a.fetchArtifact(ctx, m, art) }})
}

// cacheGet opens an artifact download from an update-cache node. As with
// config-storage, the mirror presents its node certificate (client-auth
// usage): the chain is checked against the cluster CA and the certificate
// must name exactly the mirror the signed snapshot lists.
func (m *member) cacheGet(ctx context.Context, cacheNode, addr, sha string) (io.ReadCloser, error) {
	m.mu.Lock()
	keys, cert := m.keys, m.cert
	m.mu.Unlock()
	roots := m.rootPool()
	cluster := m.cluster
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, //nolint:gosec // verified in VerifyPeerCertificate
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: keys.Signing, Leaf: cert}},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("update-cache node presented no certificate")
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
				return fmt.Errorf("update-cache certificate: %w", err)
			}
			if len(c.URIs) != 1 {
				return errors.New("update-cache certificate has no node identity")
			}
			cl, node, err := identity.ParseNodeURI(c.URIs[0])
			if err != nil {
				return err
			}
			if cl != cluster || node != cacheNode {
				return fmt.Errorf("update-cache certificate names %s/%s, expected %s/%s", cl, node, cluster, cacheNode)
			}
			return nil
		}}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second,
		ResponseHeaderTimeout: m.a.o.RequestTimeout * 2}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+agentapi.ArtifactPath(sha), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("update-cache answered %s", resp.Status)
	}
	return &closeTransport{ReadCloser: resp.Body, tr: tr}, nil
}

// closeTransport closes its one-use transport with the body.
type closeTransport struct {
	io.ReadCloser
	tr *http.Transport
}

func (c *closeTransport) Close() error {
	err := c.ReadCloser.Close()
	c.tr.CloseIdleConnections()
	return err
}

// nodeTLSCertificate is the node certificate (with its issuing root) an
// endpoint this node serves presents.
func (m *member) nodeTLSCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &tls.Certificate{Certificate: [][]byte{m.cert.Raw, m.ca.Raw}, PrivateKey: m.keys.Signing, Leaf: m.cert}, nil
}
