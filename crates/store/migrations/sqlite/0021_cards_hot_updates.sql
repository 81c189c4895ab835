-- The breakage sweeper's index reads `holds_value` instead of `balance > 0`, as on PostgreSQL
-- (where that lets a redemption update its card in place); the statement is shared. SQLite
-- rewrites an index entry whenever a column it names is assigned, so here nothing changes in
-- what an update costs. The column is computed when read.
ALTER TABLE cards ADD COLUMN holds_value INTEGER GENERATED ALWAYS AS (balance > 0) VIRTUAL;
DROP INDEX cards_by_expiry;
CREATE INDEX cards_by_expiry ON cards (expires_at) WHERE holds_value;
