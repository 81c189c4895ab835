-- The Clover Gift Card API facade (`/clover/v1`): card tokens and multi-lock numbers.
-- Timestamps are integer milliseconds since the Unix epoch, UTC.

-- A Clover card token (`clv_...`) stands for one card of one merchant. Only a keyed hash of
-- the token is stored (HMAC-SHA-256 under a key derived from the master key), never the token.
-- A revoked token finds nothing.
CREATE TABLE clover_tokens (
    token_hash   BLOB PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    card_id      TEXT NOT NULL REFERENCES cards(id),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX clover_tokens_by_card ON clover_tokens (card_id);

-- A Clover lock (`capture: false`) is a giftd hold; Clover names it by a small integer,
-- `lock_id`, numbered per card from 1 under the card's lock.
CREATE TABLE clover_locks (
    hold_id      TEXT PRIMARY KEY REFERENCES holds(id),
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    card_id      TEXT NOT NULL REFERENCES cards(id),
    lock_id      INTEGER NOT NULL CHECK (lock_id > 0),
    created_at   INTEGER NOT NULL,
    UNIQUE (card_id, lock_id)
);
