package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Limits of the release root key set (they mirror package release's, which
// fsm must not import).
const (
	// MaxReleaseRootKeys bounds the registered release root keys.
	MaxReleaseRootKeys = 16
	// releaseRootKeySize is the Ed25519 public key size.
	releaseRootKeySize = 32
)

// ReleaseRoots is the registered release root key set: the trust anchor of
// signed releases (spec stage C19). Release-signing key sets are trusted when
// Threshold distinct Keys signed them. Only public keys are ever recorded;
// root private keys stay offline.
type ReleaseRoots struct {
	// Version counts replacements: 1 for the first registration, +1 for each
	// rotation or revocation.
	Version uint64 `json:"version"`
	// Threshold is how many distinct root signatures a key set needs.
	Threshold int `json:"threshold"`
	// Keys are the Ed25519 root public keys, in registration order.
	Keys [][]byte `json:"keys"`
	// Actor and Reason say who replaced the set and why (audited too).
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// At is when the leader proposed it; Index the log index that applied it.
	At    time.Time `json:"at"`
	Index uint64    `json:"index"`
}

// SetReleaseRoots registers (PrevVersion 0) or replaces the release root key
// set. PrevVersion must equal the current set's version, so two owners
// racing to rotate cannot silently overwrite each other: the loser gets
// ErrReleaseRootsConflict. Removing a key from the set revokes it.
type SetReleaseRoots struct {
	PrevVersion uint64    `json:"prev_version"`
	Threshold   int       `json:"threshold"`
	Keys        [][]byte  `json:"keys"`
	Actor       string    `json:"actor"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
}

// TypeSetReleaseRoots is SetReleaseRoots' wire type.
const TypeSetReleaseRoots CommandType = 8

// ErrReleaseRootsConflict: SetReleaseRoots whose PrevVersion is not the
// current release root set's version.
var ErrReleaseRootsConflict = &CommandError{Code: "release_roots_conflict"}

// Type implements Command.
func (SetReleaseRoots) Type() CommandType { return TypeSetReleaseRoots }

// Validate implements Command: 1..MaxReleaseRootKeys distinct 32-byte keys,
// 1 <= Threshold <= len(Keys), an actor and a time.
func (c SetReleaseRoots) Validate() error {
	if err := required("actor", c.Actor); err != nil {
		return err
	}
	if len(c.Keys) == 0 || len(c.Keys) > MaxReleaseRootKeys {
		return cmdErr(ErrInvalid, fmt.Sprintf("%d release root keys, want 1..%d", len(c.Keys), MaxReleaseRootKeys))
	}
	if c.Threshold < 1 || c.Threshold > len(c.Keys) {
		return cmdErr(ErrInvalid, fmt.Sprintf("threshold %d, want 1..%d", c.Threshold, len(c.Keys)))
	}
	for i, k := range c.Keys {
		if len(k) != releaseRootKeySize {
			return cmdErr(ErrInvalid, fmt.Sprintf("release root key %d has %d bytes", i, len(k)))
		}
		for _, o := range c.Keys[:i] {
			if bytes.Equal(o, k) {
				return cmdErr(ErrInvalid, "duplicate release root key "+releaseKeyID(k))
			}
		}
	}
	if len(c.Reason) > 512 {
		return cmdErr(ErrInvalid, "reason too long")
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

// releaseKeyID is the key id spelling of package release (hex of the first 8
// bytes of sha256(pub)), for Dump and error details.
func releaseKeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func applyReleaseRoots(s *state, index uint64, c SetReleaseRoots) Result {
	var cur uint64
	if s.ReleaseRoots != nil {
		cur = s.ReleaseRoots.Version
	}
	if c.PrevVersion != cur {
		return Result{Err: cmdErr(ErrReleaseRootsConflict, fmt.Sprintf("prev_version %d, current %d", c.PrevVersion, cur))}
	}
	keys := make([][]byte, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = bytes.Clone(k)
	}
	// Replace, don't mutate: snapshots share the old value.
	s.ReleaseRoots = &ReleaseRoots{Version: cur + 1, Threshold: c.Threshold, Keys: keys,
		Actor: c.Actor, Reason: c.Reason, At: c.At.UTC(), Index: index}
	return Result{}
}

// ReleaseRoots returns a copy of the registered release root key set; ok is
// false before the first registration.
func (f *FSM) ReleaseRoots() (ReleaseRoots, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.ReleaseRoots == nil {
		return ReleaseRoots{}, false
	}
	r := *f.st.ReleaseRoots
	r.Keys = make([][]byte, len(f.st.ReleaseRoots.Keys))
	for i, k := range f.st.ReleaseRoots.Keys {
		r.Keys[i] = bytes.Clone(k)
	}
	return r, true
}

// dumpReleaseRoots renders the release roots for Dump (nothing when unset,
// so states without them dump as before).
func dumpReleaseRoots(s *state, ts func(time.Time) string) string {
	r := s.ReleaseRoots
	if r == nil {
		return ""
	}
	out := fmt.Sprintf("release-roots v%d threshold=%d actor=%s reason=%q at=%s index=%d\n", r.Version, r.Threshold, r.Actor, r.Reason, ts(r.At), r.Index)
	for _, k := range r.Keys {
		out += fmt.Sprintf("  root %s pub=%x\n", releaseKeyID(k), k)
	}
	return out
}
