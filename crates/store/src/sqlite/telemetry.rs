//! The SQLite side of what operators watch: the pending holds and the writer's queue.

use giftd_domain::Timestamp;
use sqlx::{Row, SqlitePool};

use crate::sql;
use crate::{PoolStats, StoreResult};

pub(super) async fn pending_hold_count(reads: &SqlitePool, now: Timestamp) -> StoreResult<i64> {
    let row = sqlx::query(sql::PENDING_HOLD_COUNT)
        .bind(now.unix_millis())
        .fetch_one(reads)
        .await?;
    Ok(row.try_get("pending")?)
}

pub(super) async fn pending_webhook_delivery_count(reads: &SqlitePool) -> StoreResult<i64> {
    let row = sqlx::query(sql::PENDING_WEBHOOK_DELIVERY_COUNT)
        .fetch_one(reads)
        .await?;
    Ok(row.try_get("pending")?)
}

/// `queue_free`: the free slots of the writer's queue, `None` once it is closed.
pub(super) fn pool_stats(reads: &SqlitePool, queue_free: Option<usize>) -> PoolStats {
    let capacity = super::WRITER_QUEUE_LENGTH;
    PoolStats::Sqlite {
        writer_queue_depth: queue_free.map_or(0, |free| capacity.saturating_sub(free)),
        writer_queue_capacity: capacity,
        read_connections: reads.size(),
        read_connections_idle: reads.num_idle(),
        read_connections_max: super::READ_POOL_SIZE,
    }
}
