-- Adjustments (docs/STAFF.md "Adjustments"): value put on or taken off a card by a person, for
-- a reason, against the program's adjustment account; above the merchant's threshold a second
-- person approves it first. Postings gain that account, and the breakage account that expiry
-- will post to.
ALTER TABLE postings DROP CONSTRAINT postings_account_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_account_kind_check CHECK (account_kind IN
    ('card_available', 'card_held', 'program_funding', 'program_redemption', 'program_cashout',
     'program_adjustment', 'program_breakage'));

-- Adjustments larger than this (in minor units, either way) wait for a second person's
-- approval; at or below it they apply at once.
ALTER TABLE merchants ADD COLUMN adjustment_approval_threshold BIGINT NOT NULL DEFAULT 5000
    CHECK (adjustment_approval_threshold >= 0);

-- An adjustment as asked, and what became of it: applied (with its transaction), or pending
-- until approved, rejected or expired. Who asked and who decided are an actor type and id,
-- as in the audit trail.
CREATE TABLE adjustments (
    id                 TEXT PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    card_id            TEXT NOT NULL REFERENCES cards (id),
    amount             BIGINT NOT NULL CHECK (amount <> 0),
    reason             TEXT NOT NULL CHECK (reason IN ('goodwill', 'correction', 'fraud', 'migration', 'other')),
    note               TEXT,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'rejected', 'expired')),
    requested_by_type  TEXT NOT NULL,
    requested_by_id    TEXT,
    requested_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    decided_by_type    TEXT,
    decided_by_id      TEXT,
    decided_at         BIGINT,
    transaction_id     TEXT
);
CREATE INDEX adjustments_by_merchant ON adjustments (merchant_id, state, id);
