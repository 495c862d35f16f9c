-- 020_auth_revocation_seq: one counter that every revocation of a node's
-- certificate or membership moves, in the revoking transaction.
--
-- Each authority caches the node certificates it verified for the heartbeat
-- route and re-checked every cached serial against node_certificates and
-- cluster_memberships every AuthCacheTTL/2 (1 s): at 50,000 agents one
-- statement with 50,000 serials per second per authority, 13 % of a
-- follower's CPU (issue 24, BenchmarkFleet profile). The refresh now reads
-- this counter first and re-checks the serials only when it moved. The
-- counter is a row, not a sequence: a sequence's nextval is visible before
-- the revoking transaction commits, and a refresh that saw the new value
-- and then the certificate still good would never look again. The row is
-- written only by revocations (rare), so its lock is not contended.
--
-- Each move also draws a new random stamp, and readers compare the stamp:
-- a database restored from a backup, or a replica promoted after losing the
-- last transactions, can hold an older seq, and a later revocation could
-- bring seq back to a value an authority already read; the stamp it draws
-- differs.
CREATE TABLE auth_revocation_seq (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq   bigint NOT NULL,
    stamp uuid NOT NULL
);
INSERT INTO auth_revocation_seq (id, seq, stamp) VALUES (true, 0, gen_random_uuid());

CREATE FUNCTION rap_bump_auth_revocation_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_revocation_seq SET seq = seq + 1, stamp = gen_random_uuid();
    RETURN NULL;
END
$$;

-- What makes GoodCertificateSerials drop a serial: the certificate revoked,
-- its membership revoked, either row deleted or re-keyed. Each of these,
-- and a TRUNCATE, moves the counter.
CREATE TRIGGER node_certificates_revocation AFTER UPDATE ON node_certificates FOR EACH ROW
    WHEN ((OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
        OR OLD.serial IS DISTINCT FROM NEW.serial OR OLD.cluster_id IS DISTINCT FROM NEW.cluster_id OR OLD.node_id IS DISTINCT FROM NEW.node_id)
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();
CREATE TRIGGER node_certificates_delete AFTER DELETE ON node_certificates FOR EACH ROW
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();
CREATE TRIGGER node_certificates_truncate AFTER TRUNCATE ON node_certificates FOR EACH STATEMENT
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();
CREATE TRIGGER cluster_memberships_revocation AFTER UPDATE ON cluster_memberships FOR EACH ROW
    WHEN ((NEW.membership_status = 'revoked' AND OLD.membership_status IS DISTINCT FROM 'revoked')
        OR OLD.cluster_id IS DISTINCT FROM NEW.cluster_id OR OLD.node_id IS DISTINCT FROM NEW.node_id)
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();
CREATE TRIGGER cluster_memberships_delete AFTER DELETE ON cluster_memberships FOR EACH ROW
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();
CREATE TRIGGER cluster_memberships_truncate AFTER TRUNCATE ON cluster_memberships FOR EACH STATEMENT
    EXECUTE FUNCTION rap_bump_auth_revocation_seq();

---- create above / drop below ----
DROP TRIGGER cluster_memberships_truncate ON cluster_memberships;
DROP TRIGGER cluster_memberships_delete ON cluster_memberships;
DROP TRIGGER cluster_memberships_revocation ON cluster_memberships;
DROP TRIGGER node_certificates_truncate ON node_certificates;
DROP TRIGGER node_certificates_delete ON node_certificates;
DROP TRIGGER node_certificates_revocation ON node_certificates;
DROP FUNCTION rap_bump_auth_revocation_seq();
DROP TABLE auth_revocation_seq;
