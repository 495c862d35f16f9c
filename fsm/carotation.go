package fsm

// Cluster CA rotation: RotateClusterCA (command.go) makes a new key current
// and keeps the old one in the history as "rotated" — still trusted, the
// overlap; RetireClusterCA (this file) ends the overlap for one rotated key,
// after which nothing issued by it is trusted.

import (
	"fmt"
	"time"
)

// TypeRetireClusterCA is RetireClusterCA's wire type.
const TypeRetireClusterCA CommandType = 21

// CAKeyRetired marks a rotated key whose overlap ended: certificates and
// snapshots it signed are no longer trusted.
const CAKeyRetired CAKeyStatus = "retired"

// ErrCANotRetirable: RetireClusterCA for a key that is not a rotated
// (overlapping) key of the cluster — the current key, an unknown key or one
// already retired.
var ErrCANotRetirable = &CommandError{Code: "ca_not_retirable"}

// RetireClusterCA ends the overlap of a rotated cluster CA key: the key stays
// in the history (so material it signed is recognised and refused as
// retired) with status retired.
type RetireClusterCA struct {
	ClusterID string    `json:"cluster_id"`
	KeyID     string    `json:"key_id"`
	At        time.Time `json:"at"`
}

// Type implements Command.
func (RetireClusterCA) Type() CommandType { return TypeRetireClusterCA }

// Validate implements Command.
func (c RetireClusterCA) Validate() error {
	if err := required("cluster_id", c.ClusterID, "key_id", c.KeyID); err != nil {
		return err
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

func applyRetireClusterCA(s *state, c RetireClusterCA) Result {
	ca, ok := s.CAs[c.ClusterID]
	if !ok {
		return Result{Err: cmdErr(ErrNoCA, c.ClusterID)}
	}
	i := -1
	for j, k := range ca.History {
		if k.KeyID == c.KeyID {
			i = j
		}
	}
	if i < 0 || ca.History[i].Status != CAKeyRotated {
		why := "not a rotated key"
		switch {
		case ca.Current.KeyID == c.KeyID:
			why = "the current key"
		case i >= 0:
			why = "already " + string(ca.History[i].Status)
		}
		return Result{Err: cmdErr(ErrCANotRetirable, fmt.Sprintf("%s: %s", c.KeyID, why))}
	}
	// Replace, don't mutate: snapshots share *ClusterCA values' slices.
	next := &ClusterCA{ClusterID: ca.ClusterID, Current: ca.Current, History: append([]CAKey(nil), ca.History...)}
	next.History[i].Status, next.History[i].RetiredAt = CAKeyRetired, c.At.UTC()
	s.CAs[c.ClusterID] = next
	return Result{}
}

// Trusted returns the keys whose material is trusted: every rotated key not
// yet retired (oldest first), then the current key. More than one means a
// rotation is in its overlap.
func (c ClusterCA) Trusted() []CAKey {
	var out []CAKey
	for _, k := range c.History {
		if k.Status == CAKeyRotated {
			out = append(out, k)
		}
	}
	return append(out, c.Current)
}

// Publishing returns the key that signs what every node must be able to
// verify before it has learned the newer roots — snapshots and the
// authorities' TLS server certificates: the oldest trusted key. During an
// overlap that is the old root (it vouches for the new one in the signed
// snapshots); otherwise the current key. Node certificates are issued by
// the current key.
func (c ClusterCA) Publishing() CAKey { return c.Trusted()[0] }

// InOverlap reports whether a rotated key is still trusted.
func (c ClusterCA) InOverlap() bool { return len(c.Trusted()) > 1 }

// CAKeyStatusOf returns the status of one key of a cluster's CA without
// copying the CA (hot path: per-request authentication).
func (f *FSM) CAKeyStatusOf(clusterID, keyID string) (CAKeyStatus, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ca, ok := f.st.CAs[clusterID]
	if !ok {
		return "", false
	}
	k, ok := ca.Key(keyID)
	return k.Status, ok
}
