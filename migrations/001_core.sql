-- 001_core: the fence, the core cluster/node data model and the audit log.
--
-- Golden rules enforced here rather than in application code:
--  * every fenced table carries fence_epoch, and a trigger refuses any write whose
--    transaction did not declare the current authority epoch (rap.fence_epoch);
--  * node identities hold public material only (fixed-size key columns);
--  * join tokens are stored as hashes only;
--  * role assignments need an active membership in the same cluster;
--  * node groups are cluster-scoped and acyclic;
--  * the audit log is append-only.

-- ---------------------------------------------------------------- the fence
CREATE TABLE authority_fence (
    id          integer PRIMARY KEY CHECK (id = 1),
    epoch       bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    leader_id   text NOT NULL DEFAULT '',
    claimed_at  timestamptz
);
INSERT INTO authority_fence (id) VALUES (1);

CREATE TABLE cluster_authority_terms (
    epoch       bigint PRIMARY KEY,
    leader_id   text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

-- rap_claim_fence is the only way to move the fence: it succeeds only for a
-- strictly newer epoch. It waits for in-flight fenced transactions, which hold
-- the fence lock shared.
--
-- The fence lock is the transaction-scoped advisory lock 0x52415046 ("RAPF"):
-- fenced transactions hold it shared, a claim holds it exclusively. Shared
-- advisory locks live in the lock manager, so many concurrent fenced
-- transactions do not contend on the fence row (as FOR SHARE row locks would).
CREATE FUNCTION rap_claim_fence(p_epoch bigint, p_leader text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(1380012102);
    PERFORM set_config('rap.fence_claim', 'on', true);
    UPDATE authority_fence SET epoch = p_epoch, leader_id = p_leader, claimed_at = now()
     WHERE id = 1 AND epoch < p_epoch;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('rap.fence_claim', 'off', true);
    IF n = 1 THEN
        INSERT INTO cluster_authority_terms (epoch, leader_id) VALUES (p_epoch, p_leader);
    END IF;
    RETURN n = 1;
END $$;

CREATE FUNCTION rap_fence_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'authority_fence cannot be deleted' USING ERRCODE = 'RF003';
    END IF;
    IF coalesce(current_setting('rap.fence_claim', true), '') <> 'on' THEN
        RAISE EXCEPTION 'authority_fence moves only through rap_claim_fence()' USING ERRCODE = 'RF003';
    END IF;
    IF NEW.epoch <= OLD.epoch THEN
        RAISE EXCEPTION 'fence epoch must increase' USING ERRCODE = 'RF001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER authority_fence_guard BEFORE UPDATE OR DELETE ON authority_fence
    FOR EACH ROW EXECUTE FUNCTION rap_fence_guard();

-- rap_fence_check guards every fenced table. A fenced transaction declares its
-- epoch with set_config('rap.fence_epoch', e, true); the check takes the fence
-- lock shared and refuses the write when
-- the declared epoch is missing (RF002 fence_required) or not the current one
-- (RF001 stale_epoch). Rows written carry the epoch that wrote them. Holding
-- the fence lock shared until commit makes a concurrent claim wait for us, and
-- after a claim commits every later check reads the new epoch.
CREATE FUNCTION rap_current_fence() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE declared text; cur bigint;
BEGIN
    declared := current_setting('rap.fence_epoch', true);
    IF declared IS NULL OR declared = '' THEN
        RAISE EXCEPTION 'fence_required: write to a fenced table outside a fenced transaction'
            USING ERRCODE = 'RF002';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1380012102);
    SELECT epoch INTO cur FROM authority_fence WHERE id = 1;
    IF cur <> declared::bigint THEN
        RAISE EXCEPTION 'stale_epoch: transaction epoch % but fence is at %', declared, cur
            USING ERRCODE = 'RF001';
    END IF;
    RETURN cur;
END $$;

-- rap_begin_fenced declares the transaction's epoch and timeouts and checks the
-- fence, in one round trip (store.DB.Fenced calls it first).
CREATE FUNCTION rap_begin_fenced(p_epoch bigint, p_lock_timeout_ms bigint, p_statement_timeout_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
    PERFORM set_config('statement_timeout', p_statement_timeout_ms::text, true);
    PERFORM set_config('rap.fence_epoch', p_epoch::text, true);
    -- A fenced transaction left open (its authority paused or cut off) must not
    -- hold the fence lock and keep a new leader from claiming: the server ends
    -- the session after this idle time.
    PERFORM set_config('idle_in_transaction_session_timeout', (2 * p_lock_timeout_ms)::text, true);
    RETURN rap_current_fence();
END $$;

CREATE FUNCTION rap_fence_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE cur bigint;
BEGIN
    cur := rap_current_fence();
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.fence_epoch := cur;
    RETURN NEW;
END $$;

-- ---------------------------------------------------------------- tenants and clusters
CREATE TABLE organizations (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0
);

CREATE TABLE clusters (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    region       text NOT NULL DEFAULT '',
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    ca_key_id    text NOT NULL DEFAULT '',
    ca_cert_der  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0
);

-- ---------------------------------------------------------------- nodes
CREATE TABLE nodes (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 253),
    host_fingerprint   text NOT NULL CHECK (host_fingerprint ~ '^[0-9a-f]{64}$'),
    organization_id    uuid REFERENCES organizations (id),
    enrollment_status  text NOT NULL DEFAULT 'enrolled' CHECK (enrollment_status IN ('enrolled', 'revoked')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    fence_epoch        bigint NOT NULL DEFAULT 0
);
CREATE INDEX nodes_host_fingerprint ON nodes (host_fingerprint);

CREATE TABLE node_groups (
    id           uuid PRIMARY KEY,
    cluster_id   uuid NOT NULL REFERENCES clusters (id),
    parent_id    uuid,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0,
    UNIQUE (cluster_id, id),
    FOREIGN KEY (cluster_id, parent_id) REFERENCES node_groups (cluster_id, id)
);
CREATE UNIQUE INDEX node_groups_sibling_name
    ON node_groups (cluster_id, coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE FUNCTION rap_node_group_acyclic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.parent_id = NEW.id OR EXISTS (
        WITH RECURSIVE up(id, parent_id, depth) AS (
            SELECT g.id, g.parent_id, 1 FROM node_groups g WHERE g.id = NEW.parent_id
            UNION ALL
            SELECT g.id, g.parent_id, up.depth + 1 FROM node_groups g JOIN up ON g.id = up.parent_id
             WHERE up.depth < 1000
        ) SELECT 1 FROM up WHERE up.id = NEW.id)
    THEN
        RAISE EXCEPTION 'node group cycle: % cannot be placed under %', NEW.id, NEW.parent_id
            USING ERRCODE = 'RF010';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER node_groups_acyclic BEFORE INSERT OR UPDATE OF parent_id ON node_groups
    FOR EACH ROW EXECUTE FUNCTION rap_node_group_acyclic();

CREATE TABLE cluster_memberships (
    cluster_id         uuid NOT NULL REFERENCES clusters (id),
    node_id            uuid NOT NULL REFERENCES nodes (id),
    membership_status  text NOT NULL DEFAULT 'active' CHECK (membership_status IN ('active', 'disabled', 'revoked')),
    group_id           uuid,
    joined_at          timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    fence_epoch        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, node_id),
    FOREIGN KEY (cluster_id, group_id) REFERENCES node_groups (cluster_id, id)
);
CREATE INDEX cluster_memberships_node ON cluster_memberships (node_id);

-- Identities hold public material only: fixed 32-byte Ed25519 and X25519 public
-- keys; there is no column that could hold a private key.
CREATE TABLE node_identities (
    id                      uuid PRIMARY KEY,
    cluster_id              uuid NOT NULL,
    node_id                 uuid NOT NULL,
    public_key              bytea NOT NULL CHECK (length(public_key) = 32),
    noise_public_key        bytea NOT NULL CHECK (length(noise_public_key) = 32),
    certificate_serial      text,
    certificate_not_before  timestamptz,
    certificate_not_after   timestamptz,
    identity_status         text NOT NULL DEFAULT 'active' CHECK (identity_status IN ('active', 'rotated', 'revoked')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    rotated_at              timestamptz,
    revoked_at              timestamptz,
    revocation_reason       text,
    fence_epoch             bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id),
    CHECK ((identity_status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE UNIQUE INDEX node_identities_one_active ON node_identities (cluster_id, node_id) WHERE identity_status = 'active';
CREATE UNIQUE INDEX node_identities_public_key ON node_identities (cluster_id, public_key);

CREATE TABLE node_certificates (
    serial       text PRIMARY KEY,
    cluster_id   uuid NOT NULL,
    node_id      uuid NOT NULL,
    identity_id  uuid NOT NULL REFERENCES node_identities (id),
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL CHECK (not_after > not_before),
    der          bytea NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    fence_epoch  bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE INDEX node_certificates_node ON node_certificates (cluster_id, node_id);

-- ---------------------------------------------------------------- enrollment
CREATE TABLE node_join_tokens (
    id                  text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    cluster_id          uuid NOT NULL REFERENCES clusters (id),
    secret_hash         bytea NOT NULL CHECK (length(secret_hash) = 32),
    description         text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    scope               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scope) = 'object'),
    auto_approve        boolean NOT NULL DEFAULT false,
    expires_at          timestamptz NOT NULL,
    max_uses            integer NOT NULL DEFAULT 1 CHECK (max_uses BETWEEN 1 AND 10000),
    used_count          integer NOT NULL DEFAULT 0 CHECK (used_count >= 0 AND used_count <= max_uses),
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    fence_epoch         bigint NOT NULL DEFAULT 0,
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '24 hours')
);
CREATE INDEX node_join_tokens_cluster ON node_join_tokens (cluster_id);

CREATE TABLE node_join_requests (
    id                     uuid PRIMARY KEY,
    cluster_id             uuid NOT NULL REFERENCES clusters (id),
    token_id               text NOT NULL REFERENCES node_join_tokens (id),
    node_name              text NOT NULL CHECK (length(node_name) BETWEEN 1 AND 253),
    node_fingerprint       text NOT NULL CHECK (node_fingerprint ~ '^[0-9a-f]{64}$'),
    public_key             bytea NOT NULL CHECK (length(public_key) = 32),
    noise_public_key       bytea NOT NULL CHECK (length(noise_public_key) = 32),
    reported_capabilities  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(reported_capabilities) = 'array'),
    reported_facts         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(reported_facts) = 'object'),
    requested_roles        jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(requested_roles) = 'array'),
    status                 text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    poll_secret_hash       bytea NOT NULL CHECK (length(poll_secret_hash) = 32),
    source_addr            text NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,
    reviewed_by            text,
    reviewed_at            timestamptz,
    approved_node_id       uuid REFERENCES nodes (id),
    rejection_reason       text,
    fence_epoch            bigint NOT NULL DEFAULT 0,
    CHECK ((status = 'approved') = (approved_node_id IS NOT NULL)),
    CHECK (status <> 'rejected' OR rejection_reason IS NOT NULL),
    CHECK (status = 'pending' OR status = 'expired' OR reviewed_at IS NOT NULL)
);
-- A replayed join request (same key for the same cluster) never creates a second row.
CREATE UNIQUE INDEX node_join_requests_key ON node_join_requests (cluster_id, public_key);
CREATE INDEX node_join_requests_status ON node_join_requests (cluster_id, status, created_at);

-- ---------------------------------------------------------------- capabilities, roles, services
CREATE TABLE node_capabilities (
    node_id      uuid NOT NULL REFERENCES nodes (id),
    capability   text NOT NULL CHECK (capability IN (
        'can_accept_client_ingress', 'can_accept_node_ingress', 'can_route_mesh',
        'can_egress_internet', 'can_egress_private_network', 'can_run_rdp_worker',
        'can_run_vnc_worker', 'can_run_ssh_worker', 'can_run_vpn_exit', 'can_run_vpn_connector',
        'can_run_file_cache', 'can_run_update_cache', 'can_run_video_relay', 'can_run_config_storage')),
    reported     boolean NOT NULL DEFAULT true,
    verified     boolean NOT NULL DEFAULT false,
    verified_by  text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, capability)
);

CREATE TABLE node_role_assignments (
    id                   uuid PRIMARY KEY,
    cluster_id           uuid NOT NULL,
    node_id              uuid NOT NULL,
    role                 text NOT NULL CHECK (role IN (
        'entry-node', 'relay-node', 'core-mesh', 'rdp-worker', 'vnc-worker', 'ssh-worker',
        'remote-access', 'vpn-exit', 'vpn-connector', 'file-storage-cache', 'update-cache',
        'video-relay', 'config-storage', 'admin-ingress', 'egress-node')),
    organization_id      uuid REFERENCES organizations (id),
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    policy               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(policy) = 'object'),
    assigned_by          text NOT NULL,
    assigned_at          timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    fence_epoch          bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE UNIQUE INDEX node_role_assignments_unique ON node_role_assignments
    (cluster_id, node_id, role, coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid));

CREATE FUNCTION rap_role_needs_active_membership() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' AND NOT EXISTS (
        SELECT 1 FROM cluster_memberships m
         WHERE m.cluster_id = NEW.cluster_id AND m.node_id = NEW.node_id AND m.membership_status = 'active')
    THEN
        RAISE EXCEPTION 'node % has no active membership in cluster %', NEW.node_id, NEW.cluster_id
            USING ERRCODE = 'RF011';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER node_role_assignments_membership BEFORE INSERT OR UPDATE ON node_role_assignments
    FOR EACH ROW EXECUTE FUNCTION rap_role_needs_active_membership();

CREATE TABLE node_service_instances (
    id                   uuid PRIMARY KEY,
    cluster_id           uuid NOT NULL,
    node_id              uuid NOT NULL,
    service_type         text NOT NULL CHECK (service_type ~ '^[a-z][a-z0-9-]{0,62}$'),
    service_instance_id  text NOT NULL CHECK (length(service_instance_id) BETWEEN 1 AND 200),
    organization_id      uuid REFERENCES organizations (id),
    desired_state        text NOT NULL DEFAULT 'disabled' CHECK (desired_state IN ('enabled', 'disabled')),
    config               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config) = 'object'),
    reported_state       text NOT NULL DEFAULT 'unknown' CHECK (reported_state IN ('unknown', 'starting', 'running', 'stopped', 'failed', 'blocked')),
    version              text NOT NULL DEFAULT '',
    last_heartbeat_at    timestamptz,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    fence_epoch          bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id),
    UNIQUE (cluster_id, node_id, service_type, service_instance_id)
);

-- Desired state is fenced; reported state (written by agents' reports) is not.
CREATE FUNCTION rap_service_fence_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.desired_state IS NOT DISTINCT FROM OLD.desired_state
       AND NEW.config IS NOT DISTINCT FROM OLD.config
       AND NEW.organization_id IS NOT DISTINCT FROM OLD.organization_id
       AND NEW.service_type = OLD.service_type
       AND NEW.node_id = OLD.node_id AND NEW.cluster_id = OLD.cluster_id THEN
        NEW.fence_epoch := OLD.fence_epoch;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM rap_current_fence();
        RETURN OLD;
    END IF;
    NEW.fence_epoch := rap_current_fence();
    RETURN NEW;
END $$;

-- ---------------------------------------------------------------- heartbeats
CREATE TABLE node_heartbeats (
    id               bigserial PRIMARY KEY,
    cluster_id       uuid NOT NULL,
    node_id          uuid NOT NULL,
    received_at      timestamptz NOT NULL,
    seq              bigint NOT NULL DEFAULT 0,
    applied_version  bigint NOT NULL DEFAULT 0,
    agent_version    text NOT NULL DEFAULT '',
    state            text NOT NULL DEFAULT '',
    health           jsonb NOT NULL DEFAULT '{}'::jsonb,
    authority_id     text NOT NULL DEFAULT '',
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);
CREATE INDEX node_heartbeats_node_time ON node_heartbeats (cluster_id, node_id, received_at DESC);
CREATE INDEX node_heartbeats_time ON node_heartbeats (received_at);

CREATE TABLE node_heartbeat_latest (
    cluster_id       uuid NOT NULL,
    node_id          uuid NOT NULL,
    received_at      timestamptz NOT NULL,
    seq              bigint NOT NULL DEFAULT 0,
    applied_version  bigint NOT NULL DEFAULT 0,
    agent_version    text NOT NULL DEFAULT '',
    state            text NOT NULL DEFAULT '',
    health           jsonb NOT NULL DEFAULT '{}'::jsonb,
    facts            jsonb NOT NULL DEFAULT '{}'::jsonb,
    services         jsonb NOT NULL DEFAULT '[]'::jsonb,
    source_addr      text NOT NULL DEFAULT '',
    authority_id     text NOT NULL DEFAULT '',
    derived_health   text NOT NULL DEFAULT 'healthy' CHECK (derived_health IN ('healthy', 'late', 'stale', 'offline', 'unknown')),
    PRIMARY KEY (cluster_id, node_id),
    FOREIGN KEY (cluster_id, node_id) REFERENCES cluster_memberships (cluster_id, node_id)
);

-- ---------------------------------------------------------------- audit
-- Events are inserted by the transaction that makes the change (so an event
-- exists exactly when its change committed) without a hash; the chainer
-- (store.ChainAudit, run by every authority under an advisory lock) then gives
-- committed events their chain position (seq), prev_hash and hash, in batches.
-- Keeping the hash chain off the write path means fenced writes never queue on
-- a chain-head lock. Until chained (normally well under a second) an event is
-- protected only by the append-only trigger.
CREATE TABLE cluster_audit_events (
    id               bigserial PRIMARY KEY,
    seq              bigint UNIQUE,
    at               timestamptz NOT NULL,
    cluster_id       uuid,
    organization_id  uuid,
    actor            text NOT NULL,
    actor_kind       text NOT NULL CHECK (actor_kind IN ('user', 'api-token', 'node', 'system')),
    device           text NOT NULL DEFAULT '',
    source_addr      text NOT NULL DEFAULT '',
    action           text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]{0,99}$'),
    target_kind      text NOT NULL DEFAULT '',
    target_id        text NOT NULL DEFAULT '',
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    risk             jsonb NOT NULL DEFAULT '{}'::jsonb,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    fence_epoch      bigint,
    prev_hash        bytea,
    hash             bytea,
    CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL))
);
CREATE INDEX cluster_audit_events_unchained ON cluster_audit_events (id) WHERE seq IS NULL;
CREATE INDEX cluster_audit_events_cluster ON cluster_audit_events (cluster_id, id);
CREATE INDEX cluster_audit_events_target ON cluster_audit_events (target_kind, target_id, id);
CREATE INDEX cluster_audit_events_action ON cluster_audit_events (action, id);

-- The head of the hash chain, locked by the chainer. It starts at the genesis
-- head of the platform chain, audit.Genesis("platform"):
-- SHA-256("rap-audit-genesis-v1" || 0x00 || "platform").
CREATE TABLE audit_chain_head (
    id    integer PRIMARY KEY CHECK (id = 1),
    seq   bigint NOT NULL,
    hash  bytea NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, sha256('rap-audit-genesis-v1'::bytea || '\x00'::bytea || 'platform'::bytea));

-- Append-only: no DELETE or TRUNCATE; the only UPDATE is the chainer's, which
-- sets seq/prev_hash/hash once on an unchained event and changes nothing else.
CREATE FUNCTION rap_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND NEW.id = OLD.id AND NEW.at = OLD.at
       AND NEW.cluster_id IS NOT DISTINCT FROM OLD.cluster_id
       AND NEW.organization_id IS NOT DISTINCT FROM OLD.organization_id
       AND NEW.actor = OLD.actor AND NEW.actor_kind = OLD.actor_kind AND NEW.device = OLD.device
       AND NEW.source_addr = OLD.source_addr AND NEW.action = OLD.action
       AND NEW.target_kind = OLD.target_kind AND NEW.target_id = OLD.target_id
       AND NEW.outcome = OLD.outcome AND NEW.risk = OLD.risk AND NEW.details = OLD.details
       AND NEW.fence_epoch IS NOT DISTINCT FROM OLD.fence_epoch THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'cluster_audit_events is append-only' USING ERRCODE = 'RF020';
END $$;
CREATE TRIGGER cluster_audit_events_no_update BEFORE UPDATE OR DELETE ON cluster_audit_events
    FOR EACH ROW EXECUTE FUNCTION rap_audit_append_only();
CREATE TRIGGER cluster_audit_events_no_truncate BEFORE TRUNCATE ON cluster_audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION rap_audit_append_only();

-- ---------------------------------------------------------------- fence triggers
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON organizations         FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON clusters              FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON nodes                 FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_groups           FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON cluster_memberships   FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_identities       FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_certificates     FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_join_tokens      FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_join_requests    FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_role_assignments FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON node_service_instances FOR EACH ROW EXECUTE FUNCTION rap_service_fence_check();

---- create above / drop below ----
-- Down migrations are not supported for the core schema: restore from backup.
