-- 003_api_tokens: owner API tokens (bootstrap credential for the owner JSON API
-- until an owner account has MFA). Only a SHA-256 of the secret is stored.
CREATE TABLE owner_api_tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         text NOT NULL DEFAULT 'platform_owner' CHECK (role IN ('platform_owner', 'platform_admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    fence_epoch  bigint NOT NULL DEFAULT 0
);
CREATE TRIGGER fence BEFORE INSERT OR DELETE ON owner_api_tokens FOR EACH ROW EXECUTE FUNCTION rap_fence_check();
CREATE TRIGGER fence_revoke BEFORE UPDATE OF revoked_at, secret_hash, role ON owner_api_tokens FOR EACH ROW EXECUTE FUNCTION rap_fence_check();

---- create above / drop below ----
DROP TABLE owner_api_tokens;
