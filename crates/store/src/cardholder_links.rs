//! Cardholder links (`cardholder_links`, migration 0019): the address of a card's page for the
//! person who holds it, kept as the keyed hash of its token, with the card's security code
//! encrypted when the link was made while the code was at hand. The rows, the SQL both
//! backends run as written, and the reads bound on a backend's pool by [`reads_on_pool!`].
//! The writes are `WriteTx`'s, inside the jobs that make and revoke links.

use giftd_domain::{CardId, CardholderLinkId, MerchantId, Timestamp};

/// A link as stored. The token itself is never stored: only `token_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct CardholderLinkRecord {
    pub id: CardholderLinkId,
    pub merchant_id: MerchantId,
    pub card_id: CardId,
    pub token_hash: Vec<u8>,
    /// The card's security code, encrypted with the link's id as associated data.
    pub code_ciphertext: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Ciphertexts and hashes are not worth a log line; the rest is.
impl std::fmt::Debug for CardholderLinkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardholderLinkRecord")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("card_id", &self.card_id)
            .field("with_code", &self.code_ciphertext.is_some())
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// The most links one card may ever have, revoked ones included, and so the most its listing
/// answers (newest first): every read of a card's links sees all of them.
pub const MAX_LINKS_LISTED: u32 = 100;

const COLUMNS: &str = "id, merchant_id, card_id, token_hash, code_ciphertext, created_at, revoked_at";

pub(crate) const INSERT_LINK: &str = "INSERT INTO cardholder_links (id, merchant_id, card_id, \
     token_hash, code_ciphertext, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Revokes a link of the card that is not revoked yet.
pub(crate) const REVOKE_LINK: &str = "UPDATE cardholder_links SET revoked_at = $1 \
     WHERE merchant_id = $2 AND card_id = $3 AND id = $4 AND revoked_at IS NULL";

pub(crate) fn by_token_hash() -> String {
    format!("SELECT {COLUMNS} FROM cardholder_links WHERE token_hash = $1")
}

/// A card's links, newest first (ids are time-ordered).
pub(crate) fn of_card() -> String {
    format!(
        "SELECT {COLUMNS} FROM cardholder_links WHERE merchant_id = $1 AND card_id = $2 \
         ORDER BY id DESC LIMIT $3"
    )
}

pub(crate) fn row(row: &impl crate::rows::Columns) -> crate::StoreResult<CardholderLinkRecord> {
    Ok(CardholderLinkRecord {
        id: CardholderLinkId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        card_id: CardId::new(row.text("card_id")?),
        token_hash: row.bytes("token_hash")?,
        code_ciphertext: row.optional_bytes("code_ciphertext")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        revoked_at: row
            .optional_integer("revoked_at")?
            .map(Timestamp::from_unix_millis),
    })
}

/// The reads on a backend's read pool (`$pool`).
macro_rules! reads_on_pool {
    ($pool:ty) => {
        pub(crate) async fn by_token_hash(
            reads: &$pool,
            token_hash: &[u8],
        ) -> $crate::StoreResult<Option<$crate::CardholderLinkRecord>> {
            let row = sqlx::query(sqlx::AssertSqlSafe(
                $crate::cardholder_links::by_token_hash(),
            ))
            .bind(token_hash)
            .fetch_optional(reads)
            .await?;
            row.as_ref().map($crate::cardholder_links::row).transpose()
        }

        pub(crate) async fn of_card(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            card: &giftd_domain::CardId,
        ) -> $crate::StoreResult<Vec<$crate::CardholderLinkRecord>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe($crate::cardholder_links::of_card()))
                .bind(merchant.as_str())
                .bind(card.as_str())
                .bind(i64::from($crate::cardholder_links::MAX_LINKS_LISTED))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::cardholder_links::row).collect()
        }
    };
}

pub(crate) use reads_on_pool;
