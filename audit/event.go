package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Hash is a SHA-256 chain hash.
type Hash [sha256.Size]byte

// String returns lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex (for JSON APIs).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("audit: hash must be %d hex chars", 2*len(h))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// ActorKind says what kind of principal acted.
type ActorKind string

// Actor kinds.
const (
	ActorUser     ActorKind = "user"      // an admin with a session
	ActorAPIToken ActorKind = "api-token" // an API token
	ActorNode     ActorKind = "node"      // a node agent (mTLS)
	ActorSystem   ActorKind = "system"    // the authority itself (expiry, rotation)
)

// Outcome is the result of the audited action.
type Outcome string

// Outcomes.
const (
	OutcomeOK     Outcome = "ok"     // performed
	OutcomeDenied Outcome = "denied" // refused by policy (authz, CSRF, step-up, lockout, fence)
	OutcomeFailed Outcome = "failed" // attempted but failed (error, conflict)
)

// Event is one audit record. Seq, PrevHash and Hash are set by Chain; the
// rest by the caller. At is stored with microsecond precision in UTC (what
// PostgreSQL timestamptz keeps).
type Event struct {
	Seq        int64             // 1, 2, 3... within the chain
	ClusterID  string            // the chain this event belongs to ("" = platform)
	Actor      string            // user id, token id, node id or component name
	ActorKind  ActorKind         //
	Device     string            // trusted-device id or client description; may be empty
	SourceAddr string            // client IP address (canonical form); may be empty
	Action     string            // e.g. "node.approve", "session.login"
	TargetKind string            // e.g. "node", "join_request"; may be empty
	TargetID   string            // may be empty
	Outcome    Outcome           //
	Risk       map[string]string // risk factors (device trust, network, MFA); may be nil
	Details    json.RawMessage   // any JSON value, stored canonical; may be nil
	At         time.Time         //
	PrevHash   Hash              // Hash of the previous event (or the chain's genesis)
	Hash       Hash              // SHA-256(PrevHash || canonical(event))
}

// Head is the position of a chain's newest event: what the next event links to.
type Head struct {
	Seq  int64
	Hash Hash
}

// Head returns the head formed by e.
func (e Event) Head() Head { return Head{Seq: e.Seq, Hash: e.Hash} }

// Genesis returns the head of an empty chain: Seq 0 and a hash bound to
// chainID, so events cannot be moved between chains unnoticed.
func Genesis(chainID string) Head {
	return Head{Hash: sha256.Sum256([]byte("rap-audit-genesis-v1\x00" + chainID))}
}

// Normalize returns e in the form that is hashed and stored: At in UTC
// truncated to microseconds, SourceAddr in canonical form, Details as canonical
// JSON (sorted keys, no insignificant space; "null" becomes nil), an empty Risk
// map as nil. It fails with ErrInvalidEvent when e cannot be stored faithfully.
func Normalize(e Event) (Event, error) {
	if e.Action == "" {
		return e, fmt.Errorf("%w: action is empty", ErrInvalidEvent)
	}
	switch e.Outcome {
	case OutcomeOK, OutcomeDenied, OutcomeFailed:
	default:
		return e, fmt.Errorf("%w: outcome %q", ErrInvalidEvent, e.Outcome)
	}
	switch e.ActorKind {
	case ActorUser, ActorAPIToken, ActorNode, ActorSystem:
	default:
		return e, fmt.Errorf("%w: actor kind %q", ErrInvalidEvent, e.ActorKind)
	}
	if e.At.IsZero() {
		return e, fmt.Errorf("%w: time is zero", ErrInvalidEvent)
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if e.SourceAddr != "" {
		a, err := netip.ParseAddr(e.SourceAddr)
		if err != nil {
			return e, fmt.Errorf("%w: source address %q", ErrInvalidEvent, e.SourceAddr)
		}
		e.SourceAddr = a.String()
	}
	for name, s := range map[string]string{
		"cluster_id": e.ClusterID, "actor": e.Actor, "device": e.Device, "action": e.Action,
		"target_kind": e.TargetKind, "target_id": e.TargetID,
	} {
		if err := storable(s); err != nil {
			return e, fmt.Errorf("%w: %s %v", ErrInvalidEvent, name, err)
		}
	}
	if len(e.Risk) == 0 {
		e.Risk = nil
	} else {
		r := make(map[string]string, len(e.Risk))
		for k, v := range e.Risk {
			if err := storable(k); err != nil {
				return e, fmt.Errorf("%w: risk key %v", ErrInvalidEvent, err)
			}
			if err := storable(v); err != nil {
				return e, fmt.Errorf("%w: risk value %v", ErrInvalidEvent, err)
			}
			r[k] = v
		}
		e.Risk = r
	}
	d, err := CanonicalJSON(e.Details)
	if err != nil {
		return e, fmt.Errorf("%w: details: %v", ErrInvalidEvent, err)
	}
	e.Details = d
	return e, nil
}

// storable rejects what PostgreSQL text cannot hold (invalid UTF-8, NUL).
func storable(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("contains NUL")
	}
	return nil
}

// CanonicalJSON re-encodes a JSON value deterministically: object keys sorted,
// no insignificant whitespace, numbers kept as written, strings re-escaped by
// encoding/json. Empty input and "null" yield nil. It is idempotent.
func CanonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	if v == nil {
		return nil, nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// canonicalBytes is the deterministic encoding of everything in e except
// PrevHash and Hash: a version tag, then each field in a fixed order as a
// big-endian uint32 length and its bytes (integers as 8 bytes), Risk as a
// count and sorted key/value pairs. Length prefixes make field boundaries
// unambiguous. e must be normalized.
func canonicalBytes(e *Event) []byte {
	var b bytes.Buffer
	b.WriteString("rap-audit-v1\x00")
	putInt := func(v int64) { _ = binary.Write(&b, binary.BigEndian, v) }
	putStr := func(s string) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
	}
	putInt(e.Seq)
	putStr(e.ClusterID)
	putStr(e.Actor)
	putStr(string(e.ActorKind))
	putStr(e.Device)
	putStr(e.SourceAddr)
	putStr(e.Action)
	putStr(e.TargetKind)
	putStr(e.TargetID)
	putStr(string(e.Outcome))
	keys := make([]string, 0, len(e.Risk))
	for k := range e.Risk {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	putInt(int64(len(keys)))
	for _, k := range keys {
		putStr(k)
		putStr(e.Risk[k])
	}
	putStr(string(e.Details))
	putInt(e.At.UnixMicro())
	return b.Bytes()
}

// ComputeHash returns SHA-256(e.PrevHash || canonical(e)) for e as given
// (normalized first; an event that cannot be normalized is an error).
func ComputeHash(e Event) (Hash, error) {
	n, err := Normalize(e)
	if err != nil {
		return Hash{}, err
	}
	h := sha256.New()
	h.Write(n.PrevHash[:])
	h.Write(canonicalBytes(&n))
	var out Hash
	copy(out[:], h.Sum(nil))
	return out, nil
}

// Chain links e to prev: it normalizes e, sets Seq = prev.Seq+1, PrevHash =
// prev.Hash and Hash. The result is what the store must persist verbatim.
func Chain(prev Head, e Event) (Event, error) {
	n, err := Normalize(e)
	if err != nil {
		return Event{}, err
	}
	n.Seq = prev.Seq + 1
	n.PrevHash = prev.Hash
	h := sha256.New()
	h.Write(n.PrevHash[:])
	h.Write(canonicalBytes(&n))
	copy(n.Hash[:], h.Sum(nil))
	return n, nil
}
