-- 006_admin_sessions: sessions, trusted devices, lockouts and step-up grants of
-- platform admins (hashes of their tokens only), and the audit log's privileges.
-- Not fenced, for the same reason as 005.

CREATE TABLE admin_sessions (
    id            bytea PRIMARY KEY CHECK (length(id) = 32),
    user_id       uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    mfa_at        timestamptz,
    device_id     bytea,
    source_net    cidr,
    trusted       boolean NOT NULL DEFAULT false,
    idle_timeout  interval NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE admin_devices (
    id            bytea PRIMARY KEY CHECK (length(id) = 32),
    user_id       uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    networks      cidr[] NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_devices_user ON admin_devices (user_id);

CREATE TABLE admin_lockouts (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 400),
    state       json NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_step_up_grants (
    session_id  bytea NOT NULL CHECK (length(session_id) = 32),
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target      text NOT NULL CHECK (length(target) <= 1000),
    user_id     uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (session_id, action, target)
);
CREATE INDEX admin_step_up_grants_expires ON admin_step_up_grants (expires_at);

-- The audit log is append-only for every role but its owner.
REVOKE UPDATE, DELETE, TRUNCATE ON cluster_audit_events FROM PUBLIC;

---- create above / drop below ----
DROP TABLE admin_step_up_grants;
DROP TABLE admin_lockouts;
DROP TABLE admin_devices;
DROP TABLE admin_sessions;
