package runtime

// Cluster CA rotation on the agent (docs/ca-rotation.md). The node's CA
// pins — the roots its API clients accept in the authorities' TLS chains,
// whose keys verify snapshot signatures and whose certificates verify its
// own and its peers' node certificates — move only with the ca_roots of a
// signed snapshot it verified with a root it already pinned: the old root
// vouches for the new one during the overlap, and the new root's snapshots
// drop the old one after retirement. The pins are persisted in the
// identity (bbolt) before they are used, so a restart keeps them.
//
// When the snapshot's active root is not the issuer of the node's
// certificate, the node renews at once (not at the normal renewal window),
// naming its pinned roots in the request so that the authority issues the
// new certificate from the active root.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/snapshot"
)

// errCARoots marks ca_roots of a verified snapshot that the node does not
// pin (malformed, or not naming the key that signed the snapshot).
var errCARoots = errors.New("runtime: unusable ca_roots")

// nextCARoots returns the roots a node pins after a snapshot signed by the
// key signer (already verified against the node's pins) listed roots: each
// must be a self-signed Ed25519 CA certificate of cluster whose key id is
// the one named, exactly one active, and the signer among them (a snapshot
// never drops the root that vouches for it). The active root comes first.
func nextCARoots(cluster, signer string, roots []snapshot.CARoot) ([]state.CARoot, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: none listed", errCARoots)
	}
	var out []state.CARoot
	active, signed := 0, false
	for _, r := range roots {
		cert, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			return nil, fmt.Errorf("%w: root %s: %w", errCARoots, r.KeyID, err)
		}
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: root %s is not an Ed25519 key", errCARoots, r.KeyID)
		case snapshot.KeyID(pub) != r.KeyID:
			return nil, fmt.Errorf("%w: root %s has key id %s", errCARoots, r.KeyID, snapshot.KeyID(pub))
		case !cert.IsCA || !cert.BasicConstraintsValid || cert.CheckSignatureFrom(cert) != nil:
			return nil, fmt.Errorf("%w: root %s is not a self-signed CA certificate", errCARoots, r.KeyID)
		case len(cert.URIs) != 1 || cert.URIs[0].String() != "rap://"+cluster+"/ca":
			return nil, fmt.Errorf("%w: root %s is not a CA of cluster %s", errCARoots, r.KeyID, cluster)
		case r.Status != snapshot.CARootActive && r.Status != snapshot.CARootPrevious:
			return nil, fmt.Errorf("%w: root %s has status %q", errCARoots, r.KeyID, r.Status)
		case slices.ContainsFunc(out, func(x state.CARoot) bool { return x.KeyID == r.KeyID }):
			return nil, fmt.Errorf("%w: root %s listed twice", errCARoots, r.KeyID)
		}
		if r.Status == snapshot.CARootActive {
			active++
		}
		signed = signed || r.KeyID == signer
		out = append(out, state.CARoot{KeyID: r.KeyID, Active: r.Status == snapshot.CARootActive,
			CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))})
	}
	if active != 1 {
		return nil, fmt.Errorf("%w: %d active roots, want 1", errCARoots, active)
	}
	if !signed {
		return nil, fmt.Errorf("%w: the signing key %s is not among them", errCARoots, signer)
	}
	slices.SortStableFunc(out, func(a, b state.CARoot) int {
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	return out, nil
}

// sameCARoots reports whether two pinned root lists are the same roots
// with the same active one.
func sameCARoots(a, b []state.CARoot) bool {
	return slices.EqualFunc(a, b, func(x, y state.CARoot) bool {
		return x.KeyID == y.KeyID && x.Active == y.Active && x.CertificatePEM == y.CertificatePEM
	})
}

// pinnedRoots returns the CA roots an identity pins: its CARoots, or the
// CA certificate stored at enrollment before any snapshot moved them.
func pinnedRoots(id state.Identity) ([]*x509.Certificate, error) {
	if len(id.CARoots) == 0 {
		ca, err := identity.ParseCertificatePEM([]byte(id.CAPEM))
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{ca}, nil
	}
	out := make([]*x509.Certificate, 0, len(id.CARoots))
	for _, r := range id.CARoots {
		c, err := identity.ParseCertificatePEM([]byte(r.CertificatePEM))
		if err != nil {
			return nil, fmt.Errorf("pinned CA root %s: %w", r.KeyID, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// pinsOf returns the pins ("sha256:…") the identity's API clients accept
// in the authorities' chains: those of its CARoots, or the join pin.
func pinsOf(id state.Identity, roots []*x509.Certificate) []string {
	if len(id.CARoots) == 0 {
		return []string{id.CAPin}
	}
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		out = append(out, identity.CAPin(r))
	}
	return out
}

// issuerOf returns the root that issued cert (nil for none).
func issuerOf(cert *x509.Certificate, roots []*x509.Certificate) *x509.Certificate {
	for _, r := range roots {
		if bytes.Equal(cert.RawIssuer, r.RawSubject) && cert.CheckSignatureFrom(r) == nil {
			return r
		}
	}
	return nil
}

// issuerKeyID returns the key id of the root in roots that issued cert
// ("" for none).
func issuerKeyID(cert *x509.Certificate, roots []*x509.Certificate) string {
	if cert == nil {
		return ""
	}
	if r := issuerOf(cert, roots); r != nil {
		if pub, ok := r.PublicKey.(ed25519.PublicKey); ok {
			return snapshot.KeyID(pub)
		}
	}
	return ""
}

// caRootIDs returns the key ids of an identity's pinned roots (active
// first).
func caRootIDs(id state.Identity) []string {
	var out []string
	for _, r := range id.CARoots {
		out = append(out, r.KeyID)
	}
	return out
}

// rootKeys returns the snapshot verification keys of roots.
func rootKeys(roots []*x509.Certificate) map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(roots))
	for _, r := range roots {
		if pub, ok := r.PublicKey.(ed25519.PublicKey); ok {
			out[snapshot.KeyID(pub)] = pub
		}
	}
	return out
}

// updateIdentity changes the membership's stored identity: change edits a
// copy of the current one (false: nothing to store), which is persisted,
// then loaded (new API clients). One change at a time, each on the latest
// identity, so that a renewal and moved pins never undo each other.
func (m *member) updateIdentity(change func(id *state.Identity) bool) (bool, error) {
	m.idMu.Lock()
	defer m.idMu.Unlock()
	m.mu.Lock()
	id := m.id
	m.mu.Unlock()
	id.CARoots = slices.Clone(id.CARoots)
	id.AuthorityURLs = slices.Clone(id.AuthorityURLs)
	if !change(&id) {
		return false, nil
	}
	if err := m.a.st.PutIdentity(m.cluster, id); err != nil {
		return false, err
	}
	return true, m.load(id)
}

// rootPool returns the pinned roots as a certificate pool (verification of
// other nodes' certificates).
func (m *member) rootPool() *x509.CertPool {
	m.mu.Lock()
	roots := m.roots
	m.mu.Unlock()
	p := x509.NewCertPool()
	for _, r := range roots {
		p.AddCert(r)
	}
	return p
}

// pinnedKeyIDs returns the key ids of the roots moved from snapshots (nil
// before any snapshot carried ca_roots).
func (m *member) pinnedKeyIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.id.CARoots {
		out = append(out, r.KeyID)
	}
	return out
}

// moveCARoots applies the ca_roots of a snapshot verified with the key
// signer: the pins are replaced and persisted when they changed, and an
// early renewal is asked for when the node's certificate was not issued by
// the active root. ca_roots the node cannot use are logged and ignored (the
// pins stay).
func (m *member) moveCARoots(snap snapshot.Snapshot, signer string, log hclog.Logger) {
	if len(snap.Body.CARoots) == 0 {
		return // an authority from before CA rotation
	}
	next, err := nextCARoots(m.cluster, signer, snap.Body.CARoots)
	if err != nil {
		log.Warn("the snapshot's CA roots are not usable: the CA pins stay", "version", snap.Version, "error", err)
		return
	}
	var prev []string
	moved, err := m.updateIdentity(func(id *state.Identity) bool {
		if sameCARoots(id.CARoots, next) {
			return false
		}
		prev = caRootIDs(*id)
		id.CARoots = next
		return true
	})
	if err != nil {
		log.Warn("storing the new CA pins failed; retrying with the next snapshot", "error", err)
		return
	}
	if moved {
		var keys []string
		for _, r := range next {
			keys = append(keys, r.KeyID)
		}
		log.Info("moved the CA pins to the snapshot's roots", "version", snap.Version, "roots", strings.Join(keys, ","), "active", next[0].KeyID,
			"previous_pins", strings.Join(prev, ","))
	}
	m.mu.Lock()
	roots := m.roots
	m.mu.Unlock()
	s := m.sn()
	s.mu.Lock()
	s.trust = rootKeys(roots)
	s.mu.Unlock()
	m.checkIssuer(next[0].KeyID, log)
}

// checkIssuer asks for an early renewal when the node's certificate was not
// issued by the active root (once per active root when the renewal that
// followed still came from another root: an authority that cannot issue
// from it yet).
func (m *member) checkIssuer(active string, log hclog.Logger) {
	m.mu.Lock()
	var root *x509.Certificate
	for i, r := range m.id.CARoots {
		if r.KeyID == active && i < len(m.roots) {
			root = m.roots[i]
		}
	}
	issued := root != nil && issuerOf(m.cert, []*x509.Certificate{root}) != nil
	ask := !issued && root != nil && m.renewTried != active && m.renewFor != active
	if ask {
		m.renewFor = active
	}
	if issued {
		m.renewFor = ""
	}
	m.mu.Unlock()
	if ask {
		log.Info("the certificate's issuer is not the active CA root: renewing early", "active_root", active)
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// earlyRenewal reports whether an early renewal (from the active root) is
// pending.
func (m *member) earlyRenewal() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.renewFor != ""
}

// renewedEarly records the outcome of a successful renewal: the pending
// early renewal is done, or — when the new certificate still does not come
// from the active root — not retried for that root.
func (m *member) renewedEarly(log hclog.Logger) {
	m.mu.Lock()
	want := m.renewFor
	m.renewFor = ""
	issuer := ""
	if pub, ok := m.ca.PublicKey.(ed25519.PublicKey); ok && issuerOf(m.cert, []*x509.Certificate{m.ca}) != nil {
		issuer = snapshot.KeyID(pub)
	}
	if want != "" && issuer != want {
		m.renewTried = want
	}
	m.mu.Unlock()
	if want != "" && issuer != want {
		log.Warn("the renewed certificate is still not from the active CA root; renewing at the normal window", "active_root", want, "issuer", issuer)
	}
}
