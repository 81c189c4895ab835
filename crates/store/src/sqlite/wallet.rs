//! Customer wallets on SQLite: the SQL behind the wallet methods of [`crate::WriteTx`] and
//! [`crate::Store`]. The single writer serializes every change of a wallet; taking the
//! wallet's row first keeps the code path the same as PostgreSQL's. No decisions here.

use giftd_domain::wallet::{Access, UserId, WalletCard};
use giftd_domain::{CardId, MerchantId, Timestamp};
use rusqlite::{Connection, params};
use sqlx::SqliteExecutor;

use super::tx::{execute, query_all};
use crate::rows::Columns;
use crate::sql;
use crate::{StoreError, StoreResult};

fn wallet_card(row: &impl Columns) -> StoreResult<WalletCard> {
    let access = row.text("access")?;
    Ok(WalletCard {
        user_id: UserId::new(row.text("user_id")?),
        card_id: CardId::new(row.text("card_id")?),
        access: Access::parse(&access)
            .ok_or_else(|| StoreError::Corrupt(format!("wallet access {access}")))?,
        preferred: row.boolean("preferred")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

pub(crate) async fn cards<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    user: &UserId,
) -> StoreResult<Vec<WalletCard>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql::wallet_cards_of_user()))
        .bind(merchant.as_str())
        .bind(user.as_str())
        .fetch_all(executor)
        .await?;
    rows.iter().map(wallet_card).collect()
}

/// Locks a user's wallet (the single writer holds every lock already; the row is made so that
/// the code path matches PostgreSQL's) and answers its cards.
pub(crate) fn lock(
    conn: &Connection,
    merchant: &MerchantId,
    user: &UserId,
    now: Timestamp,
) -> StoreResult<Vec<WalletCard>> {
    execute(
        conn,
        sql::INSERT_WALLET_USER,
        params![
            merchant.as_str(),
            user.as_str(),
            now.unix_millis(),
            user.public_id(merchant)
        ],
    )?;
    // A closed card is closed for good: it leaves every wallet that still lists it.
    execute(
        conn,
        sql::REMOVE_CLOSED_WALLET_CARDS,
        params![merchant.as_str(), user.as_str()],
    )?;
    query_all(
        conn,
        &sql::wallet_cards_of_user(),
        params![merchant.as_str(), user.as_str()],
        |row| wallet_card(row),
    )
}

pub(crate) fn put(conn: &Connection, merchant: &MerchantId, card: &WalletCard) -> StoreResult<()> {
    execute(
        conn,
        sql::PUT_WALLET_CARD,
        params![
            merchant.as_str(),
            card.user_id.as_str(),
            card.card_id.as_str(),
            card.access.as_str(),
            card.preferred,
            card.created_at.unix_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn remove(
    conn: &Connection,
    merchant: &MerchantId,
    user: Option<&UserId>,
    card: &CardId,
) -> StoreResult<u64> {
    let done = execute(
        conn,
        "DELETE FROM wallet_cards WHERE merchant_id = ?1 AND card_id = ?2 AND (?3 IS NULL OR user_id = ?3)",
        params![merchant.as_str(), card.as_str(), user.map(UserId::as_str)],
    )?;
    Ok(done as u64)
}

pub(crate) fn prefer(
    conn: &Connection,
    merchant: &MerchantId,
    user: &UserId,
    card: &CardId,
) -> StoreResult<bool> {
    // Clear first, then set: the unique index allows one preferred card at every moment.
    execute(
        conn,
        "UPDATE wallet_cards SET preferred = 0 WHERE merchant_id = ? AND user_id = ? AND preferred = 1",
        params![merchant.as_str(), user.as_str()],
    )?;
    let done = execute(
        conn,
        "UPDATE wallet_cards SET preferred = 1 WHERE merchant_id = ? AND user_id = ? AND card_id = ?",
        params![merchant.as_str(), user.as_str(), card.as_str()],
    )?;
    Ok(done == 1)
}
