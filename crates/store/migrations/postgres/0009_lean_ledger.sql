-- A leaner ledger: what every redemption writes carries no foreign keys and no index that no
-- query reads.
--
-- Transactions, postings and events are append-only rows written by giftd's own code from
-- state it has just read and locked (the card, its merchant, the transaction it reverses), so
-- their foreign keys only repeated checks already made, at the price of index lookups and,
-- for the merchant, a `FOR KEY SHARE` lock that every concurrent writer took on the same row.
-- `giftd verify` now checks every reference these keys used to (crates/store/src/verify.rs).
-- Rows that change (cards, holds, deliveries) keep theirs.
ALTER TABLE transactions
    DROP CONSTRAINT transactions_merchant_id_fkey,
    DROP CONSTRAINT transactions_card_id_fkey,
    DROP CONSTRAINT transactions_reverses_fkey;
ALTER TABLE postings DROP CONSTRAINT postings_transaction_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_merchant_id_fkey;

-- No query looks postings up by journal entry or by account: `giftd verify` reads them all
-- in one pass and the reports reach them through their transaction.
DROP INDEX postings_by_entry;
DROP INDEX postings_by_account;
