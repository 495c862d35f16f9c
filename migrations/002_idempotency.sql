-- 002_idempotency: responses of fenced requests by idempotency key, so a retried
-- request (after an unknown outcome) never applies twice.
CREATE TABLE idempotency_keys (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    actor       text NOT NULL,
    action      text NOT NULL,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

---- create above / drop below ----
DROP TABLE idempotency_keys;
