-- A program can be made inactive and active again (`PATCH /v1/programs/{id}` `active`): an
-- inactive program issues no new cards and activates no card stock, while the cards it has
-- issued keep working. Every program made before this migration is active, as it was.
ALTER TABLE programs ADD COLUMN active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1));
