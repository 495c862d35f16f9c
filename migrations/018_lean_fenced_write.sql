-- 018_lean_fenced_write: less work per fenced mutation (issue 24).
--
-- 1. An audit event is inserted unchained (seq NULL), so the unique index on
--    seq held one NULL entry per event waiting for the chainer. The index is
--    now partial (chained events only): an INSERT writes one index entry
--    fewer. Every query by seq (seq = $1, seq > $1, seq <= $1) implies
--    seq IS NOT NULL and still uses it.
--
-- 2. The fence check on every fenced row no longer reads authority_fence
--    again once rap_begin_fenced checked it in this transaction:
--    rap_begin_fenced takes the fence lock shared (held until the transaction
--    ends, so no claim can move the fence before then) and records the epoch
--    it confirmed in the transaction-local setting rap.fence_held; the row
--    check accepts a declared epoch equal to it. A transaction that declares
--    an epoch by hand (set_config('rap.fence_epoch', …) without
--    rap_begin_fenced) is checked as before: lock, then read the fence.
--    Settings made with set_config(…, true) end with the transaction, and
--    rap_begin_fenced runs at its top level, before any savepoint. The
--    fence guards against a stale leader of this software, which writes
--    only through rap_begin_fenced; it is no barrier to a client that runs
--    its own SQL with the application's role (such a client can set both
--    settings by hand, or call rap_claim_fence), as it was not before.
--
-- 3. The row check of fenced tables (rap_fence_check) makes that comparison
--    itself instead of calling rap_current_fence, one PL/pgSQL call fewer per
--    row.
--
-- 4. The append-only guard of cluster_audit_events runs only for an UPDATE
--    it refuses: its condition is the trigger's WHEN clause, which the
--    executor evaluates without calling PL/pgSQL, so the chainer's UPDATE
--    of each event (the one allowed change: seq, prev_hash and hash set once)
--    no longer calls the function. DELETE has its own trigger: a WHEN
--    clause that reads NEW cannot belong to a trigger that fires on DELETE.

ALTER TABLE cluster_audit_events DROP CONSTRAINT cluster_audit_events_seq_key;
CREATE UNIQUE INDEX cluster_audit_events_seq_key ON cluster_audit_events (seq) WHERE seq IS NOT NULL;

CREATE OR REPLACE FUNCTION rap_current_fence() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE declared text; cur bigint;
BEGIN
    declared := current_setting('rap.fence_epoch', true);
    IF declared IS NULL OR declared = '' THEN
        RAISE EXCEPTION 'fence_required: write to a fenced table outside a fenced transaction'
            USING ERRCODE = 'RF002';
    END IF;
    IF declared = current_setting('rap.fence_held', true) THEN
        RETURN declared::bigint; -- confirmed by rap_begin_fenced, lock held since
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1380012102);
    SELECT epoch INTO cur FROM authority_fence WHERE id = 1;
    IF cur <> declared::bigint THEN
        RAISE EXCEPTION 'stale_epoch: transaction epoch % but fence is at %', declared, cur
            USING ERRCODE = 'RF001';
    END IF;
    RETURN cur;
END $$;

CREATE OR REPLACE FUNCTION rap_begin_fenced(p_epoch bigint, p_lock_timeout_ms bigint, p_statement_timeout_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE cur bigint;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
    PERFORM set_config('statement_timeout', p_statement_timeout_ms::text, true);
    PERFORM set_config('rap.fence_epoch', p_epoch::text, true);
    PERFORM set_config('rap.fence_held', '', true);
    -- A fenced transaction left open (its authority paused or cut off) must not
    -- hold the fence lock and keep a new leader from claiming: the server ends
    -- the session after this idle time.
    PERFORM set_config('idle_in_transaction_session_timeout', (2 * p_lock_timeout_ms)::text, true);
    cur := rap_current_fence();
    PERFORM set_config('rap.fence_held', cur::text, true);
    RETURN cur;
END $$;

CREATE OR REPLACE FUNCTION rap_fence_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE cur bigint; held text;
BEGIN
    held := current_setting('rap.fence_held', true);
    IF held <> '' AND held = current_setting('rap.fence_epoch', true) THEN
        cur := held::bigint;
    ELSE
        cur := rap_current_fence();
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.fence_epoch := cur;
    RETURN NEW;
END $$;

DROP TRIGGER cluster_audit_events_no_update ON cluster_audit_events;
CREATE TRIGGER cluster_audit_events_no_update BEFORE UPDATE ON cluster_audit_events
    FOR EACH ROW
    WHEN (OLD.seq IS NOT NULL OR NEW.seq IS NULL
          OR (NEW.id, NEW.at, NEW.cluster_id, NEW.organization_id, NEW.actor, NEW.actor_kind, NEW.device,
              NEW.source_addr, NEW.action, NEW.target_kind, NEW.target_id, NEW.outcome, NEW.risk, NEW.details,
              NEW.fence_epoch)
             IS DISTINCT FROM
             (OLD.id, OLD.at, OLD.cluster_id, OLD.organization_id, OLD.actor, OLD.actor_kind, OLD.device,
              OLD.source_addr, OLD.action, OLD.target_kind, OLD.target_id, OLD.outcome, OLD.risk, OLD.details,
              OLD.fence_epoch))
    EXECUTE FUNCTION rap_audit_append_only();
CREATE TRIGGER cluster_audit_events_no_delete BEFORE DELETE ON cluster_audit_events
    FOR EACH ROW EXECUTE FUNCTION rap_audit_append_only();

---- create above / drop below ----

DROP TRIGGER cluster_audit_events_no_delete ON cluster_audit_events;
DROP TRIGGER cluster_audit_events_no_update ON cluster_audit_events;
CREATE TRIGGER cluster_audit_events_no_update BEFORE UPDATE OR DELETE ON cluster_audit_events
    FOR EACH ROW EXECUTE FUNCTION rap_audit_append_only();

CREATE OR REPLACE FUNCTION rap_fence_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE cur bigint;
BEGIN
    cur := rap_current_fence();
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.fence_epoch := cur;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION rap_begin_fenced(p_epoch bigint, p_lock_timeout_ms bigint, p_statement_timeout_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
    PERFORM set_config('statement_timeout', p_statement_timeout_ms::text, true);
    PERFORM set_config('rap.fence_epoch', p_epoch::text, true);
    PERFORM set_config('idle_in_transaction_session_timeout', (2 * p_lock_timeout_ms)::text, true);
    RETURN rap_current_fence();
END $$;

CREATE OR REPLACE FUNCTION rap_current_fence() RETURNS bigint LANGUAGE plpgsql AS $$
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

DROP INDEX cluster_audit_events_seq_key;
ALTER TABLE cluster_audit_events ADD CONSTRAINT cluster_audit_events_seq_key UNIQUE (seq);
