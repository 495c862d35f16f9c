-- 007_mesh: the mesh control-plane inventory reported by agents.
--
--  * mesh_links: each node's view of its direct links (state, RTT, loss, last
--    handshake, peer set), replaced by every link report (POST /v1/agent/links);
--  * mesh_routes: each node's reachable destinations (next hop, cost, hops),
--    replaced with the same report;
--  * a trigger marks a cluster's snapshots dirty when a node's advertised
--    endpoints or region change in its heartbeat facts, so the peer
--    directories that carry them are rebuilt.
--
-- Route intents and QoS policy are the cluster policy documents
-- (cluster_snapshot_policies.route_policy / qos_policy, 004): set through the
-- fenced, audited PUT /v1/clusters/{cluster}/policy and delivered to the mesh
-- roles in their snapshots.
-- Agents' reports are not fenced (any authority stores them, like heartbeats).

CREATE TABLE mesh_links (
    cluster_id         uuid NOT NULL,
    node_id            uuid NOT NULL,
    peer_node_id       text NOT NULL CHECK (length(peer_node_id) BETWEEN 1 AND 255),
    state              text NOT NULL CHECK (length(state) <= 32),
    peer_set           text NOT NULL DEFAULT '' CHECK (length(peer_set) <= 32),
    rtt_ms             double precision NOT NULL DEFAULT 0 CHECK (rtt_ms >= 0),
    loss               double precision NOT NULL DEFAULT 0 CHECK (loss >= 0 AND loss <= 1),
    last_handshake_at  timestamptz,
    reported_at        timestamptz NOT NULL DEFAULT now(),
    authority_id       text NOT NULL DEFAULT '',
    PRIMARY KEY (cluster_id, node_id, peer_node_id),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id) ON DELETE CASCADE
);

CREATE TABLE mesh_routes (
    cluster_id      uuid NOT NULL,
    node_id         uuid NOT NULL,
    destination     text NOT NULL CHECK (length(destination) BETWEEN 1 AND 255),
    next_hop        text NOT NULL CHECK (length(next_hop) BETWEEN 1 AND 255),
    cost            integer NOT NULL CHECK (cost >= 0),
    hops            integer NOT NULL CHECK (hops >= 0),
    reported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, node_id, destination),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id) ON DELETE CASCADE
);

CREATE FUNCTION rap_snapshot_dirty_endpoints() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR (OLD.facts -> 'endpoints') IS DISTINCT FROM (NEW.facts -> 'endpoints')
       OR (OLD.facts -> 'region') IS DISTINCT FROM (NEW.facts -> 'region') THEN
        IF (NEW.facts -> 'endpoints') IS NOT NULL OR (NEW.facts -> 'region') IS NOT NULL
           OR (TG_OP = 'UPDATE' AND ((OLD.facts -> 'endpoints') IS NOT NULL OR (OLD.facts -> 'region') IS NOT NULL)) THEN
            PERFORM rap_mark_cluster_dirty(NEW.cluster_id, 'endpoints');
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER snapshot_dirty_endpoints AFTER INSERT OR UPDATE OF facts ON node_heartbeat_latest
    FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty_endpoints();

---- create above / drop below ----
DROP TRIGGER snapshot_dirty_endpoints ON node_heartbeat_latest;
DROP FUNCTION rap_snapshot_dirty_endpoints();
DROP TABLE mesh_routes;
DROP TABLE mesh_links;
