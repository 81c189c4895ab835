-- The Clover Gift Card API facade (`/clover/v1`) on PostgreSQL: the same tables, keys and
-- checks as the SQLite migration of the same name. Timestamps are integer milliseconds since the
-- Unix epoch, UTC.

-- A Clover card token (`clv_...`) stands for one card of one merchant. Only a keyed hash of
-- the token is stored (HMAC-SHA-256 under a key derived from the master key), never the token.
-- A revoked token finds nothing.
CREATE TABLE clover_tokens (
    token_hash   BYTEA PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    card_id      TEXT NOT NULL REFERENCES cards(id),
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX clover_tokens_by_card ON clover_tokens (card_id);

-- A Clover lock (`capture: false`) is a giftd hold; Clover names it by a small integer,
-- `lock_id`, numbered per card from 1 under the card's lock.
CREATE TABLE clover_locks (
    hold_id      TEXT PRIMARY KEY REFERENCES holds(id),
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    card_id      TEXT NOT NULL REFERENCES cards(id),
    lock_id      BIGINT NOT NULL CHECK (lock_id > 0),
    created_at   BIGINT NOT NULL,
    UNIQUE (card_id, lock_id)
);
