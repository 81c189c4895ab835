-- Expiry and breakage (docs/STAFF.md "Expiry and breakage"): a program may take the value left
-- on its cards when they expire (off unless asked, since many jurisdictions forbid it); the
-- sweeper finds such cards by their expiry, among those that still hold value.
ALTER TABLE programs ADD COLUMN breakage_on_expiry INTEGER NOT NULL DEFAULT 0 CHECK (breakage_on_expiry IN (0, 1));
CREATE INDEX cards_by_expiry ON cards (expires_at) WHERE balance > 0;
