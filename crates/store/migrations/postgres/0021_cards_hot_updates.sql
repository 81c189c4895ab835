-- A redemption changes a card's balance and nothing else its indexes cover, so PostgreSQL
-- could update the row in place (a HOT update: no new index entries). It could not while
-- cards_by_expiry's predicate read `balance > 0`: an index predicate counts as an indexed
-- column, and every balance change then wrote a new entry into each of the card's six
-- indexes. The predicate now reads `holds_value`, which is stored and changes only when a
-- balance reaches or leaves zero (PostgreSQL compares the values, not the columns named).
-- Adding the stored column rewrites the table once, under its lock.
ALTER TABLE cards ADD COLUMN holds_value BOOLEAN GENERATED ALWAYS AS (balance > 0) STORED;
DROP INDEX cards_by_expiry;
CREATE INDEX cards_by_expiry ON cards (expires_at) WHERE holds_value;
-- Room on each page for the new version of an updated row, which a HOT update needs.
ALTER TABLE cards SET (fillfactor = 85);
