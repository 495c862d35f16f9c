// Package updater is the node agent's self-update machinery (spec stage
// C19): A/B-style version slots on disk, staging of a verified artifact,
// and the launcher — a small watchdog process that starts the agent, switches
// it to a staged version, waits for the new agent to prove itself (it must
// heartbeat an authority within a deadline, seen through the agent's status
// socket) and otherwise restores the previous version, with no human action.
//
// Layout of the slot directory (one per host):
//
//	versions/<version>/rap-node-agent   verified binaries, immutable once renamed in
//	current                             the version the launcher starts (commit point of a promotion)
//	previous                            the version before it (rollback target)
//
// Every step is persisted before it is taken, so kill -9 or power loss at
// any step leaves a working agent on restart. The agent-owned steps
// (downloading → staged → switch_requested) and the launcher's trial steps
// (health_checking with an attempt count, rolled_back with the failure) are
// recorded in the agent's pending_update record (bbolt), written only while
// no agent process holds the state file; the promotion itself is the
// atomic rename of the current pointer.
//
// The agent's runtime (agent/runtime/update.go) calls Stage for the desired
// version in its signed snapshot; the launcher is cmd/rap-node-agent-launcher.
// See docs/releases.md.
package updater
