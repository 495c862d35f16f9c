package authority

// Authentication of the heartbeat route, cached per certificate for
// AuthCacheTTL; a background refresh every AuthCacheTTL/2 re-checks every
// cached serial in one statement when a revocation happened since its last
// look (a one-row counter, migration 020), so a revoked node is refused
// within about AuthCacheTTL even on a kept-alive connection (new connections
// are refused at the TLS handshake).

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"time"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

type authEntry struct {
	p        NodePrincipal
	notAfter time.Time
	checked  time.Time
}

// Authenticate verifies a node certificate for the heartbeat route, reusing a
// verification for up to AuthCacheTTL (refreshed in the background with one
// statement for all cached certificates).
func (h *Heartbeats) Authenticate(ctx context.Context, cert *x509.Certificate, source string) (NodePrincipal, error) {
	if p, ok := h.CachedPrincipal(cert, source); ok {
		return p, nil
	}
	key := sha256.Sum256(cert.Raw)
	now := h.cfg.Clock()
	h.authChecks.Add(1)
	p, err := h.a.AuthenticateNode(ctx, cert, source)
	if err != nil {
		h.authMu.Lock()
		delete(h.auth, key)
		h.authMu.Unlock()
		return p, err
	}
	h.authMu.Lock()
	h.auth[key] = &authEntry{p: NodePrincipal{ClusterID: p.ClusterID, NodeID: p.NodeID, Serial: p.Serial, CAKeyID: p.CAKeyID}, notAfter: cert.NotAfter, checked: now}
	h.authMu.Unlock()
	return p, nil
}

// CachedPrincipal returns the node of cert when a full check verified it less
// than AuthCacheTTL ago (and it has not expired): the cache-hit half of
// Authenticate, which never touches the database. ok false means Authenticate
// must check it.
func (h *Heartbeats) CachedPrincipal(cert *x509.Certificate, source string) (p NodePrincipal, ok bool) {
	key := sha256.Sum256(cert.Raw)
	now := h.cfg.Clock()
	// Copy the entry under the lock: refreshAuth moves checked forward while
	// requests read it.
	h.authMu.RLock()
	var e authEntry
	hit := false
	if pe := h.auth[key]; pe != nil {
		e, hit = *pe, true
	}
	h.authMu.RUnlock()
	if !hit || !now.Before(e.notAfter) || now.Sub(e.checked) >= h.cfg.AuthCacheTTL {
		return NodePrincipal{}, false
	}
	// A certificate of a root retired since it was cached (on any
	// authority: the FSM is replicated) takes the full check, which
	// refuses it with ca_retired.
	if st, _ := h.a.state.CAKeyStatusOf(e.p.ClusterID, e.p.CAKeyID); st == fsm.CAKeyRetired {
		return NodePrincipal{}, false
	}
	p = e.p
	p.SourceAddr = source
	return p, true
}

// refreshAuth re-checks every cached certificate with one statement; revoked
// ones leave the cache (their next request is refused by the full check).
//
// It first reads the revocation counter (store.AuthRevocationSeq), which
// every revocation moves (with a new random stamp) in its own transaction,
// and notes the time right after the read. When the counter has not moved
// since the last refresh read it, no certificate has been revoked since that read, so every entry
// verified after it (by the re-check that followed it, or by a request's full
// check that began later: its checked is taken before its query) is still
// good and moves forward without touching the certificates: at 50,000 cached
// nodes a one-row read instead of a 50,000-serial statement every
// AuthCacheTTL/2. An entry whose verification began before that read (a
// request's check that raced the last re-check) is not moved: it ages out,
// and its next request takes the full check. Any error leaves the entries to
// age out the same way.
func (h *Heartbeats) refreshAuth(ctx context.Context) {
	h.authRefreshMu.Lock()
	defer h.authRefreshMu.Unlock()
	start := h.cfg.Clock()
	seq, err := store.AuthRevocationSeq(ctx, h.a.db.Pool)
	if err != nil {
		h.revOK = false
		return
	}
	read := h.cfg.Clock() // every revocation committed after this moves seq
	if h.revOK && seq.Stamp == h.revSeq.Stamp {
		h.authRefreshesSkipped.Add(1)
		h.authMu.Lock()
		for k, e := range h.auth {
			switch {
			case !start.Before(e.notAfter):
				delete(h.auth, k)
			case !e.checked.Before(h.revAt) && e.checked.Before(read):
				e.checked = read
			}
		}
		h.authMu.Unlock()
		h.revAt = read
		return
	}
	h.authMu.RLock()
	serials := make([]string, 0, len(h.auth))
	for _, e := range h.auth {
		serials = append(serials, e.p.Serial)
	}
	h.authMu.RUnlock()
	good, err := store.GoodCertificateSerials(ctx, h.a.db.Pool, serials)
	if err != nil {
		h.revOK = false
		return // entries age out; requests fall back to the full check
	}
	h.authRefreshes.Add(1)
	h.authMu.Lock()
	for k, e := range h.auth {
		switch {
		case !good[e.p.Serial] || !start.Before(e.notAfter):
			delete(h.auth, k)
		case e.checked.Before(read):
			e.checked = read // verified by the statement, which ran after read
		}
	}
	h.authMu.Unlock()
	h.revSeq, h.revAt, h.revOK = seq, read, true
}

// dropRetiredAuth removes cached authentications of certificates whose
// issuing CA root is retired.
func (h *Heartbeats) dropRetiredAuth() {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	for k, e := range h.auth {
		if st, _ := h.a.state.CAKeyStatusOf(e.p.ClusterID, e.p.CAKeyID); st == fsm.CAKeyRetired {
			delete(h.auth, k)
		}
	}
}
