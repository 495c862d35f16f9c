package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
)

// DefaultMaxSize is the default limit on an encoded Signed envelope (4 MiB).
const DefaultMaxSize int64 = 4 << 20

// FormatVersion is the payload format version written by Encode and the only
// one DecodeSnapshot accepts.
const FormatVersion = 1

// envelope layout (all integers big-endian):
//
//	magic "RAPS" | envVersion u8 | keyIDLen u8 | keyID | sigLen u8 | sig | payloadLen u32 | payload
var magic = [4]byte{'R', 'A', 'P', 'S'}

const envVersion = 1

type wireSnapshot struct {
	Format int `json:"format"`
	Snapshot
}

// Encode returns the canonical encoding of s: compact JSON, object members in
// the fixed struct order of the types in this package, times in UTC RFC 3339
// with nanoseconds, Scope sorted, optional sections omitted when empty, and
// embedded JSON documents compacted. Build emits every slice already sorted,
// so the same State and BuildOptions always give the same bytes.
func Encode(s Snapshot) ([]byte, error) {
	s.IssuedAt = s.IssuedAt.UTC()
	s.ExpiresAt = s.ExpiresAt.UTC()
	if !slices.IsSorted(s.Scope) {
		s.Scope = slices.Clone(s.Scope)
		slices.Sort(s.Scope)
	}
	return json.Marshal(wireSnapshot{Format: FormatVersion, Snapshot: s})
}

// DecodeSnapshot decodes a canonical payload. It does not verify anything:
// call it only on a payload whose signature was verified (Verify does).
//
// Payloads exactly in Encode's canonical shape take a direct byte scanner
// (decodeCanonical, fastdecode.go): more than twice as fast as jsonv2 alone
// (BenchmarkDecodeSnapshot), four times as fast within Verify. Anything
// else, and anything the scanner is unsure of, is decoded with the
// encoding/json v2 prototype
// (github.com/go-json-experiment/json), about twice as fast as encoding/json
// here (a hand-written decoder on its jsontext tokenizer measured no faster)
// and stricter about what Encode never writes: duplicate member names,
// invalid UTF-8 and member names in another case are refused or not matched.
// Both paths give the same Snapshot (TestFastDecodeMatchesJSONv2), and
// Encode's output decodes to the same Snapshot as with encoding/json
// (TestDecodeMatchesEncodingJSON).
func DecodeSnapshot(payload []byte) (Snapshot, error) {
	w, ok := decodeCanonical(payload)
	if !ok {
		var err error
		if w, err = decodeJSON(payload); err != nil {
			return Snapshot{}, verr(ErrMalformed, "payload: %v", err)
		}
	}
	if w.Format != FormatVersion {
		return Snapshot{}, verr(ErrMalformed, "payload format %d, want %d", w.Format, FormatVersion)
	}
	if w.ClusterID == "" || w.NodeID == "" || w.Version == 0 {
		return Snapshot{}, verr(ErrMalformed, "payload lacks cluster_id, node_id or version")
	}
	// One canonical value whatever the payload's offsets and the machine's
	// zone: Encode writes UTC, so a decoded snapshot re-encodes to the same
	// bytes it was decoded from.
	w.IssuedAt = w.IssuedAt.UTC()
	w.ExpiresAt = w.ExpiresAt.UTC()
	return w.Snapshot, nil
}

// decodeJSON is DecodeSnapshot's general path: jsonv2 by reflection.
func decodeJSON(payload []byte) (wireSnapshot, error) {
	var w wireSnapshot
	err := jsonv2.Unmarshal(payload, &w)
	return w, err
}

// MarshalBinary returns the wire form of s (the envelope read by Decode).
func (s Signed) MarshalBinary() ([]byte, error) {
	if len(s.KeyID) == 0 || len(s.KeyID) > 255 || len(s.Signature) > 255 || int64(len(s.Payload)) > int64(^uint32(0)) {
		return nil, verr(ErrMalformed, "envelope field lengths out of range")
	}
	out := make([]byte, 0, 4+1+1+len(s.KeyID)+1+len(s.Signature)+4+len(s.Payload))
	out = append(out, magic[:]...)
	out = append(out, envVersion, byte(len(s.KeyID)))
	out = append(out, s.KeyID...)
	out = append(out, byte(len(s.Signature)))
	out = append(out, s.Signature...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(s.Payload)))
	return append(out, s.Payload...), nil
}

// Unmarshal decodes a wire envelope held in memory (see Decode).
func Unmarshal(b []byte, maxSize int64) (Signed, error) {
	return Decode(bytes.NewReader(b), maxSize)
}

// Decode reads one wire envelope from r, reading at most maxSize+1 bytes
// (maxSize <= 0 means DefaultMaxSize). The declared payload length is checked
// against the limit before the payload is allocated, so a huge or endless
// input costs neither memory nor time: it fails with ErrTooLarge. A short
// input fails with ErrMalformed, as do trailing bytes within the limit.
func Decode(r io.Reader, maxSize int64) (Signed, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	lr := &io.LimitedReader{R: r, N: maxSize + 1}
	var hdr [6]byte
	if err := readFull(lr, hdr[:], "header"); err != nil {
		return Signed{}, err
	}
	if !bytes.Equal(hdr[:4], magic[:]) || hdr[4] != envVersion {
		return Signed{}, verr(ErrMalformed, "bad magic or envelope version")
	}
	keyID := make([]byte, hdr[5])
	if err := readFull(lr, keyID, "key id"); err != nil {
		return Signed{}, err
	}
	var n [1]byte
	if err := readFull(lr, n[:], "signature length"); err != nil {
		return Signed{}, err
	}
	sig := make([]byte, n[0])
	if err := readFull(lr, sig, "signature"); err != nil {
		return Signed{}, err
	}
	var pl [4]byte
	if err := readFull(lr, pl[:], "payload length"); err != nil {
		return Signed{}, err
	}
	plen := int64(binary.BigEndian.Uint32(pl[:]))
	headerLen := int64(6 + len(keyID) + 1 + len(sig) + 4)
	if headerLen+plen > maxSize {
		return Signed{}, verr(ErrTooLarge, "declared %d bytes, limit %d", headerLen+plen, maxSize)
	}
	payload := make([]byte, plen)
	if err := readFull(lr, payload, "payload"); err != nil {
		return Signed{}, err
	}
	if k, _ := lr.Read(n[:]); k > 0 {
		if lr.N <= 0 {
			return Signed{}, verr(ErrTooLarge, "input exceeds limit %d", maxSize)
		}
		return Signed{}, verr(ErrMalformed, "trailing bytes after payload")
	}
	return Signed{Payload: payload, KeyID: string(keyID), Signature: sig}, nil
}

func readFull(r *io.LimitedReader, b []byte, what string) error {
	_, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if r.N <= 0 {
			return verr(ErrTooLarge, "input exceeds limit while reading %s", what)
		}
		return verr(ErrMalformed, "truncated %s", what)
	default:
		return verr(ErrMalformed, "reading %s: %v", what, err)
	}
}
