package authority

// Remembered chain verifications of node certificates. Every agent request
// authenticates its client certificate (AuthenticateNode), and the x509 chain
// check (parse the CA, build a pool, verify the Ed25519 signature) was ~15 %
// of an authority's CPU with 10,000 agents. Whether a CA root's signature on
// a certificate verifies never changes, so the outcome is remembered per
// (certificate bytes, root) together with the window in which both are valid;
// what does change is checked on every request as before: the root's status
// in the replicated state (retired → ca_retired) and the certificate's
// standing in the database (revoked, superseded). A remembered verification is
// used only for the same root certificate bytes it was made with.

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// maxChainEntries bounds the memo; when it is full it starts again empty.
const maxChainEntries = 200_000

type chainKey struct {
	cert    [32]byte // sha256 of the certificate's DER
	cluster string
	kid     string // CA root key id
}

type chainEntry struct {
	caDER []byte // the root certificate verified against
	ok    bool   // verified; false: this root did not issue it (signature or issuer)
	// from, until bound a positive outcome (both certificates valid).
	from, until time.Time
}

// chainMemo remembers node certificate chain verifications.
type chainMemo struct {
	mu      sync.RWMutex
	entries map[chainKey]chainEntry
	// verifies counts the chain verifications actually run (tests).
	verifies int64
}

// verify reports whether the root (kid, caDER) of cluster issued cert, valid at now,
// running check only when no remembered outcome answers it.
func (m *chainMemo) verify(cert *x509.Certificate, sum [32]byte, cluster, kid string, caDER []byte, now time.Time, check func() error) bool {
	k := chainKey{cert: sum, cluster: cluster, kid: kid}
	m.mu.RLock()
	e, hit := m.entries[k]
	m.mu.RUnlock()
	if hit && bytes.Equal(e.caDER, caDER) {
		if !e.ok {
			return false
		}
		if !now.Before(e.from) && now.Before(e.until) {
			return true
		}
	}
	err := check()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.verifies++
	if m.entries == nil || len(m.entries) >= maxChainEntries {
		m.entries = map[chainKey]chainEntry{}
	}
	switch {
	case err == nil:
		from, until := cert.NotBefore, cert.NotAfter
		if ca, perr := x509.ParseCertificate(caDER); perr == nil {
			from, until = later(from, ca.NotBefore), earlier(until, ca.NotAfter)
		}
		m.entries[k] = chainEntry{caDER: caDER, ok: true, from: from, until: until.Add(time.Nanosecond)}
		return true
	case notSignedBy(cert, caDER):
		// This root's key did not sign it: it never will.
		m.entries[k] = chainEntry{caDER: caDER}
	default:
		// Expired, not yet valid, wrong usage, …: decided again next time.
		delete(m.entries, k)
	}
	return false
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// notSignedBy reports whether the root in caDER did not sign cert (a
// time-independent fact, unlike the chain check's other reasons).
func notSignedBy(cert *x509.Certificate, caDER []byte) bool {
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return false
	}
	return ca.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil
}

// certSum is the memo's key of a certificate.
func certSum(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.Raw) }
