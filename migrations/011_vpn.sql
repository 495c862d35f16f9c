-- 011_vpn: the VPN / IP tunnel control plane (issue 19, spec C18A-C18C).
--
--  * vpn_connections: a cluster's logical tunnels (desired state, address
--    family, client and remote prefixes, DNS, MTU, a credential reference —
--    never a credential — and the lease time to live);
--  * vpn_connection_allowed_nodes: the nodes that may own a connection's
--    lease (same cluster only, enforced by the foreign key to the membership);
--  * vpn_connection_route_policies: prefixes routed through a connection; the
--    default route only where the policy says so explicitly;
--  * vpn_connection_leases: single-active ownership. Every lease is a row
--    that is kept as history; at most one row per connection is 'active'
--    (partial unique index), and every write is fenced, so a lease acquired
--    or renewed under a deposed leader's epoch is refused here;
--  * vpn_assignment_status_reports / vpn_assignment_status_latest: what the
--    agents report about their assignments (not fenced: telemetry, like
--    heartbeats; any authority accepts it).

CREATE TABLE vpn_connections (
    id                 uuid PRIMARY KEY,
    cluster_id         uuid NOT NULL REFERENCES clusters (id),
    organization_id    uuid REFERENCES organizations (id),
    name               text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    desired_state      text NOT NULL DEFAULT 'disabled' CHECK (desired_state IN ('enabled', 'disabled')),
    address_family     text NOT NULL CHECK (address_family IN ('ipv4', 'ipv6', 'dual')),
    client_prefixes    cidr[] NOT NULL DEFAULT '{}' CHECK (cardinality(client_prefixes) <= 64),
    remote_prefixes    cidr[] NOT NULL DEFAULT '{}' CHECK (cardinality(remote_prefixes) <= 256),
    dns_servers        inet[] NOT NULL DEFAULT '{}' CHECK (cardinality(dns_servers) <= 8),
    mtu                integer NOT NULL DEFAULT 1420 CHECK (mtu BETWEEN 576 AND 9000),
    credential_ref     text NOT NULL DEFAULT '' CHECK (length(credential_ref) <= 500),
    lease_ttl_seconds  integer NOT NULL DEFAULT 30 CHECK (lease_ttl_seconds BETWEEN 2 AND 3600),
    created_by         text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    fence_epoch        bigint NOT NULL DEFAULT 0,
    UNIQUE (cluster_id, name),
    UNIQUE (cluster_id, id)
);

CREATE TABLE vpn_connection_allowed_nodes (
    connection_id  uuid NOT NULL,
    cluster_id     uuid NOT NULL,
    node_id        uuid NOT NULL,
    added_by       text NOT NULL CHECK (length(added_by) BETWEEN 1 AND 255),
    added_at       timestamptz NOT NULL DEFAULT now(),
    fence_epoch    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, node_id),
    FOREIGN KEY (cluster_id, connection_id) REFERENCES vpn_connections (cluster_id, id) ON DELETE CASCADE,
    -- Only nodes of the connection's own cluster.
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE INDEX vpn_connection_allowed_nodes_node ON vpn_connection_allowed_nodes (cluster_id, node_id);

CREATE TABLE vpn_connection_route_policies (
    id                   uuid PRIMARY KEY,
    connection_id        uuid NOT NULL,
    cluster_id           uuid NOT NULL,
    name                 text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    prefixes             cidr[] NOT NULL CHECK (cardinality(prefixes) BETWEEN 1 AND 256),
    priority             integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 10000),
    allow_default_route  boolean NOT NULL DEFAULT false,
    allow_overlap        boolean NOT NULL DEFAULT false,
    created_by           text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
    created_at           timestamptz NOT NULL DEFAULT now(),
    fence_epoch          bigint NOT NULL DEFAULT 0,
    UNIQUE (connection_id, name),
    FOREIGN KEY (cluster_id, connection_id) REFERENCES vpn_connections (cluster_id, id) ON DELETE CASCADE,
    -- The default route only where the policy allows it explicitly (the
    -- authority checks this too, with a clearer message).
    CHECK (allow_default_route OR NOT ('0.0.0.0/0'::cidr = ANY (prefixes) OR '::/0'::cidr = ANY (prefixes)))
);

CREATE TABLE vpn_connection_leases (
    id             uuid PRIMARY KEY,
    connection_id  uuid NOT NULL,
    cluster_id     uuid NOT NULL,
    owner_node_id  uuid NOT NULL,
    -- generation counts the leases of a connection (1, 2, ...): a renewal or
    -- release must name the generation it holds, so an owner cut off while
    -- another node took over is refused after the partition heals.
    generation     bigint NOT NULL CHECK (generation >= 1),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'released', 'expired', 'fenced', 'revoked')),
    -- epoch is the authority epoch that granted or last renewed the lease.
    epoch          bigint NOT NULL CHECK (epoch >= 1),
    acquired_at    timestamptz NOT NULL,
    renewed_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    end_reason     text NOT NULL DEFAULT '' CHECK (length(end_reason) <= 500),
    ended_by       text NOT NULL DEFAULT '' CHECK (length(ended_by) <= 255),
    fence_epoch    bigint NOT NULL DEFAULT 0,
    UNIQUE (connection_id, generation),
    FOREIGN KEY (cluster_id, connection_id) REFERENCES vpn_connections (cluster_id, id),
    FOREIGN KEY (cluster_id, owner_node_id) REFERENCES cluster_memberships (cluster_id, node_id),
    CHECK (expires_at > acquired_at AND renewed_at >= acquired_at),
    CHECK ((status = 'active') = (ended_at IS NULL))
);
-- Single-active: at most one active lease per connection, whatever the code.
CREATE UNIQUE INDEX vpn_connection_leases_one_active ON vpn_connection_leases (connection_id) WHERE status = 'active';
CREATE INDEX vpn_connection_leases_expiry ON vpn_connection_leases (expires_at) WHERE status = 'active';
CREATE INDEX vpn_connection_leases_history ON vpn_connection_leases (connection_id, generation DESC);

-- A lease's epoch is the fence epoch of the transaction that writes it, and a
-- lease that ended never comes back.
CREATE FUNCTION rap_vpn_lease_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status <> 'active' THEN
            RAISE EXCEPTION 'vpn lease % (generation %) already ended (%)', OLD.id, OLD.generation, OLD.status USING ERRCODE = 'RF010';
        END IF;
        IF NEW.owner_node_id <> OLD.owner_node_id OR NEW.generation <> OLD.generation OR NEW.connection_id <> OLD.connection_id
           OR NEW.acquired_at <> OLD.acquired_at THEN
            RAISE EXCEPTION 'a vpn lease''s owner, generation and acquisition never change' USING ERRCODE = 'RF010';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'vpn lease history is kept' USING ERRCODE = 'RF020';
    END IF;
    IF NEW.status = 'active' THEN
        NEW.epoch := rap_current_fence();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER lease_guard BEFORE INSERT OR UPDATE OR DELETE ON vpn_connection_leases FOR EACH ROW EXECUTE FUNCTION rap_vpn_lease_guard();

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON vpn_connections               FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON vpn_connection_allowed_nodes  FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON vpn_connection_route_policies FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON vpn_connection_leases         FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

-- Agent reports about assignments: an append log and the latest per node.
CREATE TABLE vpn_assignment_status_reports (
    id                bigserial PRIMARY KEY,
    cluster_id        uuid NOT NULL,
    connection_id     uuid NOT NULL,
    node_id           uuid NOT NULL,
    status            text NOT NULL CHECK (status IN ('not_started', 'assigned', 'lease_required', 'blocked', 'unknown')),
    detail            text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    lease_generation  bigint NOT NULL DEFAULT 0 CHECK (lease_generation >= 0),
    received_at       timestamptz NOT NULL,
    authority_id      text NOT NULL DEFAULT '',
    FOREIGN KEY (cluster_id, connection_id) REFERENCES vpn_connections (cluster_id, id) ON DELETE CASCADE,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE INDEX vpn_assignment_status_reports_conn ON vpn_assignment_status_reports (connection_id, received_at DESC);
CREATE INDEX vpn_assignment_status_reports_time ON vpn_assignment_status_reports (received_at);

CREATE TABLE vpn_assignment_status_latest (
    cluster_id        uuid NOT NULL,
    connection_id     uuid NOT NULL,
    node_id           uuid NOT NULL,
    status            text NOT NULL CHECK (status IN ('not_started', 'assigned', 'lease_required', 'blocked', 'unknown')),
    detail            text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    lease_generation  bigint NOT NULL DEFAULT 0 CHECK (lease_generation >= 0),
    received_at       timestamptz NOT NULL,
    PRIMARY KEY (connection_id, node_id),
    FOREIGN KEY (cluster_id, connection_id) REFERENCES vpn_connections (cluster_id, id) ON DELETE CASCADE,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);

---- create above / drop below ----
DROP TABLE vpn_assignment_status_latest;
DROP TABLE vpn_assignment_status_reports;
DROP TABLE vpn_connection_leases;
DROP FUNCTION rap_vpn_lease_guard();
DROP TABLE vpn_connection_route_policies;
DROP TABLE vpn_connection_allowed_nodes;
DROP TABLE vpn_connections;
