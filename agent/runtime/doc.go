// Package runtime is the node agent's runtime: enrollment into a cluster
// (Enroll), the per-membership loops of `rap-node-agent run` (Agent: mTLS
// heartbeats with failover between authorities, desired-role polling,
// certificate renewal, degraded and revoked modes) and the local status
// endpoint (a unix socket, mode 0600) that `rap-node-agent status` reads.
//
// Every membership is independent: its own identity, certificate, client and
// bbolt namespace (agent/state); a problem in one cluster never stops
// another. The agent keeps running what it runs when no authority answers
// (degraded) and recovers by itself; a revoked membership stops its loops and
// is not retried.
//
// It talks to authorities only through apiclient and imports nothing of the
// authority side (no database, no Raft, no httpapi), so the agent binary stays
// small. Wire types mirror authority.HeartbeatInput/HeartbeatAck and
// authority.JoinStatus; the integration tests keep them in step.
package runtime
