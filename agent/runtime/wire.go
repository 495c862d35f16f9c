package runtime

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/rap-fabric/core/domain"
)

// API paths the agent uses.
const (
	pathJoin       = "/v1/agent/join"
	pathHeartbeat  = "/v1/agent/heartbeat"
	pathDesired    = "/v1/agent/desired"
	pathRenew      = "/v1/agent/certificate"
	pathCertStatus = "/v1/agent/certificate/status"
)

// serverNameForPin and serverNameForCluster are the TLS server names (SNI) an
// agent sends so the authority presents the right cluster's certificate
// (httpapi.ServerNameForPin / ServerNameForCluster; not imported, to keep the
// agent free of the authority side).
func serverNameForPin(pin string) string {
	return strings.TrimPrefix(pin, "sha256:")[:16] + ".pin.rap-fabric"
}

func serverNameForCluster(clusterID string) string { return clusterID + ".cluster.rap-fabric" }

type joinRequest struct {
	Token           string              `json:"token"`
	NodeName        string              `json:"node_name"`
	HostFingerprint string              `json:"host_fingerprint"`
	PublicKey       []byte              `json:"public_key"`
	NoisePublicKey  []byte              `json:"noise_public_key"`
	Facts           json.RawMessage     `json:"facts"`
	Capabilities    []domain.Capability `json:"capabilities"`
	RequestedRoles  []domain.Role       `json:"requested_roles"`
	PollSecret      []byte              `json:"poll_secret"`
}

type joinStatus struct {
	RequestID   string    `json:"request_id"`
	ClusterID   string    `json:"cluster_id"`
	Status      string    `json:"status"`
	ExpiresAt   time.Time `json:"expires_at"`
	NodeID      string    `json:"node_id"`
	Certificate []byte    `json:"certificate"`
	CACert      []byte    `json:"ca_certificate"`
	Reason      string    `json:"reason"`
}

type heartbeat struct {
	Seq            int64               `json:"seq"`
	SentAt         time.Time           `json:"sent_at"`
	AgentVersion   string              `json:"agent_version"`
	AppliedVersion int64               `json:"applied_version"`
	State          string              `json:"state"`
	Health         json.RawMessage     `json:"health,omitempty"`
	Services       json.RawMessage     `json:"services,omitempty"`
	Capabilities   []domain.Capability `json:"capabilities,omitempty"`
	Facts          json.RawMessage     `json:"facts,omitempty"`
}

type heartbeatAck struct {
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	Seq         int64     `json:"seq"`
	ReceivedAt  time.Time `json:"received_at"`
	AuthorityID string    `json:"authority_id"`
	NeedFacts   bool      `json:"need_facts"`
}

type desiredState struct {
	ClusterID        string `json:"cluster_id"`
	NodeID           string `json:"node_id"`
	MembershipStatus string `json:"membership_status"`
	Roles            []struct {
		ID     string      `json:"id"`
		Role   domain.Role `json:"role"`
		Status string      `json:"status"`
	} `json:"roles"`
}

type renewedCert struct {
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	Certificate []byte    `json:"certificate"`
}

type certStatus struct {
	Status string `json:"status"`
}
