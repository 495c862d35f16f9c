// Package adminingress is the Cluster Admin Endpoint of a node agent that
// holds an approved admin-ingress role (spec: Admin Endpoint Placement): an
// HTTPS listener that serves pages composed from the authorities' page
// definitions (uimanifest) and forwards every request to the authorities
// with the admin's own credential. It owns no cluster state, trust, policy
// or secret: every read and mutation is authorized, fenced and audited by
// the authorities, as the admin.
//
// The endpoint serves only while every precondition holds (Evaluate):
// healthy authority state, a current signed snapshot that lists the role,
// the role assigned (the authorities answer GET /v1/agent/admin-ingress),
// valid TLS, a current heartbeat and the role coverage the pages require.
// Otherwise every request is answered 503 with the unmet reasons (a plain
// page), and the agent's status shows them. The preconditions are checked
// again every Options.Every with the injected clock.
package adminingress

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/domain"
)

// Reason codes of unmet preconditions.
const (
	ReasonAuthorityUnreachable = "authority_unreachable"
	ReasonAuthorityUnhealthy   = "authority_unhealthy"
	ReasonRoleNotAssigned      = "role_not_assigned"
	ReasonStorageNode          = "storage_node"
	ReasonRefused              = "refused"
	ReasonSnapshotMissing      = "snapshot_missing"
	ReasonSnapshotExpired      = "snapshot_expired"
	ReasonSnapshotRole         = "snapshot_role_missing"
	ReasonTLSInvalid           = "tls_invalid"
	ReasonHeartbeatStale       = "heartbeat_stale"
	ReasonRoleCoverage         = "role_coverage"
	ReasonManifestInvalid      = "manifest_invalid"
	ReasonStarting             = "starting"
)

// Unmet is one precondition that does not hold.
type Unmet struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// String renders "code: detail".
func (u Unmet) String() string { return u.Code + ": " + u.Detail }

// Observation is what one check looks at: the membership's local state (the
// applied signed snapshot, the last heartbeat acknowledgement, the TLS
// certificate) and the authorities' last answer.
type Observation struct {
	// SnapshotVersion is the applied (verified) snapshot's version, 0 for
	// none; SnapshotExpires its expiry; SnapshotRoles the node's roles it
	// lists.
	SnapshotVersion uint64
	SnapshotExpires time.Time
	SnapshotRoles   []string
	// LastHeartbeatAck is when an authority last acknowledged a heartbeat.
	LastHeartbeatAck time.Time
	// Certificate is the listener's TLS leaf (nil: none could be loaded);
	// CertificateErr why not.
	Certificate    *x509.Certificate
	CertificateErr error
	// Grant is the authorities' answer to GET /v1/agent/admin-ingress
	// (nil: none yet), GrantAt when it came, GrantErr the last failure.
	Grant    *agentapi.AdminIngress
	GrantAt  time.Time
	GrantErr error
	// ManifestErr is set when the grant's page definitions do not decode.
	ManifestErr error
}

// Limits bound how old an observation may be.
type Limits struct {
	// HeartbeatMaxAge: an acknowledgement older than this is a lapsed
	// heartbeat.
	HeartbeatMaxAge time.Duration
	// GrantMaxAge: an authorities' answer older than this (they stopped
	// answering) no longer shows a healthy authority state.
	GrantMaxAge time.Duration
}

// Evaluate returns the unmet preconditions at now (none: the endpoint may
// serve). It is pure.
func Evaluate(now time.Time, o Observation, l Limits) []Unmet {
	var out []Unmet
	add := func(code, format string, args ...any) {
		out = append(out, Unmet{Code: code, Detail: fmt.Sprintf(format, args...)})
	}

	// Authority state and the role, from the authorities' last answer.
	var ae *apiclient.Error
	switch {
	case o.GrantErr != nil && errors.As(o.GrantErr, &ae) && ae.Code == "admin_ingress_refused":
		reason, _ := ae.Details["reason"].(string)
		switch reason {
		case agentapi.AdminIngressRefusedNoRole:
			add(ReasonRoleNotAssigned, "the authorities say: %s", ae.Message)
		case agentapi.AdminIngressRefusedStorage:
			add(ReasonStorageNode, "the authorities say: %s", ae.Message)
		default:
			add(ReasonRefused, "the authorities refuse (%s): %s", reason, ae.Message)
		}
	case o.GrantErr != nil:
		add(ReasonAuthorityUnreachable, "no authority answered the admin-ingress check: %s", short(o.GrantErr))
	case o.Grant == nil:
		add(ReasonStarting, "the authorities have not been asked yet")
	}
	g := o.Grant
	if o.GrantErr == nil && g != nil {
		if now.Sub(o.GrantAt) > l.GrantMaxAge {
			add(ReasonAuthorityUnreachable, "the authorities' last answer is %s old", now.Sub(o.GrantAt).Round(time.Second))
		}
		if !g.Healthy {
			add(ReasonAuthorityUnhealthy, "cluster authority state is %s", g.AuthorityState)
		}
		if len(g.MissingRoles) > 0 {
			add(ReasonRoleCoverage, "no active member holds %s", strings.Join(g.MissingRoles, ", "))
		}
		if o.ManifestErr != nil {
			add(ReasonManifestInvalid, "%s", short(o.ManifestErr))
		}
	}

	// The signed snapshot.
	switch {
	case o.SnapshotVersion == 0:
		add(ReasonSnapshotMissing, "no verified signed snapshot is applied")
	case !now.Before(o.SnapshotExpires):
		add(ReasonSnapshotExpired, "the applied snapshot v%d expired at %s", o.SnapshotVersion, o.SnapshotExpires.UTC().Format(time.RFC3339))
	case !slices.Contains(o.SnapshotRoles, string(domain.RoleAdminIngress)):
		add(ReasonSnapshotRole, "the applied snapshot v%d does not list the admin-ingress role", o.SnapshotVersion)
	}

	// TLS.
	switch c := o.Certificate; {
	case c == nil:
		add(ReasonTLSInvalid, "no TLS certificate: %s", short(o.CertificateErr))
	case now.Before(c.NotBefore):
		add(ReasonTLSInvalid, "the TLS certificate is valid only from %s", c.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(c.NotAfter):
		add(ReasonTLSInvalid, "the TLS certificate expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	}

	// Heartbeat.
	if o.LastHeartbeatAck.IsZero() {
		add(ReasonHeartbeatStale, "no heartbeat acknowledged yet")
	} else if age := now.Sub(o.LastHeartbeatAck); age > l.HeartbeatMaxAge {
		add(ReasonHeartbeatStale, "the last heartbeat acknowledgement is %s old (limit %s)", age.Round(100*time.Millisecond), l.HeartbeatMaxAge)
	}
	return out
}

func short(err error) string {
	if err == nil {
		return "unknown"
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
