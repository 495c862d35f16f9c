package snapshot

// Sealed snapshots: what a config-storage node caches and serves for another
// node. The node's signed snapshot (the wire envelope, with its own
// signature) is encrypted to that node's X25519 (Noise static) public key
// with an anonymous NaCl box (golang.org/x/crypto/nacl/box SealAnonymous:
// an ephemeral X25519 key, XSalsa20-Poly1305, nonce from
// BLAKE2b(ephemeral pub || recipient pub)). A cleartext header (cluster,
// node, version, validity window) and the box are signed together by the
// cluster CA key with Ed25519ctx under SealedSignatureContext. So anyone
// holding the cluster's keys can check that a sealed snapshot is authentic,
// for whom it is and how new it is (VerifySealed: what a storage node does
// before caching), while only the target can read it (OpenSealed), and it
// then verifies the inner snapshot as if the authority had sent it.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"io"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// SealedSignatureContext is the Ed25519ctx context of sealed-snapshot
// signatures, distinct from SignatureContext so that neither signature can
// stand for the other.
const SealedSignatureContext = "rap-fabric/sealed-snapshot/v1"

var sealedSignOpts = &ed25519.Options{Context: SealedSignatureContext}

// sealedMagic starts every sealed envelope (the plain envelope starts with
// "RAPS").
var sealedMagic = []byte("RAPX")

// SealedHeader is the cleartext part of a sealed snapshot: exactly what a
// config-storage node needs to decide whether to cache and serve it.
type SealedHeader struct {
	Format    int       `json:"format"`
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Version   uint64    `json:"version"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Sealed is a decoded sealed envelope.
type Sealed struct {
	Header    SealedHeader
	KeyID     string
	Signature []byte
	// Box is the anonymous NaCl box holding the inner wire envelope.
	Box []byte
	// signed is the byte string the signature covers.
	signed []byte
}

// IsSealed reports whether raw starts like a sealed envelope.
func IsSealed(raw []byte) bool { return bytes.HasPrefix(raw, sealedMagic) }

// Seal encrypts the signed wire envelope wire (Signed.MarshalBinary) to
// recipient, the target node's 32-byte X25519 public key, and signs header
// and box with key. The header is taken from the inner snapshot (decoded,
// not re-verified: the caller signed it). rnd supplies the ephemeral key.
func Seal(wire, recipient []byte, key ed25519.PrivateKey, rnd io.Reader) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, verr(ErrInvalidOptions, "signing key has %d bytes", len(key))
	}
	if len(recipient) != 32 {
		return nil, verr(ErrInvalidOptions, "recipient key has %d bytes, want 32", len(recipient))
	}
	signed, err := Decode(bytes.NewReader(wire), DefaultMaxSize)
	if err != nil {
		return nil, err
	}
	s, err := DecodeSnapshot(signed.Payload)
	if err != nil {
		return nil, err
	}
	h, err := json.Marshal(SealedHeader{Format: 1, ClusterID: s.ClusterID, NodeID: s.NodeID, Version: s.Version,
		IssuedAt: s.IssuedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()})
	if err != nil {
		return nil, verr(ErrInvalidOptions, "header: %v", err)
	}
	var pk [32]byte
	copy(pk[:], recipient)
	bx, err := box.SealAnonymous(nil, wire, &pk, rnd)
	if err != nil {
		return nil, verr(ErrInvalidOptions, "seal: %v", err)
	}
	msg := make([]byte, 0, 2+len(h)+4+len(bx))
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(h)))
	msg = append(msg, h...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(bx)))
	msg = append(msg, bx...)
	sig, err := key.Sign(nil, msg, sealedSignOpts)
	if err != nil {
		return nil, verr(ErrInvalidOptions, "sign: %v", err)
	}
	kid := KeyID(key.Public().(ed25519.PublicKey))
	out := make([]byte, 0, 4+1+1+len(kid)+len(sig)+len(msg))
	out = append(out, sealedMagic...)
	out = append(out, 1, byte(len(kid)))
	out = append(out, kid...)
	out = append(out, sig...)
	return append(out, msg...), nil
}

// DecodeSealed parses a sealed envelope without verifying it. The box may
// be at most maxSize (<= 0: DefaultMaxSize) plus the box overhead.
func DecodeSealed(raw []byte, maxSize int64) (Sealed, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if int64(len(raw)) > maxSize+box.AnonymousOverhead+1024 {
		return Sealed{}, verr(ErrTooLarge, "sealed envelope of %d bytes, limit %d", len(raw), maxSize)
	}
	p := raw
	take := func(n int) []byte {
		if n < 0 || len(p) < n {
			p = nil
			return nil
		}
		b := p[:n]
		p = p[n:]
		return b
	}
	if m := take(4); !bytes.Equal(m, sealedMagic) {
		return Sealed{}, verr(ErrMalformed, "not a sealed snapshot envelope")
	}
	v := take(1)
	if v == nil || v[0] != 1 {
		return Sealed{}, verr(ErrMalformed, "sealed envelope version %v", v)
	}
	kl := take(1)
	if kl == nil {
		return Sealed{}, verr(ErrMalformed, "truncated sealed envelope")
	}
	var s Sealed
	s.KeyID = string(take(int(kl[0])))
	s.Signature = take(ed25519.SignatureSize)
	s.signed = p
	hl := take(2)
	if hl == nil {
		return Sealed{}, verr(ErrMalformed, "truncated sealed envelope")
	}
	h := take(int(binary.BigEndian.Uint16(hl)))
	bl := take(4)
	if h == nil || bl == nil {
		return Sealed{}, verr(ErrMalformed, "truncated sealed envelope")
	}
	s.Box = take(int(binary.BigEndian.Uint32(bl)))
	if s.Box == nil || len(p) != 0 || s.KeyID == "" || len(s.Signature) != ed25519.SignatureSize || len(s.Box) <= box.AnonymousOverhead {
		return Sealed{}, verr(ErrMalformed, "truncated, trailing bytes or empty parts in sealed envelope")
	}
	if err := json.Unmarshal(h, &s.Header); err != nil || s.Header.Format != 1 {
		return Sealed{}, verr(ErrMalformed, "sealed header: format %d, %v", s.Header.Format, err)
	}
	return s, nil
}

// VerifySealed checks a sealed envelope against e without opening it: key,
// signature (over header and box), then cluster, audience node, validity
// window and version from the header, in Verify's order and with its
// sentinels. A config-storage node passes the served node's id as
// Expect.NodeID and its cached version as AppliedVersion.
func VerifySealed(raw []byte, e Expect) (Sealed, error) {
	s, err := DecodeSealed(raw, e.MaxSize)
	if err != nil {
		return Sealed{}, err
	}
	pub, ok := e.TrustedKeys[s.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Sealed{}, verr(ErrUnknownKey, "key %s", s.KeyID)
	}
	if ed25519.VerifyWithOptions(pub, s.signed, s.Signature, sealedSignOpts) != nil {
		return Sealed{}, verr(ErrBadSignature, "sealed envelope, key %s", s.KeyID)
	}
	h := s.Header
	if h.ClusterID != e.ClusterID {
		return Sealed{}, verr(ErrWrongCluster, "sealed snapshot for cluster %q, expected %q", h.ClusterID, e.ClusterID)
	}
	if h.NodeID != e.NodeID {
		return Sealed{}, verr(ErrWrongNode, "sealed snapshot for node %q, expected %q", h.NodeID, e.NodeID)
	}
	skew := e.ClockSkew
	if skew == 0 {
		skew = DefaultClockSkew
	}
	if h.IssuedAt.After(e.Now.Add(skew)) {
		return Sealed{}, verr(ErrNotYetValid, "issued %s, now %s", h.IssuedAt.Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	if !e.Now.Before(h.ExpiresAt) {
		return Sealed{}, verr(ErrExpired, "expired %s, now %s", h.ExpiresAt.Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	if h.Version <= e.AppliedVersion {
		return Sealed{}, verr(ErrStaleVersion, "version %d <= applied %d", h.Version, e.AppliedVersion)
	}
	return s, nil
}

// OpenSealed verifies a sealed envelope as its target (VerifySealed with
// e.NodeID the target itself) and decrypts it with the target's X25519
// private key. It returns the inner wire envelope, which the caller must
// still Decode and Verify like any snapshot. A box that does not open (not
// for this key, altered) is ErrMalformed.
func OpenSealed(raw []byte, e Expect, priv *ecdh.PrivateKey) ([]byte, error) {
	s, err := VerifySealed(raw, e)
	if err != nil {
		return nil, err
	}
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return nil, verr(ErrInvalidOptions, "no X25519 private key to open the sealed snapshot")
	}
	var sk, pk [32]byte
	copy(sk[:], priv.Bytes())
	copy(pk[:], priv.PublicKey().Bytes())
	wire, ok := box.OpenAnonymous(nil, s.Box, &pk, &sk)
	if !ok {
		return nil, verr(ErrMalformed, "the sealed snapshot does not open with this node's key")
	}
	return wire, nil
}
