-- A card's page for its cardholder (docs/CARDHOLDER.md): `/g/{token}`, where the token is a
-- random secret of 256 bits kept only as its keyed hash. A link made when the card was issued
-- (a gift, a Gr4vy issuance) also keeps the card's security code, encrypted with the link's id
-- as associated data, since the card itself keeps only the code's hash. Revoked links answer
-- as if they never existed; a new link for the card takes over the code of its latest one.
CREATE TABLE cardholder_links (
    id               TEXT PRIMARY KEY,
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    card_id          TEXT NOT NULL REFERENCES cards (id),
    token_hash       BLOB NOT NULL UNIQUE,
    code_ciphertext  BLOB,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER
);
CREATE INDEX cardholder_links_by_card ON cardholder_links (card_id, id);
