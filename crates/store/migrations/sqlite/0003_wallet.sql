-- Customer wallets: the merchant's users (named by the merchant's own ids) and the cards each
-- holds, as `owner` or `shared`. Timestamps are integer milliseconds since the Unix epoch, UTC.

-- One row per user that ever held a card. A write that changes a user's cards locks this row
-- first, so that the count of cards (at most 10, decided in the domain) holds under
-- concurrency on PostgreSQL; SQLite's single writer serializes anyway.
CREATE TABLE wallet_users (
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    user_id      TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, user_id)
);

CREATE TABLE wallet_cards (
    merchant_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    card_id      TEXT NOT NULL REFERENCES cards(id),
    access       TEXT NOT NULL CHECK (access IN ('owner', 'shared')),
    preferred    INTEGER NOT NULL DEFAULT 0 CHECK (preferred IN (0, 1)),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, user_id, card_id),
    FOREIGN KEY (merchant_id, user_id) REFERENCES wallet_users (merchant_id, user_id)
);
CREATE INDEX wallet_cards_by_card ON wallet_cards (card_id);
-- One preferred card per user, whatever the code does.
CREATE UNIQUE INDEX wallet_cards_one_preferred ON wallet_cards (merchant_id, user_id) WHERE preferred = 1;
