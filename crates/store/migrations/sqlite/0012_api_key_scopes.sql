-- Several API keys per merchant, each named and scoped, with an optional expiry (set by a
-- rotation's grace period, or at creation), a visible prefix and when it was last used. The
-- keys made before this migration keep working: `full`, named `default`, with a new id and no
-- prefix (giftd never kept the key itself).
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full' CHECK (scope IN ('full', 'pos', 'read_only'));
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
UPDATE api_keys SET id = 'key_' || lower(hex(randomblob(16))) WHERE id IS NULL;
CREATE UNIQUE INDEX api_keys_by_id ON api_keys (id);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, created_at);
