package runtime

import (
	"github.com/rap-fabric/core/agentapi"
)

// The agent-route contract shared with the authority lives in agentapi; the
// short local names keep this package readable.
const (
	pathJoin         = agentapi.PathJoin
	pathHeartbeat    = agentapi.PathHeartbeat
	pathDesired      = agentapi.PathDesired
	pathRenew        = agentapi.PathRenew
	pathCertStatus   = agentapi.PathCertStatus
	pathSnapshot     = agentapi.PathSnapshot
	pathCA           = agentapi.PathCA
	pathStorageSnaps = agentapi.PathStorageSnapshots
)

func serverNameForPin(pin string) string { return agentapi.ServerNameForPin(pin) }

func serverNameForCluster(clusterID string) string { return agentapi.ServerNameForCluster(clusterID) }

type (
	joinRequest  = agentapi.JoinRequest
	joinStatus   = agentapi.JoinStatus
	heartbeat    = agentapi.Heartbeat
	pingReport   = agentapi.PingReport
	heartbeatAck = agentapi.HeartbeatAck
	renewedCert  = agentapi.RenewedCert
	desiredState = agentapi.DesiredState
	certStatus   = agentapi.CertStatus
	// agentSnapshotWire is a signed snapshot as the authority (and a
	// config-storage node) serves it.
	agentSnapshotWire = agentapi.Snapshot
	trustedCAWire     = agentapi.TrustedCA
)
