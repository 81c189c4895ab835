-- Customer wallets on PostgreSQL: the same tables, keys and checks as the SQLite migration of
-- the same name. Timestamps are integer milliseconds since the Unix epoch, UTC.

-- One row per user that ever held a card. A write that changes a user's cards locks this row
-- first (`SELECT ... FOR UPDATE`), so that the count of cards (at most 10, decided in the
-- domain) holds when many giftd processes save cards for one user at once.
CREATE TABLE wallet_users (
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    user_id      TEXT NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 64),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, user_id)
);

CREATE TABLE wallet_cards (
    merchant_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    card_id      TEXT NOT NULL REFERENCES cards(id),
    access       TEXT NOT NULL CHECK (access IN ('owner', 'shared')),
    preferred    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, user_id, card_id),
    FOREIGN KEY (merchant_id, user_id) REFERENCES wallet_users (merchant_id, user_id)
);
CREATE INDEX wallet_cards_by_card ON wallet_cards (card_id);
-- One preferred card per user, whatever the code does.
CREATE UNIQUE INDEX wallet_cards_one_preferred ON wallet_cards (merchant_id, user_id) WHERE preferred;
