-- Reports and card stock. Timestamps are integer milliseconds since the Unix epoch, UTC.

-- Reports read the ledger by time: activity per day scans a merchant's transactions in a
-- date range; liability and dormancy filter postings by their transaction's time.
CREATE INDEX transactions_by_merchant_time ON transactions (merchant_id, created_at);

-- One row per batch of card stock written by `giftd cards generate` or `giftd cards import`,
-- in the same transaction as its cards. `source_digest` is the SHA-256 of an import file, so
-- importing the same file again finds the batch instead of writing its cards twice.
CREATE TABLE card_stock_batches (
    id             TEXT PRIMARY KEY,
    merchant_id    TEXT NOT NULL REFERENCES merchants(id),
    program_id     TEXT NOT NULL REFERENCES programs(id),
    source         TEXT NOT NULL CHECK (source IN ('generated', 'imported')),
    source_digest  BLOB NOT NULL,
    cards          INTEGER NOT NULL CHECK (cards >= 0),
    value          INTEGER NOT NULL CHECK (value >= 0),
    created_at     INTEGER NOT NULL,
    UNIQUE (merchant_id, source_digest)
);
