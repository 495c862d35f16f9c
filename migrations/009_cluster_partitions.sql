-- 009_cluster_partitions: the platform owner's partition decisions per cluster.
--
-- The agreed partition/authority state of a cluster lives in the authority
-- FSM (a quorum decides it; every authority enforces it from memory). These
-- tables are its record in the source of truth:
--
--  * cluster_partitions: the current state of each cluster that ever left
--    'normal' (no row means normal). It marks the cluster's snapshots dirty,
--    so every node learns the state in its next signed snapshot;
--  * cluster_partition_events: the history of owner actions (split, promote,
--    merge, fence, recover) with the state before and after, append-only.
--
-- Both are fenced: only the leader's fenced transactions write them.

CREATE TABLE cluster_partitions (
    cluster_id   uuid PRIMARY KEY REFERENCES clusters (id),
    state        text NOT NULL CHECK (state IN ('normal', 'degraded', 'promoted', 'fenced')),
    reason       text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    set_by       text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 255),
    raft_index   bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0
);

CREATE TABLE cluster_partition_events (
    id           bigserial PRIMARY KEY,
    cluster_id   uuid NOT NULL REFERENCES clusters (id),
    action       text NOT NULL CHECK (action IN ('split', 'promote', 'merge', 'fence', 'recover')),
    from_state   text NOT NULL CHECK (from_state IN ('normal', 'degraded', 'promoted', 'fenced')),
    to_state     text NOT NULL CHECK (to_state IN ('normal', 'degraded', 'promoted', 'fenced')),
    reason       text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 255),
    epoch        bigint NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    fence_epoch  bigint NOT NULL DEFAULT 0
);
CREATE INDEX cluster_partition_events_cluster ON cluster_partition_events (cluster_id, id DESC);

CREATE FUNCTION rap_partition_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cluster_partition_events is append-only' USING ERRCODE = 'RF020';
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON cluster_partition_events FOR EACH ROW EXECUTE FUNCTION rap_partition_events_append_only();

CREATE TRIGGER snapshot_dirty AFTER INSERT OR UPDATE OR DELETE ON cluster_partitions FOR EACH ROW EXECUTE FUNCTION rap_snapshot_dirty();

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON cluster_partitions       FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON cluster_partition_events FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE cluster_partition_events;
DROP TABLE cluster_partitions;
DROP FUNCTION rap_partition_events_append_only();
