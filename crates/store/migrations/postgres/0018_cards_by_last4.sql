-- The support desk finds a card by the last 4 digits of its number (`GET /v1/cards?last4=`,
-- the console's card search), among a merchant's cards, newest first.
CREATE INDEX cards_by_last4 ON cards (merchant_id, last4, seq);
