-- The Adyen facades (Terminal API at `/sync`, Stored Value API v46): the references giftd gives
-- Adyen clients for the transactions it made for them, so that a later reversal can name them.
-- Timestamps are integer milliseconds since the Unix epoch, UTC.

-- A reference is a `POITransactionID.TransactionID` of the Terminal API (`api` 'terminal') or a
-- `pspReference` of the Stored Value API (`api` 'stored_value'): 16 random letters and digits,
-- drawn by giftd. One reference names every transaction one request made (a Terminal API
-- StoredValueRequest may carry several items); a request that moved no value has none here.
-- Rows are written in the transaction that made the transactions, and never change.
CREATE TABLE adyen_references (
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    api             TEXT NOT NULL CHECK (api IN ('terminal', 'stored_value')),
    reference       TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 64),
    transaction_id  TEXT NOT NULL REFERENCES transactions(id),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, api, reference, transaction_id)
);
