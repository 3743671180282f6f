-- Identity (issue 5): platform tenants, login sessions with rotating refresh tokens, TOTP, recovery codes.
ALTER TABLE tenants ADD COLUMN is_platform boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN erased_at timestamptz;

-- A session is one refresh-token family: every rotation stays in it; replaying a used token revokes it.
CREATE TABLE auth_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users(id),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoke_reason   text,
    ip              text,
    user_agent      text
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id, created_at DESC);

-- Refresh tokens are opaque; only their SHA-256 is stored.
CREATE TABLE refresh_tokens (
    token_hash      text PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES auth_sessions(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- TOTP: secrets encrypted at rest (AES-GCM, key from the secrets interface); last_step stops code reuse.
CREATE TABLE user_mfa (
    user_id         uuid PRIMARY KEY REFERENCES users(id),
    secret_enc      text NOT NULL,
    confirmed_at    timestamptz,
    last_step       bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mfa_recovery_codes (
    id              bigserial PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users(id),
    code_hash       text NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id);
