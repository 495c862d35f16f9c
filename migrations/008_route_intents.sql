-- 008_route_intents: control-plane preparation for the mesh (issue 9, C6).
--
--  * cluster_route_intents: the owner's routing intents for a cluster: traffic
--    from a source selector to a destination selector is allowed, denied or
--    preferred through a relay, ordered by priority (lower first);
--  * qos_policies: per-cluster traffic classes with a priority, an optional
--    bandwidth cap and a latency target.
--
-- Both are fenced (written only by the leader's fenced transactions) and mark
-- their cluster's snapshots dirty: mesh roles receive them in the route and
-- QoS policy of their snapshots.
--
-- A selector is "*" (anything) or kind:value with kind node, group, region,
-- role or organization.

CREATE TABLE cluster_route_intents (
    id                    uuid PRIMARY KEY,
    cluster_id            uuid NOT NULL REFERENCES clusters (id),
    name                  text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    source_selector       text NOT NULL CHECK (source_selector ~ '^(\*|(node|group|region|role|organization):[A-Za-z0-9][A-Za-z0-9._:-]{0,199})$'),
    destination_selector  text NOT NULL CHECK (destination_selector ~ '^(\*|(node|group|region|role|organization):[A-Za-z0-9][A-Za-z0-9._:-]{0,199})$'),
    action                text NOT NULL CHECK (action IN ('allow', 'deny', 'prefer-relay')),
    priority              integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 10000),
    created_by            text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    fence_epoch           bigint NOT NULL DEFAULT 0,
    UNIQUE (cluster_id, name)
);
CREATE INDEX cluster_route_intents_order ON cluster_route_intents (cluster_id, priority, name);

CREATE TABLE qos_policies (
    id                  uuid PRIMARY KEY,
    cluster_id          uuid NOT NULL REFERENCES clusters (id),
    name                text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    traffic_class       text NOT NULL CHECK (traffic_class IN ('control', 'interactive', 'streaming', 'bulk', 'best-effort')),
    priority            integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 10000),
    -- 0: no cap / no target.
    max_bandwidth_kbps  bigint NOT NULL DEFAULT 0 CHECK (max_bandwidth_kbps BETWEEN 0 AND 100000000),
    latency_target_ms   integer NOT NULL DEFAULT 0 CHECK (latency_target_ms BETWEEN 0 AND 600000),
    created_by          text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    fence_epoch         bigint NOT NULL DEFAULT 0,
    UNIQUE (cluster_id, name)
);
CREATE INDEX qos_policies_order ON qos_policies (cluster_id, priority, name);

CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON cluster_route_intents FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON qos_policies          FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON cluster_route_intents FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON qos_policies          FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE qos_policies;
DROP TABLE cluster_route_intents;
