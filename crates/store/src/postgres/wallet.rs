//! Customer wallets on PostgreSQL: the SQL behind the wallet methods of [`crate::WriteTx`] and
//! [`crate::Store`]. Many giftd processes may change one user's cards at once, so a change
//! first locks the user's `wallet_users` row (`FOR UPDATE`): the count the domain checks
//! against the limit of 10 cannot move until the transaction ends. No decisions here.

use giftd_domain::wallet::{Access, UserId, WalletCard};
use giftd_domain::{CardId, MerchantId, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};

use crate::sql;
use crate::{StoreError, StoreResult};

fn wallet_card(row: &PgRow) -> StoreResult<WalletCard> {
    let access: String = row.try_get("access")?;
    Ok(WalletCard {
        user_id: UserId::new(row.try_get::<String, _>("user_id")?),
        card_id: CardId::new(row.try_get::<String, _>("card_id")?),
        access: Access::parse(&access)
            .ok_or_else(|| StoreError::Corrupt(format!("wallet access {access}")))?,
        preferred: row.try_get("preferred")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

pub(crate) async fn cards<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    user: &UserId,
) -> StoreResult<Vec<WalletCard>> {
    let sql = sql::wallet_cards_of_user();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(user.as_str())
        .fetch_all(executor)
        .await?;
    rows.iter().map(wallet_card).collect()
}

pub(crate) async fn lock(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    user: &UserId,
    now: Timestamp,
) -> StoreResult<Vec<WalletCard>> {
    sqlx::query(sql::INSERT_WALLET_USER)
        .bind(merchant.as_str())
        .bind(user.as_str())
        .bind(now.unix_millis())
        .bind(user.public_id(merchant))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
    sqlx::query("SELECT 1 FROM wallet_users WHERE merchant_id = $1 AND user_id = $2 FOR UPDATE")
        .bind(merchant.as_str())
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    // A closed card is closed for good: it leaves every wallet that still lists it.
    sqlx::query(sql::REMOVE_CLOSED_WALLET_CARDS)
        .bind(merchant.as_str())
        .bind(user.as_str())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
    cards(&mut *conn, merchant, user).await
}

pub(crate) async fn put(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    card: &WalletCard,
) -> StoreResult<()> {
    sqlx::query(sql::PUT_WALLET_CARD)
        .bind(merchant.as_str())
        .bind(card.user_id.as_str())
        .bind(card.card_id.as_str())
        .bind(card.access.as_str())
        .bind(card.preferred)
        .bind(card.created_at.unix_millis())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub(crate) async fn remove(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    user: Option<&UserId>,
    card: &CardId,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM wallet_cards WHERE merchant_id = $1 AND card_id = $2 AND ($3::TEXT IS NULL OR user_id = $3)",
    )
    .bind(merchant.as_str())
    .bind(card.as_str())
    .bind(user.map(UserId::as_str))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected())
}

pub(crate) async fn prefer(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    user: &UserId,
    card: &CardId,
) -> StoreResult<bool> {
    // Clear first, then set: the unique index allows one preferred card at every moment.
    sqlx::query(
        "UPDATE wallet_cards SET preferred = FALSE WHERE merchant_id = $1 AND user_id = $2 AND preferred",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    let done = sqlx::query(
        "UPDATE wallet_cards SET preferred = TRUE WHERE merchant_id = $1 AND user_id = $2 AND card_id = $3",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .bind(card.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected() == 1)
}
