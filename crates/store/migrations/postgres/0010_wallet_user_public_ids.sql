-- A wallet user's public UUID (`UserId::public_id`), for the front-ends that name customers by
-- UUID (Gr4vy's `buyer_id`), so that one can be read back to its user. Derived from the
-- merchant and the user's id, it is written with the user's row: for users made before this
-- migration, by their next wallet change (until then such a UUID is not found, and the user's
-- own id still names them).
ALTER TABLE wallet_users ADD COLUMN public_id TEXT;
CREATE UNIQUE INDEX wallet_users_by_public_id ON wallet_users (merchant_id, public_id);
