-- giftd's first schema on PostgreSQL: the same tables, keys and checks as the SQLite
-- migration of the same name. Timestamps are integer milliseconds since the Unix epoch, UTC.
-- Amounts are integer minor units.

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Keys are stored only as keyed hashes (HMAC-SHA-256 under a server key).
CREATE TABLE api_keys (
    key_hash     BYTEA PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE programs (
    seq                   BIGSERIAL PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    merchant_id           TEXT NOT NULL REFERENCES merchants(id),
    name                  TEXT NOT NULL,
    currency              TEXT NOT NULL CHECK (length(currency) = 3),
    denominations         TEXT,            -- comma-separated minor units, or NULL
    min_load              BIGINT CHECK (min_load > 0),
    max_load              BIGINT CHECK (max_load > 0),
    max_balance           BIGINT CHECK (max_balance > 0),
    reloadable            BOOLEAN NOT NULL,
    expiry_months         BIGINT CHECK (expiry_months > 0),
    promotional           BOOLEAN NOT NULL,
    number_prefix         TEXT NOT NULL,
    number_length         BIGINT NOT NULL CHECK (number_length BETWEEN 13 AND 19),
    security_code_length  BIGINT NOT NULL CHECK (security_code_length BETWEEN 4 AND 8),
    promotion_code        TEXT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX programs_by_merchant ON programs (merchant_id, seq);

-- A card's balance and held amount are caches of its ledger accounts (card_available and
-- card_held postings); `giftd verify` recomputes them. The number is stored only encrypted
-- (AES-256-GCM) with a keyed fingerprint for lookup; the security code only as a keyed hash.
CREATE TABLE cards (
    seq                  BIGSERIAL PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    merchant_id          TEXT NOT NULL REFERENCES merchants(id),
    program_id           TEXT NOT NULL REFERENCES programs(id),
    kind                 TEXT NOT NULL CHECK (kind IN ('virtual', 'physical')),
    state                TEXT NOT NULL CHECK (state IN ('inactive', 'active', 'frozen', 'closed')),
    currency             TEXT NOT NULL,
    balance              BIGINT NOT NULL CHECK (balance >= 0),
    held                 BIGINT NOT NULL CHECK (held >= 0 AND held <= balance),
    expires_at           BIGINT,
    closed_reason        TEXT CHECK (closed_reason IN ('deactivated', 'combined', 'transferred')),
    last4                TEXT NOT NULL,
    number_ciphertext    BYTEA NOT NULL,
    number_fingerprint   BYTEA NOT NULL,
    security_code_hash   BYTEA NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (merchant_id, number_fingerprint)
);
CREATE INDEX cards_by_merchant ON cards (merchant_id, seq);

-- One row per business operation on one card. Its postings are part of exactly one journal
-- entry (`entry_id`): its own, or, when an operation moves value between cards (transfer,
-- merge), an entry shared with the other cards' transactions, so all change or none does.
CREATE TABLE transactions (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    card_id         TEXT NOT NULL REFERENCES cards(id),
    type            TEXT NOT NULL CHECK (type IN ('issue', 'activation', 'load', 'redemption',
                        'hold', 'capture', 'release', 'refund', 'void', 'cashout',
                        'transfer_out', 'transfer_in', 'merge_out', 'merge_in', 'adjustment',
                        'expiry')),
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    currency        TEXT NOT NULL,
    balance_before  BIGINT NOT NULL CHECK (balance_before >= 0),
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    reference       TEXT,
    reverses        TEXT REFERENCES transactions(id),
    hold_id         TEXT,
    entry_id        TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX transactions_by_card ON transactions (card_id, seq);
CREATE INDEX transactions_by_reverses ON transactions (reverses) WHERE reverses IS NOT NULL;
-- A transaction is voided at most once.
CREATE UNIQUE INDEX transactions_one_void ON transactions (reverses) WHERE type = 'void';

CREATE TABLE postings (
    id              BIGSERIAL PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES transactions(id),
    entry_id        TEXT NOT NULL,
    account_kind    TEXT NOT NULL CHECK (account_kind IN ('card_available', 'card_held',
                        'program_funding', 'program_redemption', 'program_cashout')),
    owner_id        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount <> 0)
);
CREATE INDEX postings_by_transaction ON postings (transaction_id);
CREATE INDEX postings_by_entry ON postings (entry_id);
CREATE INDEX postings_by_account ON postings (owner_id, account_kind);

-- The ledger is append-only: the database itself refuses to change or remove an entry,
-- whoever asks (TRUNCATE included).
CREATE FUNCTION giftd_refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION giftd_refuse_ledger_change();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION giftd_refuse_ledger_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION giftd_refuse_ledger_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION giftd_refuse_ledger_change();

CREATE TABLE holds (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    merchant_id      TEXT NOT NULL REFERENCES merchants(id),
    card_id          TEXT NOT NULL REFERENCES cards(id),
    transaction_id   TEXT NOT NULL REFERENCES transactions(id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    captured_amount  BIGINT NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'captured', 'released', 'expired')),
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX holds_pending_by_card ON holds (card_id, expires_at) WHERE state = 'pending';
CREATE INDEX holds_pending_by_expiry ON holds (expires_at) WHERE state = 'pending';

-- The stored answer to a request that carried an Idempotency-Key, written in the same
-- database transaction as the request's effect. `scope` names the front-end.
CREATE TABLE idempotency_records (
    merchant_id   TEXT NOT NULL,
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    status        BIGINT NOT NULL,
    body          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, scope, key)
);

-- Wrong security codes counted per card-number fingerprint, whether or not a card has it.
CREATE TABLE code_attempts (
    merchant_id        TEXT NOT NULL,
    fingerprint        BYTEA NOT NULL,
    failures           BIGINT NOT NULL,
    window_started_at  BIGINT,
    locked_until       BIGINT,
    PRIMARY KEY (merchant_id, fingerprint)
);
