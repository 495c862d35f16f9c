-- 012_releases: version storage and rollout policy (spec stage C19).
--
-- Trust: the release root public keys and their threshold live in the
-- authority FSM (fsm.SetReleaseRoots, agreed by a quorum). Everything here is
-- verifiable against them, and PostgreSQL stays authoritative for what was
-- published, rollout policy, approvals and audit:
--
--  * release_key_sets: root-signed sets of release-signing keys, as published
--    (the signed envelope), append-only, versions strictly increasing;
--  * release_artifacts + release_artifact_chunks: content-addressed artifact
--    bytes (sha256 primary key), stored in chunks of at most 1 MiB so that
--    neither upload nor serving ever holds an artifact in memory. Immutable
--    once complete (size and sha256 verified by streaming the chunks);
--  * releases + release_platforms: signed manifests (the envelope as signed)
--    and their per-OS/architecture artifacts;
--  * release_channels: the release at the head of each product channel
--    (stable = last known good, current, candidate);
--  * release_channel_assignments: which channel a cluster, group or node
--    follows, per product;
--  * rollout_policies: one rollout of a target release in a cluster (canary,
--    waves with soak, failure threshold, pause/resume/rollback/pin state);
--  * node_update_runs: each node's update attempts as the agent reports them
--    (observations, like heartbeats: not fenced).
--
-- Everything but node_update_runs is fenced.

CREATE TABLE release_key_sets (
    version          bigint PRIMARY KEY CHECK (version > 0),
    digest           text NOT NULL UNIQUE CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    envelope         bytea NOT NULL CHECK (length(envelope) <= 262144),
    roots_version    bigint NOT NULL CHECK (roots_version > 0),
    signing_key_ids  text[] NOT NULL,
    revoked_key_ids  text[] NOT NULL DEFAULT '{}',
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL CHECK (expires_at > issued_at),
    published_by     text NOT NULL CHECK (length(published_by) BETWEEN 1 AND 255),
    published_at     timestamptz NOT NULL DEFAULT now(),
    fence_epoch      bigint NOT NULL DEFAULT 0
);

CREATE TABLE release_artifacts (
    sha256        text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint NOT NULL CHECK (size > 0 AND size <= 1073741824),
    received      bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
    -- generation counts resets after a failed verification, so a completion
    -- decided on one upload can never mark another upload's bytes complete.
    generation    integer NOT NULL DEFAULT 0,
    complete      boolean NOT NULL DEFAULT false CHECK (NOT complete OR received = size),
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    fence_epoch   bigint NOT NULL DEFAULT 0
);

CREATE TABLE release_artifact_chunks (
    sha256        text NOT NULL REFERENCES release_artifacts (sha256),
    chunk_offset  bigint NOT NULL CHECK (chunk_offset >= 0),
    data          bytea NOT NULL CHECK (length(data) BETWEEN 1 AND 1048576),
    fence_epoch   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (sha256, chunk_offset)
);

-- Immutability: a complete artifact and its chunks never change or go away;
-- chunks are never rewritten in place (an incomplete upload may be reset).
CREATE FUNCTION rap_release_artifact_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'release_artifacts' THEN
        IF OLD.complete THEN
            RAISE EXCEPTION 'release artifact % is complete and immutable', OLD.sha256 USING ERRCODE = 'RF020';
        END IF;
        IF TG_OP = 'UPDATE' AND (NEW.sha256 <> OLD.sha256 OR NEW.size <> OLD.size) THEN
            RAISE EXCEPTION 'release artifact identity is immutable' USING ERRCODE = 'RF020';
        END IF;
    ELSE
        IF TG_OP = 'UPDATE' THEN
            RAISE EXCEPTION 'release artifact chunks are never rewritten' USING ERRCODE = 'RF020';
        END IF;
        IF TG_OP = 'INSERT' THEN
            IF EXISTS (SELECT 1 FROM release_artifacts WHERE sha256 = NEW.sha256 AND complete) THEN
                RAISE EXCEPTION 'release artifact % is complete and immutable', NEW.sha256 USING ERRCODE = 'RF020';
            END IF;
            RETURN NEW;
        END IF;
        IF EXISTS (SELECT 1 FROM release_artifacts WHERE sha256 = OLD.sha256 AND complete) THEN
            RAISE EXCEPTION 'release artifact % is complete and immutable', OLD.sha256 USING ERRCODE = 'RF020';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON release_artifacts FOR EACH ROW EXECUTE FUNCTION rap_release_artifact_immutable();
CREATE TRIGGER immutable BEFORE INSERT OR UPDATE OR DELETE ON release_artifact_chunks FOR EACH ROW EXECUTE FUNCTION rap_release_artifact_immutable();

CREATE TABLE releases (
    id                uuid PRIMARY KEY,
    product           text NOT NULL CHECK (product ~ '^[a-z][a-z0-9-]{0,63}$'),
    version           text NOT NULL CHECK (length(version) BETWEEN 5 AND 64),
    digest            text NOT NULL UNIQUE CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    envelope          bytea NOT NULL CHECK (length(envelope) <= 262144),
    signing_key_id    text NOT NULL CHECK (signing_key_id ~ '^[0-9a-f]{16}$'),
    key_set_version   bigint NOT NULL REFERENCES release_key_sets (version),
    channels          text[] NOT NULL CHECK (channels <@ ARRAY['stable', 'current', 'candidate']::text[] AND cardinality(channels) > 0),
    min_upgrade_from  text NOT NULL DEFAULT '',
    postgres_schema   integer NOT NULL DEFAULT 0 CHECK (postgres_schema >= 0),
    migration         jsonb NOT NULL DEFAULT '{}',
    source_revision   text NOT NULL,
    build_time        timestamptz NOT NULL,
    issued_at         timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL CHECK (expires_at > issued_at),
    status            text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'blocklisted')),
    status_reason     text NOT NULL DEFAULT '' CHECK (length(status_reason) <= 500),
    published_by      text NOT NULL CHECK (length(published_by) BETWEEN 1 AND 255),
    published_at      timestamptz NOT NULL DEFAULT now(),
    fence_epoch       bigint NOT NULL DEFAULT 0,
    UNIQUE (product, version)
);
CREATE INDEX releases_product ON releases (product, published_at DESC);

CREATE TABLE release_platforms (
    release_id  uuid NOT NULL REFERENCES releases (id),
    os          text NOT NULL CHECK (os ~ '^[a-z0-9-]{1,16}$'),
    arch        text NOT NULL CHECK (arch ~ '^[a-z0-9-]{1,16}$'),
    sha256      text NOT NULL REFERENCES release_artifacts (sha256),
    fence_epoch bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (release_id, os, arch)
);
CREATE INDEX release_platforms_sha256 ON release_platforms (sha256);

-- A published manifest and its platforms are never edited (only the status
-- of a release moves: published <-> blocklisted).
CREATE FUNCTION rap_release_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'releases' AND TG_OP = 'UPDATE'
       AND NEW.id = OLD.id AND NEW.product = OLD.product AND NEW.version = OLD.version AND NEW.digest = OLD.digest
       AND NEW.envelope = OLD.envelope AND NEW.key_set_version = OLD.key_set_version THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'RF020';
END $$;
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON releases FOR EACH ROW EXECUTE FUNCTION rap_release_immutable();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON release_platforms FOR EACH ROW EXECUTE FUNCTION rap_release_immutable();

CREATE FUNCTION rap_release_key_sets_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'release_key_sets is append-only' USING ERRCODE = 'RF020';
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON release_key_sets FOR EACH ROW EXECUTE FUNCTION rap_release_key_sets_append_only();

CREATE TABLE release_channels (
    product      text NOT NULL CHECK (product ~ '^[a-z][a-z0-9-]{0,63}$'),
    channel      text NOT NULL CHECK (channel IN ('stable', 'current', 'candidate')),
    release_id   uuid NOT NULL REFERENCES releases (id),
    set_by       text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 255),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (product, channel)
);

CREATE TABLE release_channel_assignments (
    cluster_id   uuid NOT NULL REFERENCES clusters (id),
    scope_kind   text NOT NULL CHECK (scope_kind IN ('cluster', 'group', 'node')),
    scope_id     text NOT NULL,
    product      text NOT NULL CHECK (product ~ '^[a-z][a-z0-9-]{0,63}$'),
    channel      text NOT NULL CHECK (channel IN ('stable', 'current', 'candidate')),
    set_by       text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 255),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, scope_kind, scope_id, product)
);

CREATE TABLE rollout_policies (
    id                  uuid PRIMARY KEY,
    cluster_id          uuid NOT NULL REFERENCES clusters (id),
    product             text NOT NULL CHECK (product ~ '^[a-z][a-z0-9-]{0,63}$'),
    target_release_id   uuid NOT NULL REFERENCES releases (id),
    rollback_release_id uuid REFERENCES releases (id),
    canary_count        integer NOT NULL DEFAULT 1 CHECK (canary_count >= 0),
    canary_percent      integer NOT NULL DEFAULT 0 CHECK (canary_percent BETWEEN 0 AND 100),
    wave_percent        integer NOT NULL DEFAULT 25 CHECK (wave_percent BETWEEN 1 AND 100),
    soak_seconds        integer NOT NULL DEFAULT 300 CHECK (soak_seconds >= 0),
    failure_threshold   integer NOT NULL DEFAULT 1 CHECK (failure_threshold >= 1),
    update_deadline_seconds integer NOT NULL DEFAULT 120 CHECK (update_deadline_seconds > 0),
    state               text NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'completed', 'rolled_back', 'pinned')),
    current_wave        integer NOT NULL DEFAULT 0 CHECK (current_wave >= 0),
    wave_started_at     timestamptz,
    state_reason        text NOT NULL DEFAULT '' CHECK (length(state_reason) <= 500),
    created_by          text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    fence_epoch         bigint NOT NULL DEFAULT 0
);
-- At most one open rollout per cluster and product.
CREATE UNIQUE INDEX rollout_policies_open ON rollout_policies (cluster_id, product) WHERE state IN ('running', 'paused', 'halted', 'pinned');

CREATE TABLE node_update_runs (
    id             bigserial PRIMARY KEY,
    rollout_id     uuid REFERENCES rollout_policies (id),
    cluster_id     uuid NOT NULL REFERENCES clusters (id),
    node_id        uuid NOT NULL,
    product        text NOT NULL CHECK (product ~ '^[a-z][a-z0-9-]{0,63}$'),
    current_version text NOT NULL DEFAULT '' CHECK (length(current_version) <= 64),
    from_version   text NOT NULL DEFAULT '' CHECK (length(from_version) <= 64),
    to_version     text NOT NULL CHECK (length(to_version) BETWEEN 1 AND 64),
    wave           integer NOT NULL DEFAULT 0,
    state          text NOT NULL CHECK (state IN ('idle', 'checking', 'downloading', 'verifying', 'staging', 'migrating', 'starting',
                       'health_checking', 'promoting', 'running', 'rollback_required', 'rolling_back', 'rolled_back', 'failed', 'fenced')),
    last_failure   text NOT NULL DEFAULT '' CHECK (length(last_failure) <= 500),
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    -- One row per attempt at a version: later reports of it update the row.
    UNIQUE (cluster_id, node_id, product, to_version)
);
CREATE INDEX node_update_runs_node ON node_update_runs (cluster_id, node_id, updated_at DESC);
CREATE INDEX node_update_runs_rollout ON node_update_runs (rollout_id, wave);

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_key_sets            FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_artifacts           FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_artifact_chunks     FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON releases                    FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_platforms           FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_channels            FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON release_channel_assignments FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON rollout_policies            FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

-- Desired versions and the blocklist travel in signed snapshots: a rollout
-- change marks its cluster dirty, a release status change (blocklist) every
-- cluster.
CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON rollout_policies FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();
CREATE TRIGGER snapshot_dirty AFTER UPDATE OF status ON releases FOR EACH STATEMENT EXECUTE FUNCTION rap_snapshot_dirty_all();

---- create above / drop below ----
DROP TABLE node_update_runs;
DROP TABLE rollout_policies;
DROP TABLE release_channel_assignments;
DROP TABLE release_channels;
DROP TABLE release_platforms;
DROP TABLE releases;
DROP TABLE release_artifact_chunks;
DROP TABLE release_artifacts;
DROP TABLE release_key_sets;
DROP FUNCTION rap_release_key_sets_append_only();
DROP FUNCTION rap_release_immutable();
DROP FUNCTION rap_release_artifact_immutable();
