-- Expiry and breakage (docs/STAFF.md "Expiry and breakage"): a program may take the value left
-- on its cards when they expire (off unless asked, since many jurisdictions forbid it); the
-- sweeper finds such cards by their expiry, among those that still hold value.
ALTER TABLE programs ADD COLUMN breakage_on_expiry BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX cards_by_expiry ON cards (expires_at) WHERE balance > 0;
