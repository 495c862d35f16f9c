-- 005_admin_accounts: platform admin accounts and their second factors (users,
-- TOTP, recovery codes). Secrets are stored as hashes only; TOTP secrets are
-- sealed by the application (format byte + ciphertext) because the server must
-- read them; a TOTP time step only moves forward (AdvanceTOTPStep is a
-- compare-and-set). Not fenced: logins must work on every authority, also
-- without quorum; account changes through the API still run through the
-- authority's Fenced operation (leader + quorum + audit).

CREATE TABLE admin_users (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    password_hash      text NOT NULL DEFAULT '',
    -- platform role; organization roles come later (organization_id leaves room).
    platform_role      text NOT NULL CHECK (platform_role IN ('platform_owner', 'platform_admin', 'none')),
    organization_id    uuid REFERENCES organizations (id),
    disabled           boolean NOT NULL DEFAULT false,
    setup_secret_hash  bytea CHECK (setup_secret_hash IS NULL OR length(setup_secret_hash) = 32),
    setup_expires_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_mfa (
    user_id         uuid PRIMARY KEY REFERENCES admin_users (id) ON DELETE CASCADE,
    sealed_secret   bytea,             -- confirmed TOTP secret (sealed); NULL: not enrolled
    pending_secret  bytea,             -- enrollment in progress (sealed)
    last_step       bigint NOT NULL DEFAULT 0,
    enrolled_at     timestamptz
);

CREATE TABLE admin_recovery_codes (
    user_id   uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    used_at   timestamptz,
    PRIMARY KEY (user_id, hash)
);

---- create above / drop below ----
DROP TABLE admin_recovery_codes;
DROP TABLE admin_mfa;
DROP TABLE admin_users;
