-- Adjustments (docs/STAFF.md "Adjustments"): value put on or taken off a card by a person, for
-- a reason, against the program's adjustment account; above the merchant's threshold a second
-- person approves it first. Postings gain that account, and the breakage account that expiry
-- will post to; SQLite cannot change a CHECK, so postings are rebuilt as in 0009 (their
-- append-only triggers go with the old table and are made again).
CREATE TABLE postings_next (
    id              INTEGER PRIMARY KEY,
    transaction_id  TEXT NOT NULL,
    entry_id        TEXT NOT NULL,
    account_kind    TEXT NOT NULL CHECK (account_kind IN ('card_available', 'card_held',
                        'program_funding', 'program_redemption', 'program_cashout',
                        'program_adjustment', 'program_breakage')),
    owner_id        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount <> 0)
);
INSERT INTO postings_next (id, transaction_id, entry_id, account_kind, owner_id, currency, amount)
SELECT id, transaction_id, entry_id, account_kind, owner_id, currency, amount FROM postings;
DROP TABLE postings;
ALTER TABLE postings_next RENAME TO postings;
CREATE INDEX postings_by_transaction ON postings (transaction_id);
CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: postings cannot be updated'); END;
CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: postings cannot be deleted'); END;

-- Adjustments larger than this (in minor units, either way) wait for a second person's
-- approval; at or below it they apply at once.
ALTER TABLE merchants ADD COLUMN adjustment_approval_threshold INTEGER NOT NULL DEFAULT 5000
    CHECK (adjustment_approval_threshold >= 0);

-- An adjustment as asked, and what became of it: applied (with its transaction), or pending
-- until approved, rejected or expired. Who asked and who decided are an actor type and id,
-- as in the audit trail.
CREATE TABLE adjustments (
    id                 TEXT PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    card_id            TEXT NOT NULL REFERENCES cards (id),
    amount             INTEGER NOT NULL CHECK (amount <> 0),
    reason             TEXT NOT NULL CHECK (reason IN ('goodwill', 'correction', 'fraud', 'migration', 'other')),
    note               TEXT,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'rejected', 'expired')),
    requested_by_type  TEXT NOT NULL,
    requested_by_id    TEXT,
    requested_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    decided_by_type    TEXT,
    decided_by_id      TEXT,
    decided_at         INTEGER,
    transaction_id     TEXT
);
CREATE INDEX adjustments_by_merchant ON adjustments (merchant_id, state, id);
