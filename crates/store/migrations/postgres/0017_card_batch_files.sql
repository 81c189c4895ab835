-- Card batches made by a running server (docs/OPERATIONS.md "Card stock"): the printer's file
-- of a generated batch is kept encrypted, written in the same transaction as its cards, until
-- the caller says it has it (by its SHA-256); then only the digest and the time are kept.
CREATE TABLE card_batch_files (
    batch_id      TEXT PRIMARY KEY REFERENCES card_stock_batches(id),
    merchant_id   TEXT NOT NULL,
    sha256        BYTEA NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    ciphertext    BYTEA,
    collected_at  BIGINT,
    CHECK ((ciphertext IS NULL) = (collected_at IS NOT NULL))
);
CREATE INDEX card_stock_batches_of_merchant ON card_stock_batches (merchant_id, id);
