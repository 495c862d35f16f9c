-- 017_access_sessions: organization access sessions (issue 18, spec C9).
--
-- An access session is an organization user's grant to reach one of the
-- organization's resources through one of its endpoints, decided by the
-- organization's policies (authority.DecideAccess) at request time. The
-- names of the resource and endpoint are kept as they were at the grant so
-- the record survives their deletion; the granting policy is named by id.
-- Admins list and revoke them; revocation is a status change read by every
-- later check, so it takes effect at once. Denied requests are not rows:
-- they are audit events of the organization.

CREATE TABLE org_access_sessions (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    user_id          uuid NOT NULL REFERENCES admin_users (id),
    resource_id      uuid NOT NULL,
    resource_name    text NOT NULL,
    endpoint_id      uuid NOT NULL,
    endpoint_name    text NOT NULL,
    policy_id        uuid NOT NULL,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    revoked_by       text,
    fence_epoch      bigint NOT NULL DEFAULT 0,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX org_access_sessions_org ON org_access_sessions (organization_id, created_at DESC);
CREATE INDEX org_access_sessions_user ON org_access_sessions (user_id) WHERE status = 'active';

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON org_access_sessions FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE org_access_sessions;
