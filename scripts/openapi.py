#!/usr/bin/env python3
"""Writes docs/openapi.json from the table below, then runs
internal/openapigen, which adds the request and response schemas derived from
the Go types (and writes the served copy httpapi/openapi.json). Keep the table
in step with httpapi routes: httpapi/openapi_test.go fails when they differ,
when a route has no typed response schema, or when the schemas are stale.

Each row: method, path, auth (owner|node|none), tag, summary, success status.
"""
import json, re, sys, os, subprocess

ROUTES = [
    ("GET", "/v1/authority/status", "none", "authority", "Raft and fence status of this authority", 200),
    ("GET", "/v1/health", "none", "authority", "Health of this authority: Raft view and a PostgreSQL probe (writable primary, server, fence re-affirmations). 200 on the leader, 429 on a healthy follower (200 with ?standbyok), 503 unavailable with details.health without a leader, quorum or writable PostgreSQL", 200),
    ("POST", "/v1/authority/members/certificate", "owner", "authority", "Issue a Raft member certificate for a joining authority's key", 200),
    ("POST", "/v1/authority/members", "owner", "authority", "Add an authority (holding a member certificate) as a voter (fenced)", 200),
    ("DELETE", "/v1/authority/members/{id}", "owner", "authority", "Remove an authority from the group (fenced)", 200),
    ("POST", "/v1/authority/join-tokens", "owner", "authority", "Create a single-use authority join token (body {ttl_seconds ≤ 3600, default 900; description}); the secret is returned once (fenced, step-up). rap-authority run --join presents it on the two member routes only", 201),
    ("GET", "/v1/authority/join-tokens", "owner", "authority", "List authority join tokens with their state (active, bound, joined, expired, revoked), never their secrets", 200),
    ("POST", "/v1/authority/join-tokens/{id}/revoke", "owner", "authority", "Revoke an authority join token (fenced)", 200),
    ("GET", "/metrics", "none", "authority", "Prometheus metrics", 200),
    ("POST", "/v1/clusters", "owner", "clusters", "Create a cluster and its own CA (fenced)", 201),
    ("GET", "/v1/clusters", "owner", "clusters", "List clusters", 200),
    ("GET", "/v1/clusters/{cluster}", "owner", "clusters", "Show a cluster (id or slug)", 200),
    ("POST", "/v1/clusters/{cluster}/disable", "owner", "clusters", "Disable a cluster (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/enable", "owner", "clusters", "Enable a cluster (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/revocations", "owner", "clusters", "The cluster's revocation list", 200),
    ("POST", "/v1/join-tokens", "owner", "enrollment", "Create a join token; the secret is returned once (fenced)", 201),
    ("GET", "/v1/join-tokens", "owner", "enrollment", "List join tokens (never their secrets)", 200),
    ("GET", "/v1/join-tokens/{id}", "owner", "enrollment", "Show a join token", 200),
    ("POST", "/v1/join-tokens/{id}/revoke", "owner", "enrollment", "Revoke a join token (fenced)", 200),
    ("GET", "/v1/join-requests", "owner", "enrollment", "List join requests (?cluster, ?status)", 200),
    ("GET", "/v1/join-requests/{id}", "owner", "enrollment", "Show a join request with facts and capability check", 200),
    ("POST", "/v1/join-requests/{id}/approve", "owner", "enrollment", "Approve: node, membership, identity, certificate (fenced, high risk)", 200),
    ("POST", "/v1/join-requests/{id}/reject", "owner", "enrollment", "Reject with a reason (fenced)", 200),
    ("GET", "/v1/nodes", "owner", "nodes", "List physical nodes, or a cluster's members with ?cluster", 200),
    ("GET", "/v1/nodes/{id}", "owner", "nodes", "Show a node: memberships, capabilities, identities", 200),
    ("POST", "/v1/clusters/{cluster}/nodes/{id}/revoke", "owner", "nodes", "Revoke a node identity in one cluster (fenced, high risk)", 200),
    ("POST", "/v1/clusters/{cluster}/nodes/{id}/disable", "owner", "nodes", "Disable a membership (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/nodes/{id}/enable", "owner", "nodes", "Re-enable a disabled membership (fenced)", 200),
    ("GET", "/v1/audit", "owner", "audit", "List audit events in chain order, or newest first with ?order=newest (?since RFC 3339, ?before_id, ?after_id, ?limit, ?offset)", 200),
    ("GET", "/v1/audit/checkpoint", "owner", "audit", "The latest audit chain checkpoint committed through Raft", 200),
    ("POST", "/v1/audit/checkpoint", "owner", "audit", "Verify the chain since the last checkpoint and commit a new one through Raft", 200),
    ("POST", "/v1/audit/reanchor", "owner", "audit", "After a PostgreSQL restore from a backup older than the latest audit checkpoint: verify the whole chain is intact but behind it, then commit through Raft a checkpoint at the chain head that supersedes it, recording the superseded checkpoint and the reason (body {reason}; fenced, step-up, audited as audit.reanchor)", 200),
    ("GET", "/v1/audit/export", "owner", "audit", "Chained audit events after ?after_seq in chain order, every column (export stream page)", 200),
    ("POST", "/v1/agent/join", "none", "agent", "Send a join request with a join token (TLS verified by CA pin)", 202),
    ("POST", "/v1/agent/join/{id}/poll", "none", "agent", "Poll a join request's outcome with the poll secret", 200),
    ("GET", "/v1/agent/whoami", "node", "agent", "The node identity of the presented certificate", 200),
    ("POST", "/v1/agent/certificate", "node", "agent", "Renew the node certificate, or rotate keys (fenced)", 200),
    ("POST", "/v1/organizations", "owner", "organizations", "Create an organization (fenced)", 201),
    ("GET", "/v1/organizations", "owner", "organizations", "List organizations", 200),
    ("POST", "/v1/clusters/{cluster}/nodes/{id}/roles", "owner", "roles", "Assign a role, optionally for one organization, with a policy (fenced, high risk)", 201),
    ("GET", "/v1/clusters/{cluster}/nodes/{id}/roles", "owner", "roles", "A node's role assignments in a cluster", 200),
    ("GET", "/v1/clusters/{cluster}/roles", "owner", "roles", "Role assignments in a cluster (?node)", 200),
    ("POST", "/v1/clusters/{cluster}/roles/{rid}/disable", "owner", "roles", "Disable a role assignment (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/roles/{rid}/enable", "owner", "roles", "Re-enable a role assignment (fenced)", 200),
    ("DELETE", "/v1/clusters/{cluster}/roles/{rid}", "owner", "roles", "Remove a role assignment (fenced)", 200),
    ("PUT", "/v1/clusters/{cluster}/nodes/{id}/services/{type}", "owner", "services", "Set a node's desired service workload (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/services", "owner", "services", "Desired and reported service workloads in a cluster", 200),
    ("POST", "/v1/clusters/{cluster}/services/{type}/enable", "owner", "services", "Enable a service type on every node that has it (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/services/{type}/disable", "owner", "services", "Disable a service type cluster-wide (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/groups", "owner", "groups", "Create a node group (fenced)", 201),
    ("GET", "/v1/clusters/{cluster}/groups", "owner", "groups", "List node groups", 200),
    ("PATCH", "/v1/clusters/{cluster}/groups/{gid}", "owner", "groups", "Rename a node group (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/groups/{gid}/move", "owner", "groups", "Move a node group under another (fenced; cycles refused)", 200),
    ("DELETE", "/v1/clusters/{cluster}/groups/{gid}", "owner", "groups", "Delete an empty node group (fenced)", 200),
    ("PUT", "/v1/clusters/{cluster}/nodes/{id}/group", "owner", "groups", "Place a node membership in a group (fenced)", 200),
    ("PUT", "/v1/telemetry-flags", "owner", "telemetry", "Set a test telemetry flag on a node, cluster or organization (fenced)", 200),
    ("GET", "/v1/telemetry-flags", "owner", "telemetry", "List test telemetry flags", 200),
    ("DELETE", "/v1/telemetry-flags/{fid}", "owner", "telemetry", "Delete a test telemetry flag (fenced)", 200),
    ("PUT", "/v1/clusters/{cluster}/policy", "owner", "policy", "Set the cluster's route, QoS and entry policy (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/policy", "owner", "policy", "Show the cluster policy", 200),
    ("GET", "/v1/clusters/{cluster}/snapshots", "owner", "snapshots", "Desired vs applied snapshot versions (?lagging=true)", 200),
    ("POST", "/v1/clusters/{cluster}/snapshots/rebuild", "owner", "snapshots", "Rebuild and sign the cluster's snapshots now (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/nodes/{id}/snapshot", "owner", "snapshots", "A node's current snapshot metadata", 200),
    ("GET", "/v1/agent/snapshot", "node", "agent", "Long-poll for a newer signed snapshot (?after_version, ?wait)", 200),
    ("GET", "/v1/agent/ca", "node", "agent", "The cluster's trusted CA keys for snapshot verification", 200),
    ("GET", "/v1/agent/storage/snapshots", "node", "agent", "Signed snapshots a config-storage node serves", 200),
    ("GET", "/v1/agent/admin-ingress", "node", "agent", "The Cluster Admin Endpoint's page definitions (ui_manifest), authority state, role coverage and snapshot version, for a node holding an active admin-ingress role; 403 admin_ingress_refused with details.reason (role_not_assigned, storage_node, membership_inactive, cluster_disabled) otherwise", 200),
    ("POST","/v1/auth/login","none","auth","Password + TOTP login (cookie, or token with \"token\":true)",200),
    ("POST","/v1/auth/setup/begin","none","auth","Setup secret → TOTP enrollment (otpauth URI, QR)",200),
    ("POST","/v1/auth/setup/complete","none","auth","Finish setup: password + TOTP → recovery codes + session",200),
    ("POST","/v1/auth/logout","owner","auth","End the session",200),
    ("GET","/v1/auth/me","owner","auth","Session account, limits, CSRF token",200),
    ("POST","/v1/auth/step-up","owner","auth","Fresh TOTP → single-use grant for one high-risk request",200),
    ("POST","/v1/auth/recovery-codes","owner","auth","Regenerate recovery codes (TOTP)",200),
    ("GET","/v1/auth/devices","owner","auth","List trusted devices",200),
    ("POST","/v1/auth/devices","owner","auth","Trust this browser (recent MFA)",201),
    ("POST","/v1/auth/devices/{id}/revoke","owner","auth","Revoke a trusted device",200),
    ("GET","/v1/admin/users","owner","admin","List platform accounts",200),
    ("POST","/v1/admin/users","owner","admin","Create an account (owners, step-up) → setup secret",201),
    ("POST","/v1/admin/users/{id}/disable","owner","admin","Disable an account (owners, step-up)",200),
    ("POST","/v1/admin/users/{id}/enable","owner","admin","Re-enable an account (owners, step-up)",200),
    ("POST", "/v1/agent/heartbeat", "node", "agent", "Heartbeat: health, applied version, capabilities, services, update state per product (batched ingest)", 200),
    ("POST", "/v1/agent/heartbeat/stream", "node", "agent", "Heartbeat stream: one long-lived request whose body (application/x-ndjson) carries heartbeats, one per line, each answered by one agentapi.HeartbeatStreamReply line (ack or typed error); 404 from an older authority: use POST /v1/agent/heartbeat", 200),
    ("GET", "/v1/agent/desired", "node", "agent", "The node's active role assignments in its cluster", 200),
    ("POST", "/v1/agent/certificate/status", "none", "agent", "Is this certificate revoked or expired? (asked after a refused handshake)", 200),
    ("GET", "/v1/nodes/{id}/heartbeat", "owner", "nodes", "Latest heartbeat state per cluster", 200),
    ("GET", "/v1/nodes/{id}/heartbeats", "owner", "nodes", "Heartbeat history (?cluster, paginated)", 200),
    ("POST", "/v1/agent/links", "node", "agent", "Report mesh link and route health (stored in mesh_links and mesh_routes)", 200),
    ("GET", "/v1/clusters/{cluster}/links", "owner", "mesh", "Mesh link inventory as the agents report it (?node)", 200),
    ("GET", "/v1/clusters/{cluster}/pings", "owner", "mesh", "Each member's last mesh ping (destination, path of node ids incl. relays, RTT, time) from its latest heartbeat, newest first (?node)", 200),
    ("GET", "/v1/authority/epochs", "owner", "authority", "Leadership epochs recorded by the fence in PostgreSQL: epoch, leader, start, end and duration, newest first", 200),
    ("GET", "/v1/clusters/{cluster}/routes", "owner", "mesh", "Reported route health per destination (?node)", 200),
    ("POST", "/v1/clusters/{cluster}/route-intents", "owner", "mesh", "Create a route intent: source/destination selector, allow|deny|prefer-relay, priority (fenced)", 201),
    ("GET", "/v1/clusters/{cluster}/route-intents", "owner", "mesh", "List the cluster's route intents in priority order", 200),
    ("DELETE", "/v1/clusters/{cluster}/route-intents/{iid}", "owner", "mesh", "Delete a route intent (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/qos-policies", "owner", "mesh", "Create a QoS policy: traffic class, priority, bandwidth cap, latency target (fenced)", 201),
    ("GET", "/v1/clusters/{cluster}/qos-policies", "owner", "mesh", "List the cluster's QoS policies in priority order", 200),
    ("DELETE", "/v1/clusters/{cluster}/qos-policies/{qid}", "owner", "mesh", "Delete a QoS policy (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/partition", "owner", "clusters", "The cluster's partition state (agreed through Raft, recorded in PostgreSQL) and recent owner actions", 200),
    ("POST", "/v1/clusters/{cluster}/partition/split", "owner", "clusters", "Declare the cluster split, normal to degraded: join approvals and new join tokens refused (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/partition/promote", "owner", "clusters", "Promote the reachable side, degraded to promoted: admissions resume (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/partition/merge", "owner", "clusters", "Merge, degraded or promoted to normal (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/partition/fence", "owner", "clusters", "Fence (freeze) the cluster: every change refused except revocations and renewals (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/partition/recover", "owner", "clusters", "Recover a fenced cluster to normal (fenced, step-up; body {reason})", 200),
    ("GET", "/v1/clusters/{cluster}/ca", "owner", "clusters", "The cluster CA roots (current, rotated during an overlap, retired), which one publishes, and how many active nodes hold a certificate of each", 200),
    ("POST", "/v1/clusters/{cluster}/ca/rotate", "owner", "clusters", "Create a new cluster CA root; both roots trusted until the old one is retired (platform owner, fenced, step-up)", 200),
    ("POST", "/v1/clusters/{cluster}/ca/retire", "owner", "clusters", "Retire the old CA root once every node renewed from the new one (body {force}; refused with ca_retire_unsafe otherwise; platform owner, fenced, step-up)", 200),
    ("POST", "/v1/clusters/{cluster}/vpn-connections", "owner", "vpn", "Create a VPN connection: address family, client/remote prefixes, DNS, MTU, credential_ref, lease TTL (fenced)", 201),
    ("GET", "/v1/clusters/{cluster}/vpn-connections", "owner", "vpn", "List VPN connections with lease holder, epoch and health", 200),
    ("GET", "/v1/clusters/{cluster}/vpn-connections/{vid}", "owner", "vpn", "Show a VPN connection: allowed nodes, route policies, lease history, agent statuses", 200),
    ("PATCH", "/v1/clusters/{cluster}/vpn-connections/{vid}", "owner", "vpn", "Change a VPN connection's network settings, credential_ref or lease TTL (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/vpn-connections/{vid}/enable", "owner", "vpn", "Set desired state enabled (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/vpn-connections/{vid}/disable", "owner", "vpn", "Set desired state disabled; revokes the active lease (fenced)", 200),
    ("PUT", "/v1/clusters/{cluster}/vpn-connections/{vid}/allowed-nodes", "owner", "vpn", "Replace the allowed-node list {node_ids}; normalized, same cluster only (fenced)", 200),
    ("POST", "/v1/clusters/{cluster}/vpn-connections/{vid}/route-policies", "owner", "vpn", "Add a route policy {name, prefixes, priority, allow_default_route, allow_overlap, masquerade} (fenced)", 201),
    ("GET", "/v1/clusters/{cluster}/vpn-connections/{vid}/route-policies", "owner", "vpn", "List a VPN connection's route policies", 200),
    ("DELETE", "/v1/clusters/{cluster}/vpn-connections/{vid}/route-policies/{pid}", "owner", "vpn", "Delete a route policy (fenced)", 200),
    ("GET", "/v1/clusters/{cluster}/vpn-connections/{vid}/lease", "owner", "vpn", "The active lease and the lease history", 200),
    ("POST", "/v1/clusters/{cluster}/vpn-connections/{vid}/lease/fence", "owner", "vpn", "Fence the active lease (platform owner, recovery action, step-up; body {reason}; idempotent)", 200),
    ("GET", "/v1/agent/vpn/assignments", "node", "agent", "VPN assignments this node may see (eligible candidate or holder); never credential_ref", 200),
    ("POST", "/v1/agent/vpn/connections/{vid}/lease", "node", "agent", "Acquire the connection's lease (fenced; idempotent for the holder)", 200),
    ("POST", "/v1/agent/vpn/connections/{vid}/lease/renew", "node", "agent", "Renew the lease {generation}; lease_lost means stop (fenced)", 200),
    ("POST", "/v1/agent/vpn/connections/{vid}/lease/release", "node", "agent", "Release the lease {generation} (fenced; idempotent)", 200),
    ("POST", "/v1/agent/vpn/connections/{vid}/status", "node", "agent", "Report the observed assignment status: not_started, assigned, lease_required, blocked or unknown; optional tunnel {role, running, interface, exit_node_id, tx/rx packets and bytes, drops by reason}", 200),
    # Version storage and rollouts (releases.go, rollouts.go).
    ("GET", "/v1/admin/users", "owner", "admin", "List platform accounts", 200),
    ("POST", "/v1/admin/users", "owner", "admin", "Create an account (owners, step-up) \u2192 setup secret", 201),
    ("POST", "/v1/admin/users/{id}/disable", "owner", "admin", "Disable an account (owners, step-up)", 200),
    ("POST", "/v1/admin/users/{id}/enable", "owner", "admin", "Re-enable an account (owners, step-up)", 200),
    ("GET", "/v1/agent/releases/artifacts/{sha256}", "node", "agent", "Stream an approved artifact's bytes (?offset= to resume); only complete artifacts of published, not blocklisted releases", 200),
    ("GET", "/v1/agent/releases/{product}/{version}", "node", "agent", "A published, available release's signed manifest and the newest signed key set, for the agent to verify", 200),
    ("POST", "/v1/agent/updates", "node", "agent", "Report the agent's update state for a product (body {product, current_version, from_version, target_version, state, last_failure})", 200),
    ("GET", "/v1/auth/devices", "owner", "auth", "List trusted devices", 200),
    ("POST", "/v1/auth/devices", "owner", "auth", "Trust this browser (recent MFA)", 201),
    ("POST", "/v1/auth/devices/{id}/revoke", "owner", "auth", "Revoke a trusted device", 200),
    ("POST", "/v1/auth/login", "none", "auth", "Password + TOTP login (cookie, or token with \"token\":true)", 200),
    ("POST", "/v1/auth/logout", "owner", "auth", "End the session", 200),
    ("GET", "/v1/auth/me", "owner", "auth", "Session account, limits, CSRF token", 200),
    ("POST", "/v1/auth/recovery-codes", "owner", "auth", "Regenerate recovery codes (TOTP)", 200),
    ("POST", "/v1/auth/setup/begin", "none", "auth", "Setup secret \u2192 TOTP enrollment (otpauth URI, QR)", 200),
    ("POST", "/v1/auth/setup/complete", "none", "auth", "Finish setup: password + TOTP \u2192 recovery codes + session", 200),
    ("POST", "/v1/auth/step-up", "owner", "auth", "Fresh TOTP \u2192 single-use grant for one high-risk request", 200),
    ("GET", "/v1/clusters/{cluster}/nodes/{id}/updates", "owner", "nodes", "A node's newest update report per product (state, current/target version, last failure)", 200),
    ("GET", "/v1/clusters/{cluster}/rollouts", "owner", "rollouts", "A cluster's rollouts, newest first (?limit, ?offset)", 200),
    ("POST", "/v1/clusters/{cluster}/rollouts", "owner", "rollouts", "Start a rollout of product@version: canary, then waves with soak, automatic halt at the failure threshold (fenced, step-up; body {product, version, canary_count, canary_percent, wave_percent, soak_seconds, failure_threshold, update_deadline_seconds, reason}); refused when the release needs a control-plane schema that is not applied", 201),
    ("POST", "/v1/clusters/{cluster}/rollouts/pin", "owner", "rollouts", "Emergency pin: every node of the cluster runs product@version now, downgrade allowed (fenced, step-up; body {product, version, reason})", 200),
    ("GET", "/v1/clusters/{cluster}/rollouts/{rid}", "owner", "rollouts", "A rollout with its waves, each node's update state and the planner's next decision", 200),
    ("POST", "/v1/clusters/{cluster}/rollouts/{rid}/pause", "owner", "rollouts", "Pause a running rollout: nodes already in a wave keep their target, no new wave (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/rollouts/{rid}/resume", "owner", "rollouts", "Resume a paused or halted rollout (the current wave gets a fresh deadline); resuming a pin ends it (fenced, step-up; body {reason})", 200),
    ("POST", "/v1/clusters/{cluster}/rollouts/{rid}/rollback", "owner", "rollouts", "Roll every node back to the last-known-good (stable) release, downgrade allowed (fenced, step-up; body {reason})", 200),
    ("GET", "/v1/releases", "owner", "releases", "Releases, newest first (?product, ?limit, ?offset)", 200),
    ("POST", "/v1/releases", "owner", "releases", "Publish a signed release manifest (verified against the newest key set; fenced); upload its artifacts next", 201),
    ("GET", "/v1/releases/artifacts/{sha256}", "owner", "releases", "An artifact's upload state (size, received, complete)", 200),
    ("PUT", "/v1/releases/artifacts/{sha256}/chunks/{offset}", "owner", "releases", "Upload one artifact chunk (body {data: base64}, at most 512 KiB; offset must equal the bytes received: resumable; fenced). The last chunk triggers verification against the signed size and sha256", 200),
    ("GET", "/v1/releases/key-sets", "owner", "releases", "Published release-signing key sets, newest first (?limit, ?offset)", 200),
    ("POST", "/v1/releases/key-sets", "owner", "releases", "Publish a root-signed key set (signed envelope; verified against the roots' threshold; fenced, step-up)", 201),
    ("GET", "/v1/releases/roots", "owner", "releases", "Registered release root public keys and threshold (replicated through Raft)", 200),
    ("PUT", "/v1/releases/roots", "owner", "releases", "Register or replace the release root keys (fenced, Raft, step-up; body {prev_version, threshold, keys[base64], reason}); dropping a key revokes it", 200),
    # Load balancer health (health.go).
    ("GET", "/livez", "none", "authority", "Liveness: 200 while the process serves HTTP", 200),
    ("GET", "/readyz", "none", "authority", "Readiness: 200 while PostgreSQL answers (reads and snapshots served), else 503", 200),
    ("GET", "/v1/openapi.json", "none", "authority", "This OpenAPI document", 200),
    ("GET", "/v1/releases/{release}", "owner", "releases", "One release (id or product@version) with its decoded manifest and per-artifact upload progress", 200),
    ("POST", "/v1/releases/{release}/blocklist", "owner", "releases", "Blocklist a release everywhere: agents refuse it, its bytes are no longer served, open rollouts targeting it halt (fenced, step-up; body {reason})", 200),
    ("GET", "/v1/clusters/{cluster}/release-channels", "owner", "rollouts", "Release channel assignments of a cluster: which channel (stable, current, candidate) the cluster, a group or a node follows per product", 200),
    ("PUT", "/v1/clusters/{cluster}/release-channels", "owner", "rollouts", "Make the cluster, a group or a node follow a release channel for a product (fenced, step-up; body {scope_kind, scope_id, product, channel, reason}); where no open rollout decides, the channel head becomes the desired version in the node's snapshot (node > group > parent groups > cluster)", 200),
    ("DELETE", "/v1/clusters/{cluster}/release-channels", "owner", "rollouts", "Remove a channel assignment (fenced, step-up; body {scope_kind, scope_id, product, reason})", 200),
]

# Organization API (httpapi/orgs.go): organization sessions only; projection
# types that never carry nodes, clusters or addresses.
ORG_ROUTES = [
    ("GET", "/v1/orgs/{org}", "organization", "Overview: the organization, the session's account, endpoints with health, counts of own objects", 200),
    ("GET", "/v1/orgs/{org}/me", "organization", "The session's account, session limits, CSRF token", 200),
    ("POST", "/v1/orgs/{org}/logout", "organization", "End the session", 204),
    ("POST", "/v1/orgs/{org}/step-up", "organization", "Fresh TOTP \u2192 single-use grant for one high-risk organization request {method, path, totp_code}", 200),
    ("GET", "/v1/orgs/{org}/users", "organization", "The organization's accounts", 200),
    ("POST", "/v1/orgs/{org}/users", "organization", "Invite an account {name, role} (admins, step-up; fenced) \u2192 one-time setup secret; login name is name@org", 201),
    ("GET", "/v1/orgs/{org}/users/{uid}", "organization", "One account", 200),
    ("POST", "/v1/orgs/{org}/users/{uid}/disable", "organization", "Disable an account; ends its sessions (admins, step-up; fenced)", 200),
    ("POST", "/v1/orgs/{org}/users/{uid}/enable", "organization", "Re-enable an account (admins, step-up; fenced)", 200),
    ("GET", "/v1/orgs/{org}/sessions", "organization", "Live sessions (admins: all accounts; members: their own)", 200),
    ("POST", "/v1/orgs/{org}/sessions/{sid}/revoke", "organization", "End a session; effective on its next request (step-up)", 204),
    ("GET", "/v1/orgs/{org}/endpoints", "organization", "Published endpoints: name, kind, protocol, region, health (ok|degraded|down); never nodes", 200),
    ("GET", "/v1/orgs/{org}/endpoints/{eid}", "organization", "One endpoint (id or name)", 200),
    ("GET", "/v1/orgs/{org}/resources", "organization", "The organization's resources", 200),
    ("POST", "/v1/orgs/{org}/resources", "organization", "Create a resource {name, protocol, address, port, endpoint} (admins, step-up; fenced)", 201),
    ("GET", "/v1/orgs/{org}/resources/{rid}", "organization", "One resource", 200),
    ("DELETE", "/v1/orgs/{org}/resources/{rid}", "organization", "Delete a resource no policy uses (admins, step-up; fenced)", 204),
    ("GET", "/v1/orgs/{org}/policies", "organization", "The organization's access policies", 200),
    ("POST", "/v1/orgs/{org}/policies", "organization", "Create a policy {name, subjects, resources, endpoints, window, require_mfa} (admins, step-up; fenced)", 201),
    ("GET", "/v1/orgs/{org}/policies/{pid}", "organization", "One policy", 200),
    ("DELETE", "/v1/orgs/{org}/policies/{pid}", "organization", "Delete a policy (admins, step-up; fenced)", 204),
    ("POST", "/v1/orgs/{org}/access-sessions", "organization", "Request access {resource, endpoint, duration} to one of the organization's resources through one of its endpoints; decided by its policies (subjects, time window, MFA), recorded and audited; denied \u2192 403 with details.reason", 201),
    ("GET", "/v1/orgs/{org}/access-sessions", "organization", "Access sessions, newest first (admins: all; members: their own); status active|revoked|expired", 200),
    ("GET", "/v1/orgs/{org}/access-sessions/{aid}", "organization", "One access session", 200),
    ("POST", "/v1/orgs/{org}/access-sessions/{aid}/revoke", "organization", "End an access session at once (admins: any; members: their own; step-up; fenced)", 200),
    ("GET", "/v1/orgs/{org}/audit", "organization", "The organization's own audit events, newest first", 200),
    ("POST", "/v1/orgs/{org}/recovery-codes", "organization", "Regenerate the session account's recovery codes {totp_code}", 200),
    ("GET", "/v1/orgs/{org}/devices", "organization", "The session account's trusted devices", 200),
    ("POST", "/v1/orgs/{org}/devices", "organization", "Trust this browser {label} (second factor must be recent)", 201),
    ("POST", "/v1/orgs/{org}/devices/{did}/revoke", "organization", "End trust in one of the account's devices", 200),
    ("GET", "/v1/orgs/{org}/audit/verify", "organization", "Whether the hash chain holding the organization's events is intact; the organization's event at the first break", 200),
]
ROUTES += [
    ("POST", "/v1/clusters/{cluster}/nodes/{id}/disable-seed", "owner", "nodes", "Disable a seed node's membership although the cluster does not stand on its own yet (step-up; body {reason}; the unmet conditions are audited)", 200),
    ("GET", "/v1/cluster-comparison", "owner", "clusters", "Every cluster side by side: members by status, heartbeat health, active roles, agent versions, capacity (CPUs, memory) and load from heartbeats (load average, memory used, mesh links up), partition state, snapshot lag; the fence epoch held", 200),
    ("POST", "/v1/organizations/{org}/admins", "owner", "organizations", "Invite an organization admin {name, role} (step-up; fenced) \u2192 one-time setup secret", 201),
    ("GET", "/v1/organizations/{org}/endpoints", "owner", "organizations", "An organization's endpoints with their backing nodes (platform view)", 200),
    ("POST", "/v1/organizations/{org}/endpoints", "owner", "organizations", "Publish an endpoint {name, kind, protocol, region, nodes[{cluster_id, node_id}]} to an organization (step-up; fenced)", 201),
    ("DELETE", "/v1/organizations/{org}/endpoints/{eid}", "owner", "organizations", "Withdraw an endpoint no resource uses (step-up; fenced)", 204),
]

def main():
    paths = {}
    for method, path, auth, tag, summary, status in ROUTES:
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in re.findall(r"{(\w+)}", path)]
        op = {
            "summary": summary,
            "tags": [tag],
            "parameters": params,
            "responses": {
                str(status): {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        if method in ("POST", "DELETE") and auth != "none":
            op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 128}})
        op["security"] = {"owner": [{"ownerToken": []}], "node": [{"nodeCertificate": []}], "none": []}[auth]
        paths.setdefault(path, {})[method.lower()] = op
    for method, path, tag, summary, status in ORG_ROUTES:
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in re.findall(r"{(\w+)}", path)]
        paths.setdefault(path, {})[method.lower()] = {
            "summary": summary, "tags": [tag], "parameters": params, "security": [{"orgSession": []}],
            "responses": {
                str(status): {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "RAP Fabric Core authority API", "version": "v1",
                 "description": "Owner, agent and status routes of rap-authority. Errors: {error: {code, message, details}}. "
                                "A follower answers fenced writes with 421 not_leader and details.leader_api_addr. "
                                "Every route: a path or query that is not valid UTF-8 or holds a NUL answers 400 invalid_argument; "
                                "a write whose body is not declared Content-Type application/json answers 415 unsupported_media_type; "
                                "an Idempotency-Key reused for a different request (method, path, query or body) answers 422 idempotency_key_reused; "
                                "a handler failure answers 500 internal with details.request_id; PostgreSQL unreachable answers 503 unavailable."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ownerToken": {"type": "http", "scheme": "bearer", "description": "owner API token (rapot.…) or session"},
                "nodeCertificate": {"type": "mutualTLS", "description": "node certificate issued by the cluster CA"},
                "orgSession": {"type": "http", "scheme": "bearer", "description": "organization account session (cookie or bearer); never a platform credential"},
            },
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}}},
        },
    }
    out = os.path.join(os.path.dirname(__file__), "..", "docs", "openapi.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    # The served copy (GET /v1/openapi.json embeds it); openapi_test.go checks
    # that the two are identical.
    with open(out) as src, open(os.path.join(os.path.dirname(__file__), "..", "httpapi", "openapi.json"), "w") as dst:
        dst.write(src.read())
    # Request and response schemas come from the Go types the handlers decode
    # and answer (internal/openapigen); it rewrites both copies.
    subprocess.run(["go", "run", "./internal/openapigen/cmd/openapigen"], cwd=os.path.join(os.path.dirname(__file__), ".."), check=True)

if __name__ == "__main__":
    main()
