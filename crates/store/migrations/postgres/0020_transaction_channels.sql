-- The front-end each transaction came through (native, wallet, clover, adyen, gr4vy, or
-- system: giftd itself with no request behind it), for the dashboard's redemptions by channel
-- and the channel report. Rows written before this migration did not record it and keep NULL:
-- the ledger is append-only, and a guess would be worse than saying so.
ALTER TABLE transactions ADD COLUMN channel TEXT
    CHECK (channel IN ('native', 'wallet', 'clover', 'adyen', 'gr4vy', 'system'));
