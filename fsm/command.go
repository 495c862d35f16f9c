package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Wire format of a command (the raft.Log Data):
//
//	byte 0   version (Version1)
//	byte 1   CommandType
//	byte 2…  JSON body: {"request_id": "...", "cmd": {…type-specific fields…}}
//
// The leader encodes with Encode; every replica decodes with Decode inside
// Apply. Unknown versions and types decode to an error, never a panic.

// Version1 is the only command encoding version this FSM understands.
const Version1 byte = 1

// MaxRequestIDLen bounds an idempotency key so the idempotency table stays
// bounded in bytes as well as in entries.
const MaxRequestIDLen = 128

// MaxCommandSize bounds an encoded command; larger commands are malformed.
const MaxCommandSize = 1 << 20

// CommandType names a command on the wire. Values are stable; never reuse one.
type CommandType uint8

// The command types.
const (
	TypeClaimEpoch      CommandType = 1
	TypeCreateClusterCA CommandType = 2
	TypeRotateClusterCA CommandType = 3
	TypeSetPartition    CommandType = 4
	TypeUpsertMember    CommandType = 5
	TypeRemoveMember    CommandType = 6
	TypeSetGossipKey    CommandType = 7
)

// String returns the command's script name.
func (t CommandType) String() string {
	switch t {
	case TypeClaimEpoch:
		return "claim-epoch"
	case TypeCreateClusterCA:
		return "create-ca"
	case TypeRotateClusterCA:
		return "rotate-ca"
	case TypeSetPartition:
		return "set-partition"
	case TypeUpsertMember:
		return "upsert-member"
	case TypeRemoveMember:
		return "remove-member"
	case TypeSetGossipKey:
		return "set-gossip-key"
	case TypeSetReleaseRoots:
		return "set-release-roots"
	case TypeSetAuditCheckpoint:
		return "set-audit-checkpoint"
	case TypeRetireClusterCA:
		return "retire-ca"
	case TypeReanchorAudit:
		return "reanchor-audit"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Command is one state change. Implementations are plain data: every value
// Apply needs (timestamps, ids, key material) is a field, so replaying the log
// on any replica yields the same state.
type Command interface {
	// Type returns the wire type of the command.
	Type() CommandType
	// Validate checks fields that do not depend on state. Apply calls it; the
	// leader may call it before proposing to fail early.
	Validate() error
}

// ClaimEpoch asks for a new authority epoch for LeaderID, which leads in Raft
// term Term. The resulting epoch is max(previous+1, Term): strictly increasing
// on every applied claim, and never below the claiming leader's term, so an
// epoch can be read next to Raft terms in logs without surprises. A claim whose
// Term is lower than the last applied claim's term is rejected (ErrStaleClaim);
// Raft orders entries by term so this only guards against misuse.
type ClaimEpoch struct {
	LeaderID string    `json:"leader_id"`
	Term     uint64    `json:"term"`
	At       time.Time `json:"at,omitzero"`
}

// CreateClusterCA installs the first CA key of a cluster. SealedPrivateKey has
// been sealed by the leader (see Sealer) before proposing.
type CreateClusterCA struct {
	ClusterID        string    `json:"cluster_id"`
	KeyID            string    `json:"key_id"`
	PublicKey        []byte    `json:"public_key"`
	SealedPrivateKey []byte    `json:"sealed_private_key"`
	CertDER          []byte    `json:"cert_der"`
	At               time.Time `json:"at"`
}

// RotateClusterCA makes a new key current for a cluster. The previous current
// key stays in the history marked rotated at At, so verifiers can still check
// (and knowingly refuse) material signed by it.
type RotateClusterCA struct {
	ClusterID        string    `json:"cluster_id"`
	KeyID            string    `json:"key_id"`
	PublicKey        []byte    `json:"public_key"`
	SealedPrivateKey []byte    `json:"sealed_private_key"`
	CertDER          []byte    `json:"cert_der"`
	At               time.Time `json:"at"`
}

// SetPartition records a cluster's partition/authority state. Epoch is the
// authority epoch of the leader that proposes it (recorded, not checked).
type SetPartition struct {
	ClusterID string                `json:"cluster_id"`
	State     domain.PartitionState `json:"state"`
	Reason    string                `json:"reason"`
	Actor     string                `json:"actor"`
	Epoch     uint64                `json:"epoch,omitempty"`
	At        time.Time             `json:"at"`
}

// Suffrage is a member's voting status in the authority Raft group.
type Suffrage string

// Suffrage values.
const (
	SuffrageVoter    Suffrage = "voter"
	SuffrageNonvoter Suffrage = "nonvoter"
)

// UpsertMember adds an authority member or replaces its addresses/suffrage.
type UpsertMember struct {
	ID       string   `json:"id"`
	RaftAddr string   `json:"raft_addr"`
	APIAddr  string   `json:"api_addr"`
	Suffrage Suffrage `json:"suffrage"`
}

// RemoveMember deletes an authority member from the list.
type RemoveMember struct {
	ID string `json:"id"`
}

// SetGossipKey installs KeyID as the current memberlist key of a cluster's
// gossip pool (Pool "" is the default pool). SealedKey was sealed by the
// leader (AAD GossipKeyAAD). The key it replaces, if any, is kept as the
// pool's previous key so that agents can accept both during a rotation; keys
// older than that are dropped. With OnlyIfNone the command fails with
// ErrGossipKeyExists when the pool already has a key (first generation: two
// racing leaders cannot overwrite each other's key).
type SetGossipKey struct {
	ClusterID  string    `json:"cluster_id"`
	Pool       string    `json:"pool,omitempty"`
	KeyID      string    `json:"key_id"`
	SealedKey  []byte    `json:"sealed_key"`
	OnlyIfNone bool      `json:"only_if_none,omitempty"`
	At         time.Time `json:"at"`
}

// Type implements Command.
func (SetGossipKey) Type() CommandType { return TypeSetGossipKey }

// Validate implements Command.
func (c SetGossipKey) Validate() error {
	if err := required("cluster_id", c.ClusterID, "key_id", c.KeyID); err != nil {
		return err
	}
	if len(c.SealedKey) == 0 {
		return cmdErr(ErrInvalid, "sealed_key is required")
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

// Type implements Command.
func (ClaimEpoch) Type() CommandType { return TypeClaimEpoch }

// Type implements Command.
func (CreateClusterCA) Type() CommandType { return TypeCreateClusterCA }

// Type implements Command.
func (RotateClusterCA) Type() CommandType { return TypeRotateClusterCA }

// Type implements Command.
func (SetPartition) Type() CommandType { return TypeSetPartition }

// Type implements Command.
func (UpsertMember) Type() CommandType { return TypeUpsertMember }

// Type implements Command.
func (RemoveMember) Type() CommandType { return TypeRemoveMember }

func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return cmdErr(ErrInvalid, pairs[i]+" is required")
		}
	}
	return nil
}

// Validate implements Command.
func (c ClaimEpoch) Validate() error { return required("leader_id", c.LeaderID) }

// Validate implements Command.
func (c CreateClusterCA) Validate() error {
	return validateKey(c.ClusterID, c.KeyID, c.PublicKey, c.SealedPrivateKey, c.At)
}

// Validate implements Command.
func (c RotateClusterCA) Validate() error {
	return validateKey(c.ClusterID, c.KeyID, c.PublicKey, c.SealedPrivateKey, c.At)
}

func validateKey(cluster, key string, pub, sealed []byte, at time.Time) error {
	if err := required("cluster_id", cluster, "key_id", key); err != nil {
		return err
	}
	if len(pub) == 0 {
		return cmdErr(ErrInvalid, "public_key is required")
	}
	if len(sealed) == 0 {
		return cmdErr(ErrInvalid, "sealed_private_key is required")
	}
	if at.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

// Validate implements Command.
func (c SetPartition) Validate() error {
	if err := required("cluster_id", c.ClusterID, "actor", c.Actor); err != nil {
		return err
	}
	switch c.State {
	case domain.PartitionNormal, domain.PartitionDegraded, domain.PartitionPromoted, domain.PartitionFenced:
	default:
		return cmdErr(ErrInvalid, fmt.Sprintf("unknown partition state %q", c.State))
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

// Validate implements Command.
func (c UpsertMember) Validate() error {
	if err := required("id", c.ID, "raft_addr", c.RaftAddr); err != nil {
		return err
	}
	if c.Suffrage != SuffrageVoter && c.Suffrage != SuffrageNonvoter {
		return cmdErr(ErrInvalid, fmt.Sprintf("unknown suffrage %q", c.Suffrage))
	}
	return nil
}

// Validate implements Command.
func (c RemoveMember) Validate() error { return required("id", c.ID) }

type envelope struct {
	RequestID string          `json:"request_id,omitempty"`
	Cmd       json.RawMessage `json:"cmd"`
}

// Encode renders cmd as a version-1 command. requestID is the idempotency key:
// a non-empty id makes a retried command return the first application's
// result instead of applying twice. Encode validates cmd first.
func Encode(requestID string, cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, cmdErr(ErrInvalid, "nil command")
	}
	if len(requestID) > MaxRequestIDLen {
		return nil, cmdErr(ErrInvalid, "request_id too long")
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", cmd.Type(), err)
	}
	env, err := json.Marshal(envelope{RequestID: requestID, Cmd: body})
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", cmd.Type(), err)
	}
	out := make([]byte, 0, 2+len(env))
	out = append(out, Version1, byte(cmd.Type()))
	out = append(out, env...)
	if len(out) > MaxCommandSize {
		return nil, cmdErr(ErrInvalid, "command too large")
	}
	return out, nil
}

// Decoded is a command as read from the log.
type Decoded struct {
	Version   byte
	RequestID string
	Command   Command
}

// Decode parses a command produced by Encode. It returns a *CommandError
// (ErrUnknownVersion, ErrUnknownType, ErrMalformed or ErrInvalid) for anything
// else; it never panics.
func Decode(data []byte) (Decoded, error) {
	if len(data) < 2 {
		return Decoded{}, cmdErr(ErrMalformed, "short command")
	}
	if len(data) > MaxCommandSize {
		return Decoded{}, cmdErr(ErrMalformed, "command too large")
	}
	if data[0] != Version1 {
		return Decoded{}, cmdErr(ErrUnknownVersion, fmt.Sprintf("version %d", data[0]))
	}
	var cmd Command
	switch t := CommandType(data[1]); t {
	case TypeClaimEpoch:
		cmd = &ClaimEpoch{}
	case TypeCreateClusterCA:
		cmd = &CreateClusterCA{}
	case TypeRotateClusterCA:
		cmd = &RotateClusterCA{}
	case TypeSetPartition:
		cmd = &SetPartition{}
	case TypeUpsertMember:
		cmd = &UpsertMember{}
	case TypeRemoveMember:
		cmd = &RemoveMember{}
	case TypeSetGossipKey:
		cmd = &SetGossipKey{}
	case TypeSetReleaseRoots:
		cmd = &SetReleaseRoots{}
	case TypeSetAuditCheckpoint:
		cmd = &SetAuditCheckpoint{}
	case TypeRetireClusterCA:
		cmd = &RetireClusterCA{}
	case TypeReanchorAudit:
		cmd = &ReanchorAudit{}
	default:
		return Decoded{}, cmdErr(ErrUnknownType, fmt.Sprintf("type %d", data[1]))
	}
	var env envelope
	if err := strictUnmarshal(data[2:], &env); err != nil {
		return Decoded{}, cmdErr(ErrMalformed, err.Error())
	}
	if len(env.Cmd) == 0 {
		return Decoded{}, cmdErr(ErrMalformed, "missing cmd")
	}
	if len(env.RequestID) > MaxRequestIDLen {
		return Decoded{}, cmdErr(ErrInvalid, "request_id too long")
	}
	if err := strictUnmarshal(env.Cmd, cmd); err != nil {
		return Decoded{}, cmdErr(ErrMalformed, err.Error())
	}
	cmd, err := canonical(deref(cmd))
	if err != nil {
		return Decoded{}, err
	}
	if err := cmd.Validate(); err != nil {
		return Decoded{}, err
	}
	return Decoded{Version: data[0], RequestID: env.RequestID, Command: cmd}, nil
}

// strictUnmarshal decodes exactly one JSON value and rejects trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after JSON body")
	}
	return nil
}

// canonical returns c with every timestamp in UTC, so that a command decodes to
// the same value on every machine whatever its time zone: encoding/json keeps
// the offset a timestamp was written with (as time.Local when it matches the
// machine's zone), and re-encoding such a value would not reproduce the bytes
// the leader proposed. Timestamps whose UTC year falls outside 0..9999 cannot
// be encoded again and are refused.
func canonical(c Command) (Command, error) {
	var err error
	switch v := c.(type) {
	case ClaimEpoch:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case CreateClusterCA:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case RotateClusterCA:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case SetPartition:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case SetGossipKey:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case SetAuditCheckpoint:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case RetireClusterCA:
		v.At, err = canonicalTime("at", v.At)
		c = v
	case ReanchorAudit:
		v.At, err = canonicalTime("at", v.At)
		c = v
	}
	return c, err
}

// canonicalTime is t in UTC, or ErrInvalid when UTC moves it out of the range
// JSON timestamps can carry.
func canonicalTime(field string, t time.Time) (time.Time, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return time.Time{}, cmdErr(ErrInvalid, field+": year out of range")
	}
	return u, nil
}

// deref turns the pointer Decode filled into the value type callers switch on.
func deref(c Command) Command {
	switch v := c.(type) {
	case *ClaimEpoch:
		return *v
	case *CreateClusterCA:
		return *v
	case *RotateClusterCA:
		return *v
	case *SetPartition:
		return *v
	case *UpsertMember:
		return *v
	case *RemoveMember:
		return *v
	case *SetGossipKey:
		return *v
	case *SetReleaseRoots:
		return *v
	case *SetAuditCheckpoint:
		return *v
	case *RetireClusterCA:
		return *v
	case *ReanchorAudit:
		return *v
	}
	return c
}
