package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
)

// DefaultMaxSize is the default limit on an encoded envelope (256 KiB):
// manifests and key sets are small; artifacts travel separately.
const DefaultMaxSize int64 = 256 << 10

// FormatVersion is the payload format version written by the encoders and
// the only one the decoders accept.
const FormatVersion = 1

// Envelope kinds.
const (
	// KindKeySet marks an envelope carrying a KeySet signed by root keys.
	KindKeySet = "rap-release-keyset"
	// KindManifest marks an envelope carrying a Manifest signed by a
	// release-signing key.
	KindManifest = "rap-release-manifest"
)

// Signature is one Ed25519ctx signature over an envelope's payload.
type Signature struct {
	// KeyID is KeyID of the signing public key.
	KeyID string `json:"key_id"`
	// Sig is the 64-byte signature.
	Sig []byte `json:"sig"`
}

// Envelope is the wire and file form of a signed document: its kind, the
// canonical payload bytes (base64 in JSON) and the signatures over them. An
// unsigned envelope (no signatures) is what `rapctl release sign` takes in.
type Envelope struct {
	Kind       string      `json:"kind"`
	Payload    []byte      `json:"payload"`
	Signatures []Signature `json:"signatures"`
}

// Digest returns the content address of the document: "sha256:<hex>" of
// the canonical payload (independent of the signatures).
func (e Envelope) Digest() string {
	sum := sha256.Sum256(e.Payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Marshal returns the envelope's JSON encoding (indented, one document).
func (e Envelope) Marshal() ([]byte, error) {
	if e.Signatures == nil {
		e.Signatures = []Signature{}
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, rerr(ErrInvalid, "envelope: %v", err)
	}
	return append(b, '\n'), nil
}

// Decode reads one envelope from r, reading at most maxSize+1 bytes
// (maxSize <= 0 means DefaultMaxSize): a larger or endless input fails with
// ErrTooLarge without being buffered beyond the limit. Unknown fields, a
// kind other than the two known ones, more than MaxSignatures signatures,
// malformed signature entries or trailing data fail with ErrMalformed. The
// payload is not decoded here (see VerifyKeySet, VerifyManifest).
func Decode(r io.Reader, maxSize int64) (Envelope, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return Envelope{}, rerr(ErrMalformed, "read: %v", err)
	}
	if int64(len(b)) > maxSize {
		return Envelope{}, rerr(ErrTooLarge, "input exceeds %d bytes", maxSize)
	}
	var e Envelope
	if err := strictJSON(b, &e); err != nil {
		return Envelope{}, rerr(ErrMalformed, "envelope: %v", err)
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// Validate checks the envelope's shape (what Decode checks after parsing
// JSON): a known kind, a payload, at most MaxSignatures signatures, each
// with a 16-hex-digit key id and 64 bytes. It does not verify signatures.
func (e Envelope) Validate() error {
	if e.Kind != KindKeySet && e.Kind != KindManifest {
		return rerr(ErrMalformed, "envelope kind %q unknown", e.Kind)
	}
	if len(e.Payload) == 0 {
		return rerr(ErrMalformed, "empty payload")
	}
	if int64(len(e.Payload)) > DefaultMaxSize {
		return rerr(ErrTooLarge, "payload exceeds %d bytes", DefaultMaxSize)
	}
	if len(e.Signatures) > MaxSignatures {
		return rerr(ErrMalformed, "%d signatures, limit %d", len(e.Signatures), MaxSignatures)
	}
	for i, s := range e.Signatures {
		if len(s.KeyID) != 16 || !token(s.KeyID, 16) || len(s.Sig) != 64 {
			return rerr(ErrMalformed, "signature %d: key id %q, %d bytes", i, s.KeyID, len(s.Sig))
		}
	}
	return nil
}

// Unmarshal decodes an envelope held in memory (see Decode).
func Unmarshal(b []byte, maxSize int64) (Envelope, error) {
	return Decode(bytes.NewReader(b), maxSize)
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

var errTrailing = &Error{Err: ErrMalformed, Detail: "trailing data"}

type wireKeySet struct {
	Format int `json:"format"`
	KeySet
}

type wireManifest struct {
	Format int `json:"format"`
	Manifest
}

// EncodeKeySet returns the canonical payload of k: compact JSON in struct
// field order, times in UTC, keys sorted by id, revocations sorted, signing
// key ids filled in. It fails with ErrInvalid when k does not validate.
func EncodeKeySet(k KeySet) ([]byte, error) {
	k.normalize()
	if err := k.validate(); err != nil {
		return nil, rerr(ErrInvalid, "key set: %v", err)
	}
	return json.Marshal(wireKeySet{Format: FormatVersion, KeySet: k})
}

// DecodeKeySet decodes a canonical key set payload. Anything that is not
// exactly what EncodeKeySet produces for the decoded value (unknown fields,
// other field order, unsorted lists, non-UTC times) fails with ErrMalformed,
// so every key set has exactly one encoding. It checks no signature.
func DecodeKeySet(payload []byte) (KeySet, error) {
	var w wireKeySet
	if err := strictJSON(payload, &w); err != nil {
		return KeySet{}, rerr(ErrMalformed, "key set payload: %v", err)
	}
	if w.Format != FormatVersion {
		return KeySet{}, rerr(ErrMalformed, "key set format %d, want %d", w.Format, FormatVersion)
	}
	if err := w.KeySet.validate(); err != nil {
		return KeySet{}, rerr(ErrMalformed, "key set: %v", err)
	}
	again, err := EncodeKeySet(w.KeySet)
	if err != nil || !bytes.Equal(again, payload) {
		return KeySet{}, rerr(ErrMalformed, "key set payload is not canonical")
	}
	return w.KeySet, nil
}

// EncodeManifest returns the canonical payload of m: compact JSON in struct
// field order, times in UTC, channels and artifacts sorted. It fails with
// ErrInvalid when m does not validate.
func EncodeManifest(m Manifest) ([]byte, error) {
	m.normalize()
	if err := m.validate(); err != nil {
		return nil, rerr(ErrInvalid, "manifest: %v", err)
	}
	return json.Marshal(wireManifest{Format: FormatVersion, Manifest: m})
}

// DecodeManifest decodes a canonical manifest payload, with the same
// one-encoding rule as DecodeKeySet. It checks no signature.
func DecodeManifest(payload []byte) (Manifest, error) {
	var w wireManifest
	if err := strictJSON(payload, &w); err != nil {
		return Manifest{}, rerr(ErrMalformed, "manifest payload: %v", err)
	}
	if w.Format != FormatVersion {
		return Manifest{}, rerr(ErrMalformed, "manifest format %d, want %d", w.Format, FormatVersion)
	}
	if err := w.Manifest.validate(); err != nil {
		return Manifest{}, rerr(ErrMalformed, "manifest: %v", err)
	}
	again, err := EncodeManifest(w.Manifest)
	if err != nil || !bytes.Equal(again, payload) {
		return Manifest{}, rerr(ErrMalformed, "manifest payload is not canonical")
	}
	return w.Manifest, nil
}

// NewKeySetEnvelope returns the unsigned envelope of k.
func NewKeySetEnvelope(k KeySet) (Envelope, error) {
	p, err := EncodeKeySet(k)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Kind: KindKeySet, Payload: p, Signatures: []Signature{}}, nil
}

// NewManifestEnvelope returns the unsigned envelope of m.
func NewManifestEnvelope(m Manifest) (Envelope, error) {
	p, err := EncodeManifest(m)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Kind: KindManifest, Payload: p, Signatures: []Signature{}}, nil
}
