//! The PostgreSQL side of what operators watch: the pending holds and the connection pool.

use giftd_domain::Timestamp;
use sqlx::{PgPool, Row};

use crate::sql;
use crate::{PoolStats, StoreResult};

pub(super) async fn pending_hold_count(pool: &PgPool, now: Timestamp) -> StoreResult<i64> {
    let row = sqlx::query(sql::PENDING_HOLD_COUNT)
        .bind(now.unix_millis())
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("pending")?)
}

pub(super) async fn pending_webhook_delivery_count(pool: &PgPool) -> StoreResult<i64> {
    let row = sqlx::query(sql::PENDING_WEBHOOK_DELIVERY_COUNT)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("pending")?)
}

pub(super) fn pool_stats(pool: &PgPool) -> PoolStats {
    PoolStats::Postgres {
        connections: pool.size(),
        connections_idle: pool.num_idle(),
        connections_max: pool.options().get_max_connections(),
    }
}
