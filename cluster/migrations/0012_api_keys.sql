-- API keys for scripts: the key is shown once; only its SHA-256 is stored. A key acts for its user with
-- a role no wider than the user's; a revoked or expired key never authenticates.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    user_id      uuid NOT NULL REFERENCES users(id),
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'manager', 'user', 'auditor')),
    key_hash     text NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at, id);
