-- 010_service_reports: what node agents report about their service workloads
-- (stage C5), written with each heartbeat flush.
--
--  * reported_state takes every supervisor state (pending, starting, running,
--    healthy, unhealthy, restarting, crash_loop, stopped, blocked, failed);
--  * health, restarts, reported_since (when the instance entered its state),
--    reason (why it is not healthy) and last_exit (code/signal, time, last
--    output lines) are the rest of the report;
--  * a change into crash_loop, blocked or failed appends an audit event
--    (actor: the node) in the same transaction as the flush.
--
-- These columns are observations, not desired state: they are not fenced
-- (rap_service_fence_check lets them through) and do not mark snapshots dirty.

ALTER TABLE node_service_instances DROP CONSTRAINT node_service_instances_reported_state_check;
ALTER TABLE node_service_instances ADD CONSTRAINT node_service_instances_reported_state_check
    CHECK (reported_state IN ('unknown', 'pending', 'starting', 'running', 'healthy', 'unhealthy', 'restarting', 'crash_loop', 'stopped', 'blocked', 'failed'));
ALTER TABLE node_service_instances
    ADD COLUMN health         text NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
    ADD COLUMN restarts       integer NOT NULL DEFAULT 0 CHECK (restarts >= 0),
    ADD COLUMN reported_since timestamptz,
    ADD COLUMN reason         text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    ADD COLUMN last_exit      jsonb;

CREATE FUNCTION rap_service_report_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cluster_audit_events (at, cluster_id, organization_id, actor, actor_kind, action, target_kind, target_id, outcome, details)
    VALUES (now(), NEW.cluster_id, NEW.organization_id, NEW.node_id::text, 'node', 'service.reported.' || NEW.reported_state,
            'service', NEW.id::text, 'failed',
            jsonb_build_object('node_id', NEW.node_id, 'service', NEW.service_type, 'instance', NEW.service_instance_id,
                               'from', OLD.reported_state, 'to', NEW.reported_state, 'reason', NEW.reason,
                               'restarts', NEW.restarts, 'last_exit', NEW.last_exit));
    RETURN NULL;
END $$;
CREATE TRIGGER service_report_audit AFTER UPDATE OF reported_state ON node_service_instances
    FOR EACH ROW WHEN (NEW.reported_state IN ('crash_loop', 'blocked', 'failed') AND NEW.reported_state IS DISTINCT FROM OLD.reported_state)
    EXECUTE FUNCTION rap_service_report_audit();

---- create above / drop below ----
DROP TRIGGER service_report_audit ON node_service_instances;
DROP FUNCTION rap_service_report_audit();
ALTER TABLE node_service_instances DROP COLUMN health, DROP COLUMN restarts, DROP COLUMN reported_since, DROP COLUMN reason, DROP COLUMN last_exit;
UPDATE node_service_instances SET reported_state = 'unknown' WHERE reported_state NOT IN ('unknown', 'starting', 'running', 'stopped', 'failed', 'blocked');
ALTER TABLE node_service_instances DROP CONSTRAINT node_service_instances_reported_state_check;
ALTER TABLE node_service_instances ADD CONSTRAINT node_service_instances_reported_state_check
    CHECK (reported_state IN ('unknown', 'starting', 'running', 'stopped', 'failed', 'blocked'));
