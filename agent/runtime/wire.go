package runtime

import (
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
)

// The agent-route contract shared with the authority lives in agentapi; the
// short local names keep this package readable.
const (
	pathJoin       = agentapi.PathJoin
	pathHeartbeat  = agentapi.PathHeartbeat
	pathDesired    = agentapi.PathDesired
	pathRenew      = agentapi.PathRenew
	pathCertStatus = agentapi.PathCertStatus
)

func serverNameForPin(pin string) string { return agentapi.ServerNameForPin(pin) }

func serverNameForCluster(clusterID string) string { return agentapi.ServerNameForCluster(clusterID) }

type (
	joinRequest  = agentapi.JoinRequest
	joinStatus   = agentapi.JoinStatus
	heartbeat    = agentapi.Heartbeat
	heartbeatAck = agentapi.HeartbeatAck
	renewedCert  = agentapi.RenewedCert
)

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

type certStatus struct {
	Status string `json:"status"`
}
