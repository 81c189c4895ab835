-- A merchant's people: each signs in with an email (unique across giftd, so that a sign-in
-- needs nothing else) and a password, kept only as its argon2id hash, and optionally a TOTP
-- second factor whose secret is kept encrypted. A temporary password (the first one, or one an
-- owner reset) must be changed at the first sign-in and stops working when it expires. Failed
-- sign-ins lock the account as wrong security codes lock a card number.
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'support', 'finance', 'developer', 'viewer')),
    password_hash TEXT NOT NULL,
    temporary_password_expires_at BIGINT,
    totp_secret BYTEA,
    totp_enabled_at BIGINT,
    totp_last_step BIGINT,
    failed_sign_ins BIGINT NOT NULL DEFAULT 0,
    failure_window_started_at BIGINT,
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT,
    last_sign_in_at BIGINT
);
CREATE INDEX staff_by_merchant ON staff (merchant_id, created_at);

-- A signed-in session, found by the keyed hash of its token (the token itself is never kept).
-- It ends when its staff member signs out, is disabled, changes role or password, or when it
-- has been idle too long or reaches its absolute lifetime (`expires_at`).
CREATE TABLE staff_sessions (
    token_hash BYTEA PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    staff_id TEXT NOT NULL REFERENCES staff (id),
    merchant_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff_id);
