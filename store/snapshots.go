package store

import (
	"context"
	"encoding/json"
	"time"
)

// KeepSnapshots is how many signed snapshots are kept per node.
const KeepSnapshots = 3

// SnapshotHead is the newest snapshot of a node: its version counter, the
// digest of its scope and body, and the key that signed it.
type SnapshotHead struct {
	NodeID    string
	Version   uint64
	Digest    []byte
	KeyID     string
	ExpiresAt time.Time
}

// SnapshotHeads returns the heads of a cluster's nodes by node id.
func SnapshotHeads(ctx context.Context, q Querier, clusterID string) (map[string]SnapshotHead, error) {
	rows, err := q.Query(ctx, `SELECT node_id::text, version, digest, key_id, expires_at FROM node_snapshot_heads WHERE cluster_id = rap_uuid($1)`, clusterID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := map[string]SnapshotHead{}
	for rows.Next() {
		var h SnapshotHead
		var v int64
		if err := rows.Scan(&h.NodeID, &v, &h.Digest, &h.KeyID, &h.ExpiresAt); err != nil {
			return nil, mapErr(err)
		}
		h.Version = uint64(v)
		out[h.NodeID] = h
	}
	return out, mapErr(rows.Err())
}

// StoredSnapshot is one signed snapshot as stored: Signed is the wire
// envelope (snapshot.Signed.MarshalBinary).
type StoredSnapshot struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Version   uint64    `json:"version"`
	Epoch     uint64    `json:"epoch"`
	KeyID     string    `json:"key_id"`
	Scope     string    `json:"scope"`
	Digest    []byte    `json:"-"`
	Signed    []byte    `json:"-"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

const snapCols = `cluster_id::text, node_id::text, version, epoch, key_id, scope, digest, signed, issued_at, expires_at`

func scanSnap(row scanner) (StoredSnapshot, error) {
	var s StoredSnapshot
	var v, e int64
	err := row.Scan(&s.ClusterID, &s.NodeID, &v, &e, &s.KeyID, &s.Scope, &s.Digest, &s.Signed, &s.IssuedAt, &s.ExpiresAt)
	s.Version, s.Epoch = uint64(v), uint64(e)
	return s, mapErr(err)
}

// SaveSnapshots stores signed snapshots of one cluster, in statements of up
// to 1,000 snapshots within the caller's transaction: it
// advances each node's head (the database refuses a version that does not
// increase), inserts the snapshots and prunes each node to the newest
// KeepSnapshots (fenced).
func SaveSnapshots(ctx context.Context, q Querier, clusterID string, snaps []StoredSnapshot) error {
	// In parts of saveSnapshotsPart rows: each statement's parameters are
	// encoded in memory whole (twice: the values, then the message), and a
	// cluster-wide rebuild of 10,000 nodes carries ~50 MB of envelopes.
	for len(snaps) > 0 {
		part := snaps[:min(len(snaps), saveSnapshotsPart)]
		snaps = snaps[len(part):]
		if err := saveSnapshots(ctx, q, clusterID, part); err != nil {
			return err
		}
	}
	return nil
}

// saveSnapshotsPart is how many snapshots one statement of SaveSnapshots
// stores.
const saveSnapshotsPart = 1000

func saveSnapshots(ctx context.Context, q Querier, clusterID string, snaps []StoredSnapshot) error {
	n := len(snaps)
	nodes, scopes, keys := make([]string, n), make([]string, n), make([]string, n)
	versions, epochs := make([]int64, n), make([]int64, n)
	digests, signed := make([][]byte, n), make([][]byte, n)
	issued, expires := make([]time.Time, n), make([]time.Time, n)
	for i, s := range snaps {
		nodes[i], scopes[i], keys[i] = s.NodeID, s.Scope, s.KeyID
		versions[i], epochs[i] = int64(s.Version), int64(s.Epoch)
		digests[i], signed[i] = s.Digest, s.Signed
		issued[i], expires[i] = s.IssuedAt, s.ExpiresAt
	}
	if _, err := q.Exec(ctx, `INSERT INTO node_snapshot_heads (cluster_id, node_id, version, digest, key_id, expires_at)
		SELECT $1, t.n, t.v, t.d, t.k, t.x FROM unnest($2::uuid[], $3::bigint[], $4::bytea[], $5::text[], $6::timestamptz[]) AS t(n, v, d, k, x)
		ON CONFLICT (cluster_id, node_id) DO UPDATE SET version = EXCLUDED.version, digest = EXCLUDED.digest, key_id = EXCLUDED.key_id,
		    expires_at = EXCLUDED.expires_at, updated_at = now()`, clusterID, nodes, versions, digests, keys, expires); err != nil {
		return mapErr(err)
	}
	if _, err := q.Exec(ctx, `INSERT INTO node_config_snapshots (cluster_id, node_id, version, epoch, key_id, scope, digest, signed, issued_at, expires_at)
		SELECT $1, t.n, t.v, t.e, t.k, t.s, t.d, t.b, t.i, t.x
		  FROM unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::timestamptz[], $10::timestamptz[])
		    AS t(n, v, e, k, s, d, b, i, x)`,
		clusterID, nodes, versions, epochs, keys, scopes, digests, signed, issued, expires); err != nil {
		return mapErr(err)
	}
	_, err := q.Exec(ctx, `DELETE FROM node_config_snapshots s USING (
		    SELECT node_id, version, row_number() OVER (PARTITION BY node_id ORDER BY version DESC) AS rn
		      FROM node_config_snapshots WHERE cluster_id = $1 AND node_id = ANY($2::uuid[])) old
		 WHERE s.cluster_id = $1 AND s.node_id = old.node_id AND s.version = old.version AND old.rn > $3`, clusterID, nodes, KeepSnapshots)
	return mapErr(err)
}

// LatestSnapshot returns a node's newest signed snapshot (ErrNotFound when it
// has none).
//
// Every long poll reads it (the fleet's hottest query): it goes through the
// primary key (cluster_id, node_id, version), never a scan.
func LatestSnapshot(ctx context.Context, q Querier, clusterID, nodeID string) (StoredSnapshot, error) {
	if !IsCanonicalUUID(clusterID) || !IsCanonicalUUID(nodeID) {
		return StoredSnapshot{}, ErrNotFound
	}
	return scanSnap(q.QueryRow(ctx, latestSnapshotSQL, clusterID, nodeID))
}

const latestSnapshotSQL = `SELECT ` + snapCols + ` FROM node_config_snapshots WHERE cluster_id = $1::uuid AND node_id = $2::uuid
		ORDER BY version DESC LIMIT 1`

// LatestSnapshots returns the newest signed snapshot of each of nodeIDs that
// has one.
func LatestSnapshots(ctx context.Context, q Querier, clusterID string, nodeIDs []string) ([]StoredSnapshot, error) {
	ids := make([]string, 0, len(nodeIDs))
	for _, id := range nodeIDs {
		if IsCanonicalUUID(id) {
			ids = append(ids, id)
		}
	}
	if !IsCanonicalUUID(clusterID) || len(ids) == 0 {
		return []StoredSnapshot{}, nil
	}
	return collect(ctx, q, scanSnap, latestSnapshotsSQL, clusterID, ids)
}

const latestSnapshotsSQL = `SELECT DISTINCT ON (node_id) ` + snapCols + ` FROM node_config_snapshots
		WHERE cluster_id = $1::uuid AND node_id = ANY($2::uuid[]) ORDER BY node_id, version DESC`

// ListSnapshotVersions lists the versions kept for a node, newest first.
func ListSnapshotVersions(ctx context.Context, q Querier, clusterID, nodeID string) ([]StoredSnapshot, error) {
	return collect(ctx, q, scanSnap, `SELECT `+snapCols+` FROM node_config_snapshots WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2)
		ORDER BY version DESC`, clusterID, nodeID)
}

// SnapshotStatus is a node's desired (newest issued) versus applied (last
// reported in a heartbeat) snapshot version.
type SnapshotStatus struct {
	NodeID           string     `json:"node_id"`
	NodeName         string     `json:"node_name"`
	MembershipStatus string     `json:"membership_status"`
	DesiredVersion   uint64     `json:"desired_version"`
	AppliedVersion   uint64     `json:"applied_version"`
	Lagging          bool       `json:"lagging"`
	IssuedAt         *time.Time `json:"issued_at,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	LastHeartbeatAt  *time.Time `json:"last_heartbeat_at,omitempty"`
}

// ListSnapshotStatus lists desired versus applied versions of a cluster's
// members (nodeID "" for all, laggingOnly for those whose applied version is
// behind).
func ListSnapshotStatus(ctx context.Context, q Querier, clusterID, nodeID string, laggingOnly bool, p Page) ([]SnapshotStatus, error) {
	l, o := p.norm()
	return collect(ctx, q, func(r scanner) (SnapshotStatus, error) {
		var s SnapshotStatus
		var d, a int64
		err := r.Scan(&s.NodeID, &s.NodeName, &s.MembershipStatus, &d, &a, &s.IssuedAt, &s.ExpiresAt, &s.LastHeartbeatAt)
		s.DesiredVersion, s.AppliedVersion = uint64(d), uint64(a)
		s.Lagging = s.AppliedVersion < s.DesiredVersion
		return s, mapErr(err)
	}, `SELECT m.node_id::text, n.name, m.membership_status, coalesce(h.version, 0), coalesce(hb.applied_version, 0),
	           cs.issued_at, h.expires_at, hb.received_at
	      FROM cluster_memberships m
	      JOIN nodes n ON n.id = m.node_id
	      LEFT JOIN node_snapshot_heads h ON h.cluster_id = m.cluster_id AND h.node_id = m.node_id
	      LEFT JOIN node_config_snapshots cs ON cs.cluster_id = h.cluster_id AND cs.node_id = h.node_id AND cs.version = h.version
	      LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
	     WHERE m.cluster_id = rap_uuid($1) AND ($2 = '' OR m.node_id = rap_uuid($2))
	       AND (NOT $3 OR coalesce(hb.applied_version, 0) < coalesce(h.version, 0))
	     ORDER BY n.name, m.node_id LIMIT $4 OFFSET $5`, clusterID, nodeID, laggingOnly, l, o)
}

// DirtyCluster is a cluster whose snapshots may need rebuilding, with the
// generation of its mark (cleared only if unchanged).
type DirtyCluster struct {
	ClusterID  string
	Generation int64
	Reason     string
}

// DirtyClusters lists the marked clusters.
func DirtyClusters(ctx context.Context, q Querier) ([]DirtyCluster, error) {
	return collect(ctx, q, func(r scanner) (DirtyCluster, error) {
		var d DirtyCluster
		err := r.Scan(&d.ClusterID, &d.Generation, &d.Reason)
		return d, mapErr(err)
	}, `SELECT cluster_id::text, generation, reason FROM snapshot_dirty_clusters ORDER BY marked_at`)
}

// ClearDirty removes a cluster's mark if no change marked it again since
// generation was read.
func ClearDirty(ctx context.Context, q Querier, d DirtyCluster) error {
	_, err := q.Exec(ctx, `DELETE FROM snapshot_dirty_clusters WHERE cluster_id = rap_uuid($1) AND generation = $2`, d.ClusterID, d.Generation)
	return mapErr(err)
}

// ClusterPolicy holds a cluster's route, QoS and client entry policies.
type ClusterPolicy struct {
	ClusterID     string          `json:"cluster_id"`
	RoutePolicy   json.RawMessage `json:"route_policy"`
	QoSPolicy     json.RawMessage `json:"qos_policy"`
	EntryPolicies json.RawMessage `json:"entry_policies"`
	UpdatedBy     string          `json:"updated_by"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

// GetClusterPolicy returns a cluster's policies (empty documents when unset).
func GetClusterPolicy(ctx context.Context, q Querier, clusterID string) (ClusterPolicy, error) {
	p := ClusterPolicy{ClusterID: clusterID}
	err := q.QueryRow(ctx, `SELECT route_policy, qos_policy, entry_policies, updated_by, updated_at FROM cluster_snapshot_policies WHERE cluster_id = rap_uuid($1)`, clusterID).
		Scan(&p.RoutePolicy, &p.QoSPolicy, &p.EntryPolicies, &p.UpdatedBy, &p.UpdatedAt)
	if errNoRows(err) {
		return ClusterPolicy{ClusterID: clusterID, RoutePolicy: json.RawMessage(`{}`), QoSPolicy: json.RawMessage(`{}`), EntryPolicies: json.RawMessage(`[]`)}, nil
	}
	return p, mapErr(err)
}

// SetClusterPolicy replaces a cluster's policies (fenced).
func SetClusterPolicy(ctx context.Context, q Querier, p ClusterPolicy) (ClusterPolicy, error) {
	err := q.QueryRow(ctx, `INSERT INTO cluster_snapshot_policies (cluster_id, route_policy, qos_policy, entry_policies, updated_by)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (cluster_id) DO UPDATE SET route_policy = EXCLUDED.route_policy, qos_policy = EXCLUDED.qos_policy,
		    entry_policies = EXCLUDED.entry_policies, updated_by = EXCLUDED.updated_by, updated_at = now()
		RETURNING updated_at`, p.ClusterID, p.RoutePolicy, p.QoSPolicy, p.EntryPolicies, p.UpdatedBy).Scan(&p.UpdatedAt)
	return p, mapErr(err)
}

// SnapshotMember is what a snapshot build needs of one member of a cluster:
// its membership, newest identity and the facts its agent last reported.
type SnapshotMember struct {
	NodeID           string
	Name             string
	MembershipStatus string
	GroupID          *string
	IdentityStatus   *string
	NoisePublicKey   []byte
	Facts            json.RawMessage
}

// SnapshotMembers lists every member of a cluster for a snapshot build. Facts
// come from the latest heartbeat, or from the approved join request before
// the first heartbeat.
func SnapshotMembers(ctx context.Context, q Querier, clusterID string) ([]SnapshotMember, error) {
	if !IsCanonicalUUID(clusterID) {
		return []SnapshotMember{}, nil
	}
	// Set-based: each member's identity (active first, then newest) and its
	// newest reviewed join request are picked by DISTINCT ON over the
	// cluster's rows and hash-joined. The former LATERAL … LIMIT 1 per member
	// scanned node_join_requests once per member (no index on
	// approved_node_id): 42 s for 9,000 members, every rebuild.
	return collect(ctx, q, func(r scanner) (SnapshotMember, error) {
		var m SnapshotMember
		err := r.Scan(&m.NodeID, &m.Name, &m.MembershipStatus, &m.GroupID, &m.IdentityStatus, &m.NoisePublicKey, &m.Facts)
		return m, mapErr(err)
	}, snapshotMembersSQL, clusterID)
}

const snapshotMembersSQL = `SELECT m.node_id::text, n.name, m.membership_status, m.group_id::text, i.identity_status, i.noise_public_key,
	           coalesce(hb.facts, jr.reported_facts, '{}'::jsonb)
	      FROM cluster_memberships m
	      JOIN nodes n ON n.id = m.node_id
	      LEFT JOIN (SELECT DISTINCT ON (node_id) node_id, identity_status, noise_public_key FROM node_identities
	                  WHERE cluster_id = $1::uuid
	                  ORDER BY node_id, (identity_status = 'active') DESC, created_at DESC) i ON i.node_id = m.node_id
	      LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
	      LEFT JOIN (SELECT DISTINCT ON (approved_node_id) approved_node_id, reported_facts FROM node_join_requests
	                  WHERE cluster_id = $1::uuid AND approved_node_id IS NOT NULL
	                  ORDER BY approved_node_id, reviewed_at DESC NULLS LAST) jr ON jr.approved_node_id = m.node_id
	     WHERE m.cluster_id = $1::uuid`

// RevokedKeys lists the public and Noise keys of a cluster's revoked
// identities.
func RevokedKeys(ctx context.Context, q Querier, clusterID string) (publicKeys, noiseKeys [][]byte, err error) {
	rows, err := q.Query(ctx, `SELECT public_key, noise_public_key FROM node_identities WHERE cluster_id = rap_uuid($1) AND identity_status = 'revoked'`, clusterID)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, n []byte
		if err := rows.Scan(&p, &n); err != nil {
			return nil, nil, mapErr(err)
		}
		publicKeys, noiseKeys = append(publicKeys, p), append(noiseKeys, n)
	}
	return publicKeys, noiseKeys, mapErr(rows.Err())
}

// AllRoleAssignments lists every assignment of a cluster (for snapshot builds).
func AllRoleAssignments(ctx context.Context, q Querier, clusterID string) ([]RoleAssignment, error) {
	return collect(ctx, q, scanRole, `SELECT `+roleCols+` FROM node_role_assignments WHERE cluster_id = rap_uuid($1)`, clusterID)
}

// AllOrganizations lists every organization (for snapshot builds).
func AllOrganizations(ctx context.Context, q Querier) ([]Organization, error) {
	return collect(ctx, q, scanOrg, `SELECT `+orgCols+` FROM organizations`)
}

// GroupHasContents reports whether a group has child groups or members.
func GroupHasContents(ctx context.Context, q Querier, groupID string) (children, members int, err error) {
	err = q.QueryRow(ctx, `SELECT (SELECT count(*) FROM node_groups WHERE parent_id = rap_uuid($1)), (SELECT count(*) FROM cluster_memberships WHERE group_id = rap_uuid($1))`, groupID).
		Scan(&children, &members)
	return children, members, mapErr(err)
}

// GroupByID finds a group by id.
func GroupByID(ctx context.Context, q Querier, id string) (Group, error) {
	return scanGroup(q.QueryRow(ctx, `SELECT `+groupCols+` FROM node_groups WHERE id = rap_uuid($1)`, id))
}
