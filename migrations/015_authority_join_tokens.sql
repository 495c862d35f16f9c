-- 015_authority_join_tokens: single-use, short-lived credentials with which a
-- new authority joins the group (rap-authority run --join --join-token) once
-- owners have MFA and owner API tokens no longer work. Created by an owner
-- with step-up (rapctl authority join-token create). Only a SHA-256 of the
-- secret is stored. The first use binds the token to one authority id and its
-- Raft member key; joined_at marks the join done, after which the token is
-- dead. Every write is fenced.
CREATE TABLE authority_join_tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at AND expires_at <= created_at + interval '1 hour'),
    member_id    text CHECK (member_id IS NULL OR length(member_id) BETWEEN 1 AND 200),
    member_key   bytea CHECK (member_key IS NULL OR length(member_key) = 32),
    bound_at     timestamptz,
    joined_at    timestamptz,
    revoked_at   timestamptz,
    fence_epoch  bigint NOT NULL DEFAULT 0,
    CHECK ((member_id IS NULL) = (member_key IS NULL) AND (member_id IS NULL) = (bound_at IS NULL)),
    CHECK (joined_at IS NULL OR member_id IS NOT NULL)
);
CREATE INDEX authority_join_tokens_created ON authority_join_tokens (created_at DESC);
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE ON authority_join_tokens FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE authority_join_tokens;
