-- A leaner ledger: what every redemption writes carries no foreign keys, no AUTOINCREMENT and
-- no index that no query reads.
--
-- Transactions, postings and events are append-only rows written by giftd's own code from
-- state it has just read (the card, its merchant, the transaction it reverses), so their
-- foreign keys only repeated checks already made. `giftd verify` now checks every reference
-- these keys used to (crates/store/src/verify.rs). Rows that change (cards, holds,
-- deliveries) keep theirs. AUTOINCREMENT made every insert also update `sqlite_sequence`;
-- a plain INTEGER PRIMARY KEY is the rowid, one past the largest, so rows that are never
-- deleted (the ledger) never see a number twice. Events are deleted oldest first: a number
-- comes back only once every event is gone, and nothing keeps a deleted event's number.
--
-- SQLite cannot drop a constraint, so each table is rebuilt (create, copy, drop, rename),
-- with foreign key enforcement off for the migration (`SqliteStore::migrate_with`, which
-- runs `PRAGMA foreign_key_check` afterwards). Other tables' references to these ones
-- (holds, Adyen references, deliveries) name the table, so they follow the renamed copy.

CREATE TABLE transactions_lean (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    merchant_id     TEXT NOT NULL,
    card_id         TEXT NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('issue', 'activation', 'load', 'redemption',
                        'hold', 'capture', 'release', 'refund', 'void', 'cashout',
                        'transfer_out', 'transfer_in', 'merge_out', 'merge_in', 'adjustment',
                        'expiry')),
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    currency        TEXT NOT NULL,
    balance_before  INTEGER NOT NULL CHECK (balance_before >= 0),
    balance_after   INTEGER NOT NULL CHECK (balance_after >= 0),
    reference       TEXT,
    reverses        TEXT,
    hold_id         TEXT,
    entry_id        TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
INSERT INTO transactions_lean (seq, id, merchant_id, card_id, type, amount, currency,
    balance_before, balance_after, reference, reverses, hold_id, entry_id, created_at)
SELECT seq, id, merchant_id, card_id, type, amount, currency, balance_before, balance_after,
    reference, reverses, hold_id, entry_id, created_at FROM transactions;
DROP TABLE transactions;
ALTER TABLE transactions_lean RENAME TO transactions;
CREATE INDEX transactions_by_card ON transactions (card_id, seq);
CREATE INDEX transactions_by_reverses ON transactions (reverses) WHERE reverses IS NOT NULL;
-- A transaction is voided at most once.
CREATE UNIQUE INDEX transactions_one_void ON transactions (reverses) WHERE type = 'void';
CREATE INDEX transactions_by_merchant_time ON transactions (merchant_id, created_at);

-- No query looks postings up by journal entry or by account: `giftd verify` reads them all in
-- one pass and the reports reach them through their transaction.
CREATE TABLE postings_lean (
    id              INTEGER PRIMARY KEY,
    transaction_id  TEXT NOT NULL,
    entry_id        TEXT NOT NULL,
    account_kind    TEXT NOT NULL CHECK (account_kind IN ('card_available', 'card_held',
                        'program_funding', 'program_redemption', 'program_cashout')),
    owner_id        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount <> 0)
);
INSERT INTO postings_lean (id, transaction_id, entry_id, account_kind, owner_id, currency, amount)
SELECT id, transaction_id, entry_id, account_kind, owner_id, currency, amount FROM postings;
DROP TABLE postings;
ALTER TABLE postings_lean RENAME TO postings;
CREATE INDEX postings_by_transaction ON postings (transaction_id);

-- The ledger is append-only: the database itself refuses to change or remove an entry.
CREATE TRIGGER transactions_append_only_update BEFORE UPDATE ON transactions
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: transactions cannot be updated'); END;
CREATE TRIGGER transactions_append_only_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: transactions cannot be deleted'); END;
CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: postings cannot be updated'); END;
CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: postings cannot be deleted'); END;

CREATE TABLE events_lean (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    merchant_id  TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    created_at   INTEGER NOT NULL
);
INSERT INTO events_lean (seq, id, merchant_id, type, payload, created_at)
SELECT seq, id, merchant_id, type, payload, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_lean RENAME TO events;
CREATE INDEX events_by_merchant ON events (merchant_id, seq);
CREATE INDEX events_by_age ON events (created_at);
