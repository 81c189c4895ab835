//! PostgreSQL's report queries: liability as of a time, daily activity, dormant cards. Each sums
//! postings and transactions (the ledger), never the cached `cards.balance`, so a report
//! agrees with what `giftd verify` recomputes. Read-only, on the pool.

use giftd_domain::{MerchantId, Timestamp};
use sqlx::PgPool;

use crate::reports::{activity_line, channel_line, dormant_card, liability_line};
use crate::sql;
use crate::{ActivityLine, ChannelLine, DormantCard, LiabilityLine, Page, StoreResult};

/// A card's postings are recorded under the card's own transactions (see
/// `WriteTx::append_entry`), so `t.created_at` is the time of each posting.
///
/// Sums are taken in two halves (`crate::reports::split_sum`): a card's balance fits 64 bits,
/// the sum of its postings taken in any order and a program's liability need not.
const LIABILITY_SQL: &str = "\
    SELECT c.merchant_id, c.program_id, c.currency, COUNT(*) AS cards, \
           SUM(b.balance >> 32)::BIGINT AS liability_high, SUM(b.balance & 4294967295)::BIGINT AS liability_low \
    FROM (SELECT card_id, high * 4294967296 + low AS balance \
          FROM (SELECT p.owner_id AS card_id, SUM(p.amount >> 32)::BIGINT AS high, \
                       SUM(p.amount & 4294967295)::BIGINT AS low \
                FROM postings p JOIN transactions t ON t.id = p.transaction_id \
                WHERE p.account_kind IN ('card_available', 'card_held') AND t.created_at <= $1 \
                  AND ($2::TEXT IS NULL OR t.merchant_id = $2) \
                GROUP BY p.owner_id) s) b \
    JOIN cards c ON c.id = b.card_id \
    WHERE b.balance <> 0 \
    GROUP BY c.merchant_id, c.program_id, c.currency \
    ORDER BY c.merchant_id, c.program_id, c.currency";

/// An adjustment counts net (what it put on, less what it took off): its `amount` is a
/// magnitude, the direction is in the balances.
const ACTIVITY_SQL: &str = "\
    SELECT t.created_at / 86400000 AS day, t.merchant_id, c.program_id, t.currency, t.type, \
           COUNT(*) AS count, SUM((CASE WHEN t.type = 'adjustment' THEN t.balance_after - t.balance_before \
           ELSE t.amount END) >> 32)::BIGINT AS amount_high, SUM((CASE WHEN t.type = 'adjustment' \
           THEN t.balance_after - t.balance_before ELSE t.amount END) & 4294967295)::BIGINT AS amount_low \
    FROM transactions t JOIN cards c ON c.id = t.card_id \
    WHERE t.created_at >= $1 AND t.created_at < $2 AND ($3::TEXT IS NULL OR t.merchant_id = $3) \
    GROUP BY day, t.merchant_id, c.program_id, t.currency, t.type \
    ORDER BY day, t.merchant_id, c.program_id, t.currency, t.type";

const DORMANT_SQL: &str = "\
    SELECT c.merchant_id, c.id, c.program_id, c.currency, c.state, a.balance, a.last_at \
    FROM (SELECT card_id, last_at, high * 4294967296 + low AS balance \
          FROM (SELECT t.card_id, MAX(t.created_at) AS last_at, \
                       COALESCE(SUM(CASE WHEN p.account_kind IN ('card_available', 'card_held') \
                                          AND p.owner_id = t.card_id THEN p.amount >> 32 END), 0)::BIGINT AS high, \
                       COALESCE(SUM(CASE WHEN p.account_kind IN ('card_available', 'card_held') \
                                          AND p.owner_id = t.card_id THEN p.amount & 4294967295 END), 0)::BIGINT AS low \
                FROM transactions t LEFT JOIN postings p ON p.transaction_id = t.id \
                WHERE t.created_at <= $1 AND ($3::TEXT IS NULL OR t.merchant_id = $3) \
                GROUP BY t.card_id) s) a \
    JOIN cards c ON c.id = a.card_id \
    WHERE a.last_at < $2 AND a.balance > 0 \
      AND ($4::TEXT IS NULL OR c.seq > (SELECT seq FROM cards WHERE id = $4)) \
    ORDER BY c.seq LIMIT $5";

pub(super) async fn liability(
    pool: &PgPool,
    merchant: Option<&MerchantId>,
    as_of: Timestamp,
) -> StoreResult<Vec<LiabilityLine>> {
    let rows = sqlx::query(LIABILITY_SQL)
        .bind(as_of.unix_millis())
        .bind(merchant.map(MerchantId::as_str))
        .fetch_all(pool)
        .await?;
    rows.iter().map(liability_line).collect()
}

pub(super) async fn activity(
    pool: &PgPool,
    merchant: Option<&MerchantId>,
    from: Timestamp,
    until: Timestamp,
) -> StoreResult<Vec<ActivityLine>> {
    let rows = sqlx::query(ACTIVITY_SQL)
        .bind(from.unix_millis())
        .bind(until.unix_millis())
        .bind(merchant.map(MerchantId::as_str))
        .fetch_all(pool)
        .await?;
    rows.iter().map(activity_line).collect()
}

pub(super) async fn channel_activity(
    pool: &PgPool,
    merchant: Option<&MerchantId>,
    from: Timestamp,
    until: Timestamp,
) -> StoreResult<Vec<ChannelLine>> {
    let rows = sqlx::query(sql::CHANNEL_ACTIVITY)
        .bind(from.unix_millis())
        .bind(until.unix_millis())
        .bind(merchant.map(MerchantId::as_str))
        .fetch_all(pool)
        .await?;
    rows.iter().map(channel_line).collect()
}

pub(super) async fn dormant(
    pool: &PgPool,
    merchant: Option<&MerchantId>,
    quiet_since: Timestamp,
    as_of: Timestamp,
    page: &Page,
) -> StoreResult<Vec<DormantCard>> {
    let rows = sqlx::query(DORMANT_SQL)
        .bind(as_of.unix_millis())
        .bind(quiet_since.unix_millis())
        .bind(merchant.map(MerchantId::as_str))
        .bind(page.cursor.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(dormant_card).collect()
}
