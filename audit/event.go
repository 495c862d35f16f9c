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
	ID         int64             // the store's row id (insertion order); 0 when the store has none
	ClusterID  string            // the chain this event belongs to ("" = platform)
	OrgID      string            // the organization the event concerns; may be empty
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
	// RiskJSON, when not nil, is the risk column exactly as stored (any JSON
	// value): format 2 hashes it instead of Risk, so a stored value that is not
	// a flat object of strings is still covered. Readers of a store set it.
	RiskJSON   json.RawMessage
	FenceEpoch *int64    // the authority epoch of a fenced write; nil when not fenced
	At         time.Time //
	// Format selects the hashed encoding: FormatCurrent (zero) covers every
	// field; FormatLegacy is the encoding of events chained before format 2
	// (without ID, OrgID, FenceEpoch and RiskJSON). It is not stored with the
	// event: the verifier decides it from an anchored boundary.
	Format   Format
	PrevHash Hash // Hash of the previous event (or the chain's genesis)
	Hash     Hash // SHA-256(PrevHash || canonical(event))
}

// Format is an event hash encoding version.
type Format uint8

// Hash encodings.
const (
	// FormatCurrent (format 2) hashes every field of the event.
	FormatCurrent Format = 0
	// FormatLegacy (format 1) omits ID, OrgID, FenceEpoch and RiskJSON.
	FormatLegacy Format = 1
)

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
	for _, f := range [...]struct{ name, s string }{
		{"cluster_id", e.ClusterID}, {"actor", e.Actor}, {"device", e.Device}, {"action", e.Action},
		{"target_kind", e.TargetKind}, {"target_id", e.TargetID},
	} {
		if err := storable(f.s); err != nil {
			return e, fmt.Errorf("%w: %s %v", ErrInvalidEvent, f.name, err)
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
	if err := storable(e.OrgID); err != nil {
		return e, fmt.Errorf("%w: organization_id %v", ErrInvalidEvent, err)
	}
	d, err := CanonicalJSON(e.Details)
	if err != nil {
		return e, fmt.Errorf("%w: details: %v", ErrInvalidEvent, err)
	}
	e.Details = d
	if e.RiskJSON != nil {
		r, err := CanonicalJSON(e.RiskJSON)
		if err != nil {
			return e, fmt.Errorf("%w: risk: %v", ErrInvalidEvent, err)
		}
		e.RiskJSON = r
		if e.RiskJSON == nil {
			e.RiskJSON = json.RawMessage("null")
		}
	}
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
	switch string(raw) {
	case "{}", "[]":
		// Already canonical (the details and risk of most events): no
		// decode and encode.
		return json.RawMessage(string(raw)), nil
	case "null":
		return nil, nil
	}
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
//
// Format 2 (FormatCurrent) starts with "rap-audit-v2", adds the row id, the
// organization, the fence epoch (a presence byte, then 8 bytes) after the v1
// fields and encodes risk as canonical JSON (RiskJSON when set) instead of
// sorted pairs, so every column of a stored row is covered.
func canonicalBytes(e *Event) []byte {
	if e.Format == FormatLegacy {
		return canonicalBytesV1(e)
	}
	var b bytes.Buffer
	b.WriteString("rap-audit-v2\x00")
	putInt := func(v int64) { _ = binary.Write(&b, binary.BigEndian, v) }
	putStr := func(s string) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
	}
	putInt(e.Seq)
	putInt(e.ID)
	putStr(e.ClusterID)
	putStr(e.OrgID)
	putStr(e.Actor)
	putStr(string(e.ActorKind))
	putStr(e.Device)
	putStr(e.SourceAddr)
	putStr(e.Action)
	putStr(e.TargetKind)
	putStr(e.TargetID)
	putStr(string(e.Outcome))
	risk := e.RiskJSON
	if risk == nil && e.Risk != nil {
		risk, _ = json.Marshal(e.Risk) // a map of strings always encodes, keys sorted
	}
	putStr(string(risk))
	putStr(string(e.Details))
	if e.FenceEpoch == nil {
		b.WriteByte(0)
	} else {
		b.WriteByte(1)
		putInt(*e.FenceEpoch)
	}
	putInt(e.At.UnixMicro())
	return b.Bytes()
}

// canonicalBytesV1 is format 1 (FormatLegacy).
func canonicalBytesV1(e *Event) []byte {
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
