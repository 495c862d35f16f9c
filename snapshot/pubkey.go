package snapshot

// Ed25519ctx verification with parsed public keys kept: decompressing a
// public key (a square root in the field) is a tenth of a verify, and an
// agent verifies every snapshot with the same few cluster CA keys. The check
// is the one crypto/ed25519 makes (RFC 8032 Ed25519ctx, cofactorless,
// canonical S, R compared by encoding); TestVerifyCtxMatchesStdlib compares
// the two on valid, altered and malformed inputs.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"sync"

	"filippo.io/edwards25519"
)

// maxParsedKeys bounds the parsed-key cache: a cluster trusts a handful of
// CA keys at a time; past the bound keys are parsed on every verify.
const maxParsedKeys = 64

var parsedKeys = struct {
	sync.RWMutex
	m map[string]*edwards25519.Point // string(pub) → −A
}{m: map[string]*edwards25519.Point{}}

// negKey returns −A for pub, parsing it once; ok is false for a key that is
// not a valid point encoding.
func negKey(pub ed25519.PublicKey) (*edwards25519.Point, bool) {
	parsedKeys.RLock()
	p := parsedKeys.m[string(pub)]
	parsedKeys.RUnlock()
	if p != nil {
		return p, true
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, false
	}
	p = new(edwards25519.Point).Negate(a)
	parsedKeys.Lock()
	if len(parsedKeys.m) < maxParsedKeys {
		parsedKeys.m[string(pub)] = p
	}
	parsedKeys.Unlock()
	return p, true
}

// dom2 is RFC 8032's dom2(0, SignatureContext) prefix of Ed25519ctx.
var dom2 = append([]byte("SigEd25519 no Ed25519 collisions\x00"+string(rune(len(SignatureContext)))), SignatureContext...)

// verifyCtx reports whether sig is a valid Ed25519ctx signature (context
// SignatureContext) of msg by pub.
func verifyCtx(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	minusA, ok := negKey(pub)
	if !ok {
		return false
	}
	h := sha512.New()
	h.Write(dom2)
	h.Write(sig[:32])
	h.Write(pub)
	h.Write(msg)
	var digest [64]byte
	k, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		return false
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	r := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, s)
	return bytes.Equal(sig[:32], r.Bytes())
}
