package snapshot

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// SignatureContext is the Ed25519ctx (RFC 8032) context string of snapshot
// signatures. It separates them from anything else the cluster CA key signs
// (certificates, other documents).
const SignatureContext = "rap-fabric/snapshot/v1"

var signOpts = &ed25519.Options{Context: SignatureContext}

// KeyID returns the id of a signing key: hex of the first 8 bytes of
// sha256(pub).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// TrustedKeys returns a KeyID-indexed map of pubs, for Expect.TrustedKeys.
func TrustedKeys(pubs ...ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := make(map[string]ed25519.PublicKey, len(pubs))
	for _, p := range pubs {
		m[KeyID(p)] = p
	}
	return m
}

// Sign encodes s canonically and signs it with the cluster CA key. It fails
// with ErrTooLarge when the payload would exceed maxSize (<= 0 means
// DefaultMaxSize), so the authority never issues what agents would refuse.
func Sign(s Snapshot, key ed25519.PrivateKey, maxSize int64) (Signed, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Signed{}, verr(ErrInvalidOptions, "signing key has %d bytes", len(key))
	}
	payload, err := Encode(s)
	if err != nil {
		return Signed{}, verr(ErrInvalidOptions, "encode: %v", err)
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if int64(len(payload))+envelopeOverhead > maxSize {
		return Signed{}, verr(ErrTooLarge, "payload of %d bytes for node %s, limit %d", len(payload), s.NodeID, maxSize)
	}
	sig, err := key.Sign(nil, payload, signOpts)
	if err != nil {
		return Signed{}, verr(ErrInvalidOptions, "sign: %v", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	return Signed{Payload: payload, KeyID: KeyID(pub), Signature: sig}, nil
}

// envelopeOverhead is the wire envelope size around a payload with a 16-char
// key id and a 64-byte signature.
const envelopeOverhead = 6 + 16 + 1 + ed25519.SignatureSize + 4

// Expect is what the verifier already knows.
type Expect struct {
	// ClusterID and NodeID are the verifier's own cluster and node (the
	// audience). A config-storage cache verifying a served node's snapshot
	// passes that node's id.
	ClusterID string
	NodeID    string
	// AppliedVersion is the last applied (persisted) version; the snapshot
	// must be strictly newer. 0 accepts any version.
	AppliedVersion uint64
	// Now is the verifier's clock reading.
	Now time.Time
	// TrustedKeys are the cluster CA keys currently trusted, by KeyID.
	// Rotated-out keys are simply absent.
	TrustedKeys map[string]ed25519.PublicKey
	// MaxSize bounds the payload; <= 0 means DefaultMaxSize.
	MaxSize int64
	// ClockSkew is how far IssuedAt may lie ahead of Now before the
	// snapshot is refused as not yet valid; zero means DefaultClockSkew.
	ClockSkew time.Duration
}

// DefaultClockSkew is used when Expect.ClockSkew is zero.
const DefaultClockSkew = 5 * time.Minute

// Verify checks signed against e and returns the snapshot, or a *VerifyError
// wrapping one sentinel. The order is: size, envelope shape, key, signature,
// payload decoding, cluster, audience node, validity window (not yet valid,
// expired), version. Nothing of the payload is parsed before the signature
// has verified.
func Verify(signed Signed, e Expect) (Snapshot, error) {
	maxSize := e.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if int64(len(signed.Payload)) > maxSize {
		return Snapshot{}, verr(ErrTooLarge, "payload %d bytes, limit %d", len(signed.Payload), maxSize)
	}
	if len(signed.Signature) != ed25519.SignatureSize || signed.KeyID == "" || len(signed.Payload) == 0 {
		return Snapshot{}, verr(ErrMalformed, "signature %d bytes, key id %q, payload %d bytes", len(signed.Signature), signed.KeyID, len(signed.Payload))
	}
	pub, ok := e.TrustedKeys[signed.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Snapshot{}, verr(ErrUnknownKey, "key %s", signed.KeyID)
	}
	if !verifyCtx(pub, signed.Payload, signed.Signature) {
		return Snapshot{}, verr(ErrBadSignature, "key %s", signed.KeyID)
	}
	s, err := DecodeSnapshot(signed.Payload)
	if err != nil {
		return Snapshot{}, err
	}
	if s.ClusterID != e.ClusterID {
		return Snapshot{}, verr(ErrWrongCluster, "snapshot for cluster %q, expected %q", s.ClusterID, e.ClusterID)
	}
	if s.NodeID != e.NodeID || s.Body.Self.NodeID != e.NodeID {
		return Snapshot{}, verr(ErrWrongNode, "snapshot for node %q, expected %q", s.NodeID, e.NodeID)
	}
	skew := e.ClockSkew
	if skew == 0 {
		skew = DefaultClockSkew
	}
	if s.IssuedAt.After(e.Now.Add(skew)) {
		return Snapshot{}, verr(ErrNotYetValid, "issued %s, now %s", s.IssuedAt.Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	if !e.Now.Before(s.ExpiresAt) {
		return Snapshot{}, verr(ErrExpired, "expired %s, now %s", s.ExpiresAt.Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	if s.Version <= e.AppliedVersion {
		return Snapshot{}, verr(ErrStaleVersion, "version %d <= applied %d", s.Version, e.AppliedVersion)
	}
	return s, nil
}
