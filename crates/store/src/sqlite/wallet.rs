//! Customer wallets on SQLite: the SQL behind the wallet methods of [`crate::WriteTx`] and
//! [`crate::Store`]. The single writer serializes every change of a wallet; taking the
//! wallet's row first keeps the code path the same as PostgreSQL's. No decisions here.

use giftd_domain::wallet::{Access, UserId, WalletCard};
use giftd_domain::{CardId, MerchantId, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqliteExecutor};

use crate::{StoreError, StoreResult};

const COLUMNS: &str = "user_id, card_id, access, preferred, created_at";

fn wallet_card(row: &SqliteRow) -> StoreResult<WalletCard> {
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
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    user: &UserId,
) -> StoreResult<Vec<WalletCard>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM wallet_cards WHERE merchant_id = ? AND user_id = ? ORDER BY created_at, card_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(user.as_str())
        .fetch_all(executor)
        .await?;
    rows.iter().map(wallet_card).collect()
}

pub(crate) async fn lock(
    conn: &mut SqliteConnection,
    merchant: &MerchantId,
    user: &UserId,
    now: Timestamp,
) -> StoreResult<Vec<WalletCard>> {
    sqlx::query(
        "INSERT INTO wallet_users (merchant_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .bind(now.unix_millis())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    // A closed card is closed for good: it leaves every wallet that still lists it.
    sqlx::query(
        "DELETE FROM wallet_cards WHERE merchant_id = ? AND user_id = ? \
         AND card_id IN (SELECT id FROM cards WHERE state = 'closed')",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    cards(&mut *conn, merchant, user).await
}

pub(crate) async fn put(
    conn: &mut SqliteConnection,
    merchant: &MerchantId,
    card: &WalletCard,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO wallet_cards (merchant_id, user_id, card_id, access, preferred, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (merchant_id, user_id, card_id) DO UPDATE SET access = excluded.access",
    )
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
    conn: &mut SqliteConnection,
    merchant: &MerchantId,
    user: Option<&UserId>,
    card: &CardId,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM wallet_cards WHERE merchant_id = ? AND card_id = ? AND (? IS NULL OR user_id = ?)",
    )
    .bind(merchant.as_str())
    .bind(card.as_str())
    .bind(user.map(UserId::as_str))
    .bind(user.map(UserId::as_str))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected())
}

pub(crate) async fn prefer(
    conn: &mut SqliteConnection,
    merchant: &MerchantId,
    user: &UserId,
    card: &CardId,
) -> StoreResult<bool> {
    // Clear first, then set: the unique index allows one preferred card at every moment.
    sqlx::query(
        "UPDATE wallet_cards SET preferred = 0 WHERE merchant_id = ? AND user_id = ? AND preferred = 1",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    let done = sqlx::query(
        "UPDATE wallet_cards SET preferred = 1 WHERE merchant_id = ? AND user_id = ? AND card_id = ?",
    )
    .bind(merchant.as_str())
    .bind(user.as_str())
    .bind(card.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected() == 1)
}
