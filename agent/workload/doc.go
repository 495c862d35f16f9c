// Package workload is the node agent's service supervisor (spec stage C5).
//
// A Supervisor receives, per cluster membership, the service assignments of
// the verified snapshot with the node's active roles (Apply). For each
// assignment it runs one instance through a Driver (native process or
// podman container), and only when
//
//   - the assignment carries a valid workload spec (workloadspec),
//   - an active role of the node in that cluster authorizes the service type
//     (and its organization scope allows the service's organization), and
//   - the artifact matches its pinned sha256 (native) or the image its digest
//     (container);
//
// otherwise the instance is reported "blocked" with the reason and nothing is
// started. Health checks (exec, HTTP, TCP) move a running instance between
// healthy and unhealthy; an exit or sustained unhealthiness restarts it with
// capped exponential backoff and jitter (Backoff), and repeated quick
// failures are reported as crash_loop with the last exit status and the last
// lines of output. An assignment that disappears (unassigned, role removed,
// membership revoked) stops its instance: SIGTERM, then SIGKILL after the
// stop timeout.
//
// Each instance keeps a record (pid and kernel start time, or container id)
// in its directory under the supervisor's root, so a restarted agent — also
// after kill -9 — re-adopts the workloads still running instead of starting
// duplicates. Workloads run in their own session and process group, so they
// outlive the agent; nothing in this package stops them when the agent has
// no authority (degraded).
//
// The clock and the jitter source are injected (Options) so the restart
// policy is testable; the drivers use real processes.
package workload
