-- 019_organizations: organization accounts, logical service endpoints,
-- organization resources and policies (issue 18, spec C9).
--
-- Organization accounts live in admin_users (same Argon2id, TOTP, recovery
-- codes, sessions, trusted devices and step-up as platform accounts) with
-- platform_role 'none', organization_id set and an org_role. A platform
-- account is never an organization account and vice versa (CHECK below).
--
-- An endpoint is a logical service (name, protocol, region label) the
-- platform publishes to one organization; the nodes backing it
-- (org_endpoint_nodes) are never shown to the organization. Resources and
-- policies belong to one organization; they reach, in signed snapshots, only
-- the nodes that back that organization's endpoints.

ALTER TABLE admin_users ADD COLUMN org_role text CHECK (org_role IN ('org_admin', 'org_member'));
ALTER TABLE admin_users ADD CONSTRAINT admin_users_scope CHECK (
    (organization_id IS NULL AND org_role IS NULL)
    OR (organization_id IS NOT NULL AND org_role IS NOT NULL AND platform_role = 'none'));
CREATE INDEX admin_users_org ON admin_users (organization_id) WHERE organization_id IS NOT NULL;

CREATE TABLE org_endpoints (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    kind             text NOT NULL CHECK (kind IN ('entry', 'egress')),
    protocol         text NOT NULL CHECK (protocol IN ('tcp', 'udp', 'http', 'https', 'ssh', 'rdp', 'wireguard')),
    region           text NOT NULL DEFAULT '' CHECK (length(region) <= 64),
    created_at       timestamptz NOT NULL DEFAULT now(),
    fence_epoch      bigint NOT NULL DEFAULT 0,
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id)
);

CREATE TABLE org_endpoint_nodes (
    endpoint_id  uuid NOT NULL REFERENCES org_endpoints (id) ON DELETE CASCADE,
    cluster_id   uuid NOT NULL,
    node_id      uuid NOT NULL,
    fence_epoch  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, cluster_id, node_id),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE INDEX org_endpoint_nodes_node ON org_endpoint_nodes (cluster_id, node_id);

CREATE TABLE org_resources (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    protocol         text NOT NULL CHECK (protocol IN ('tcp', 'udp', 'http', 'https', 'ssh', 'rdp')),
    address          text NOT NULL CHECK (length(address) BETWEEN 1 AND 253),
    port             integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    endpoint_id      uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    fence_epoch      bigint NOT NULL DEFAULT 0,
    UNIQUE (organization_id, name),
    -- the egress endpoint must be one of the same organization
    FOREIGN KEY (organization_id, endpoint_id) REFERENCES org_endpoints (organization_id, id)
);

CREATE TABLE org_policies (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    -- subjects: "user:<name>" or "group:<name>" of the organization
    subjects         text[] NOT NULL CHECK (cardinality(subjects) BETWEEN 1 AND 100),
    resource_ids     uuid[] NOT NULL CHECK (cardinality(resource_ids) BETWEEN 1 AND 100),
    endpoint_ids     uuid[] NOT NULL CHECK (cardinality(endpoint_ids) BETWEEN 1 AND 20),
    -- time window in minutes of the day (UTC); NULL: always
    window_start     integer CHECK (window_start BETWEEN 0 AND 1439),
    window_end       integer CHECK (window_end BETWEEN 0 AND 1439),
    require_mfa      boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    fence_epoch      bigint NOT NULL DEFAULT 0,
    UNIQUE (organization_id, name),
    CHECK ((window_start IS NULL) = (window_end IS NULL))
);

CREATE INDEX cluster_audit_events_org ON cluster_audit_events (organization_id, id) WHERE organization_id IS NOT NULL;

CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON org_endpoints      FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON org_endpoint_nodes FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON org_resources      FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON org_policies       FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON org_endpoints      FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON org_endpoint_nodes FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON org_resources      FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON org_policies       FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE org_policies, org_resources, org_endpoint_nodes, org_endpoints;
DROP INDEX cluster_audit_events_org;
ALTER TABLE admin_users DROP CONSTRAINT admin_users_scope;
DROP INDEX admin_users_org;
ALTER TABLE admin_users DROP COLUMN org_role;
