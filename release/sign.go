package release

import (
	"crypto/ed25519"
	"io"
	"slices"
)

// signOptions returns the Ed25519ctx (RFC 8032) options for a kind: the
// context separates key-set signatures from manifest signatures and from
// anything else the same key might sign.
func signOptions(kind string) *ed25519.Options {
	return &ed25519.Options{Context: "rap-fabric/" + kind + "/v1"}
}

// GenerateKey returns a new Ed25519 key pair drawn from rand (crypto/rand's
// Reader in production).
func GenerateKey(rand io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, rerr(ErrInvalid, "generate key: %v", err)
	}
	return pub, priv, nil
}

// Sign adds key's signature to e and returns the result; e is not modified.
// The payload is decoded first (a key never signs what verifiers would
// refuse as malformed). Signing twice with the same key replaces the earlier
// signature, so a root holder can re-run the command safely. A manifest
// carries exactly one signature: signing it replaces any other.
func Sign(e Envelope, key ed25519.PrivateKey) (Envelope, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Envelope{}, rerr(ErrInvalid, "private key has %d bytes", len(key))
	}
	switch e.Kind {
	case KindKeySet:
		if _, err := DecodeKeySet(e.Payload); err != nil {
			return Envelope{}, err
		}
	case KindManifest:
		if _, err := DecodeManifest(e.Payload); err != nil {
			return Envelope{}, err
		}
	default:
		return Envelope{}, rerr(ErrInvalid, "envelope kind %q unknown", e.Kind)
	}
	sig, err := key.Sign(nil, e.Payload, signOptions(e.Kind))
	if err != nil {
		return Envelope{}, rerr(ErrInvalid, "sign: %v", err)
	}
	id := KeyID(key.Public().(ed25519.PublicKey))
	out := Envelope{Kind: e.Kind, Payload: e.Payload}
	if e.Kind == KindKeySet {
		out.Signatures = slices.DeleteFunc(slices.Clone(e.Signatures), func(s Signature) bool { return s.KeyID == id })
		if len(out.Signatures) >= MaxSignatures {
			return Envelope{}, rerr(ErrInvalid, "envelope already has %d signatures", len(out.Signatures))
		}
	}
	out.Signatures = append(out.Signatures, Signature{KeyID: id, Sig: sig})
	return out, nil
}
