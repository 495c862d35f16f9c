-- 004_snapshots: signed need-to-know configuration snapshots and what drives
-- their rebuilds.
--
--  * node_snapshot_heads: the per-node version counter (strictly increasing,
--    enforced here) with the digest and signing key of the newest snapshot;
--  * node_config_snapshots: the signed snapshots themselves, the last few
--    versions per node (the authority prunes to 3);
--  * snapshot_dirty_clusters: marks written by triggers on every table a
--    snapshot is built from, so no code path can change a node's
--    configuration without the leader's rebuild loop noticing; a NOTIFY on
--    'rap_snapshot_dirty' wakes it, and a NOTIFY on 'rap_snapshot' per stored
--    snapshot wakes long-polling agents on every authority;
--  * telemetry_flags: test telemetry switches on a node, a cluster or an
--    organization;
--  * cluster_snapshot_policies: the cluster's route, QoS and client entry
--    policies (JSON documents delivered to mesh and entry roles).

-- ---------------------------------------------------------------- policies and flags
CREATE TABLE cluster_snapshot_policies (
    cluster_id      uuid PRIMARY KEY REFERENCES clusters (id),
    route_policy    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(route_policy) = 'object'),
    qos_policy      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(qos_policy) = 'object'),
    entry_policies  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(entry_policies) = 'array'),
    updated_by      text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    fence_epoch     bigint NOT NULL DEFAULT 0
);

-- A flag is cluster-wide (cluster_id), for one node in one cluster (cluster_id,
-- node_id) or for one organization (organization_id; cluster_id NULL means in
-- every cluster).
CREATE TABLE telemetry_flags (
    id               uuid PRIMARY KEY,
    scope            text NOT NULL CHECK (scope IN ('cluster', 'node', 'organization')),
    cluster_id       uuid REFERENCES clusters (id),
    node_id          uuid,
    organization_id  uuid REFERENCES organizations (id),
    name             text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    enabled          boolean NOT NULL,
    updated_by       text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    fence_epoch      bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id),
    CHECK ((scope = 'cluster' AND cluster_id IS NOT NULL AND node_id IS NULL AND organization_id IS NULL)
        OR (scope = 'node' AND cluster_id IS NOT NULL AND node_id IS NOT NULL AND organization_id IS NULL)
        OR (scope = 'organization' AND organization_id IS NOT NULL AND node_id IS NULL))
);
CREATE UNIQUE INDEX telemetry_flags_unique ON telemetry_flags (scope,
    coalesce(cluster_id, '00000000-0000-0000-0000-000000000000'::uuid),
    coalesce(node_id, '00000000-0000-0000-0000-000000000000'::uuid),
    coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

-- ---------------------------------------------------------------- snapshots
CREATE TABLE node_snapshot_heads (
    cluster_id   uuid NOT NULL,
    node_id      uuid NOT NULL,
    version      bigint NOT NULL CHECK (version > 0),
    digest       bytea NOT NULL CHECK (length(digest) = 32),
    key_id       text NOT NULL,
    expires_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, node_id),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);

CREATE FUNCTION rap_snapshot_version_increases() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <= OLD.version THEN
        RAISE EXCEPTION 'snapshot version must increase: % after %', NEW.version, OLD.version
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER node_snapshot_heads_increase BEFORE UPDATE OF version ON node_snapshot_heads
    FOR EACH ROW EXECUTE FUNCTION rap_snapshot_version_increases();

CREATE TABLE node_config_snapshots (
    cluster_id   uuid NOT NULL,
    node_id      uuid NOT NULL,
    version      bigint NOT NULL CHECK (version > 0),
    epoch        bigint NOT NULL CHECK (epoch > 0),
    key_id       text NOT NULL,
    scope        text NOT NULL DEFAULT '',
    digest       bytea NOT NULL CHECK (length(digest) = 32),
    signed       bytea NOT NULL CHECK (length(signed) <= 4194304),
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > issued_at),
    created_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, node_id, version),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);

CREATE FUNCTION rap_snapshot_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rap_snapshot', NEW.cluster_id::text || '/' || NEW.node_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER node_config_snapshots_notify AFTER INSERT ON node_config_snapshots
    FOR EACH ROW EXECUTE FUNCTION rap_snapshot_notify();

-- ---------------------------------------------------------------- dirty marks
CREATE TABLE snapshot_dirty_clusters (
    cluster_id  uuid PRIMARY KEY REFERENCES clusters (id),
    generation  bigint NOT NULL DEFAULT 1,
    reason      text NOT NULL DEFAULT '',
    marked_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION rap_mark_cluster_dirty(p_cluster uuid, p_reason text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_cluster IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO snapshot_dirty_clusters (cluster_id, reason) VALUES (p_cluster, p_reason)
    ON CONFLICT (cluster_id) DO UPDATE
        SET generation = snapshot_dirty_clusters.generation + 1, reason = EXCLUDED.reason, marked_at = now();
    PERFORM pg_notify('rap_snapshot_dirty', p_cluster::text);
END $$;

-- For tables with a cluster_id column.
CREATE FUNCTION rap_snapshot_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM rap_mark_cluster_dirty(OLD.cluster_id, TG_TABLE_NAME);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM rap_mark_cluster_dirty(NEW.cluster_id, TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$;

-- A node's name is in its own snapshot and its peers': every cluster it is in.
CREATE FUNCTION rap_snapshot_dirty_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rap_mark_cluster_dirty(m.cluster_id, TG_TABLE_NAME)
       FROM cluster_memberships m WHERE m.node_id = NEW.id;
    RETURN NULL;
END $$;

-- An organization's name, or an organization-wide flag in every cluster.
CREATE FUNCTION rap_snapshot_dirty_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rap_mark_cluster_dirty(c.id, TG_TABLE_NAME) FROM clusters c;
    RETURN NULL;
END $$;

CREATE FUNCTION rap_snapshot_dirty_flag() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF r.cluster_id IS NULL THEN
        PERFORM rap_mark_cluster_dirty(c.id, TG_TABLE_NAME) FROM clusters c;
    ELSE
        PERFORM rap_mark_cluster_dirty(r.cluster_id, TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON cluster_memberships FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON node_identities FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON node_role_assignments FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON node_groups FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON cluster_snapshot_policies FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
-- Only desired state: agents' reports (reported_state, heartbeats) never dirty.
CREATE TRIGGER snapshot_dirty AFTER INSERT OR DELETE OR UPDATE OF desired_state, config, organization_id, service_type ON node_service_instances
    FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER UPDATE OF name ON nodes FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty_node();
CREATE TRIGGER snapshot_dirty AFTER UPDATE OF name ON organizations FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON telemetry_flags FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty_flag();

-- ---------------------------------------------------------------- fence triggers
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON cluster_snapshot_policies FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON telemetry_flags           FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_snapshot_heads       FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_config_snapshots     FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TRIGGER snapshot_dirty ON cluster_memberships;
DROP TRIGGER snapshot_dirty ON node_identities;
DROP TRIGGER snapshot_dirty ON node_role_assignments;
DROP TRIGGER snapshot_dirty ON node_groups;
DROP TRIGGER snapshot_dirty ON node_service_instances;
DROP TRIGGER snapshot_dirty ON nodes;
DROP TRIGGER snapshot_dirty ON organizations;
DROP TABLE snapshot_dirty_clusters, node_config_snapshots, node_snapshot_heads, telemetry_flags, cluster_snapshot_policies;
DROP FUNCTION rap_snapshot_dirty_flag(), rap_snapshot_dirty_all(), rap_snapshot_dirty_node(), rap_snapshot_dirty(),
    rap_mark_cluster_dirty(uuid, text), rap_snapshot_notify(), rap_snapshot_version_increases();
