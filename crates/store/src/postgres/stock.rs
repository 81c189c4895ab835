//! PostgreSQL's bulk write of card stock: a whole batch in one transaction on a pooled
//! connection, each table filled by `INSERT ... SELECT FROM UNNEST(arrays)` in chunks of
//! [`PG_ROWS_PER_STATEMENT`] rows: one round trip and one plan per chunk instead of one per
//! row (row by row took about 90 s for 100,000 cards).
//!
//! It runs beside the committers, not through them: a batch is far too large for one job of
//! the group commit, and nothing else needs its rows until it commits. Unique keys (a card
//! number already issued, the same import file) refuse the whole batch.

use giftd_domain::{Channel, MerchantId, Timestamp};
use sqlx::{PgPool, Postgres, Transaction};

use crate::card_batches::{self, card_batch_reads, extras, run_extras};
use crate::reports::stock_batch;
use crate::sql;
use crate::{AuditEventRow, StockBatch, StockBatchRecord, StoreError, StoreResult};

/// Rows per `UNNEST` statement: arrays are one parameter each, so the limit is the message
/// size; 10,000 rows of a card are about 2 MB.
pub const PG_ROWS_PER_STATEMENT: usize = 10_000;

pub(super) async fn insert(pool: &PgPool, batch: &StockBatch) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    write(&mut tx, batch).await?;
    tx.commit().await.map_err(StoreError::from_write)?;
    Ok(())
}

async fn write(tx: &mut Transaction<'_, Postgres>, batch: &StockBatch) -> StoreResult<()> {
    let value: i64 = batch
        .cards
        .iter()
        .filter_map(|card| card.issue.as_ref().map(|(t, _)| t.amount))
        .sum();
    sqlx::query(sql::INSERT_STOCK_BATCH)
        .bind(&batch.id)
        .bind(batch.merchant_id.as_str())
        .bind(batch.program_id.as_str())
        .bind(batch.source.as_str())
        .bind(&batch.source_digest)
        .bind(i64::try_from(batch.cards.len()).unwrap_or(i64::MAX))
        .bind(value)
        .bind(batch.now.unix_millis())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;

    for chunk in batch.cards.chunks(PG_ROWS_PER_STATEMENT) {
        let records = chunk.iter().map(|card| &card.record);
        sqlx::query(
            "INSERT INTO cards (id, merchant_id, program_id, kind, state, currency, balance, held, \
             expires_at, last4, number_ciphertext, number_fingerprint, security_code_hash, created_at, updated_at) \
             SELECT id, merchant_id, program_id, kind, state, currency, balance, held, expires_at, last4, \
                    number_ciphertext, number_fingerprint, security_code_hash, created_at, created_at \
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
                         $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[], $11::BYTEA[], $12::BYTEA[], \
                         $13::BYTEA[], $14::BIGINT[]) \
               AS u(id, merchant_id, program_id, kind, state, currency, balance, held, expires_at, last4, \
                    number_ciphertext, number_fingerprint, security_code_hash, created_at)",
        )
        .bind(records.clone().map(|r| r.snapshot.id.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.merchant_id.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.program_id.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.kind.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.state.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.currency.code()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.balance).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.snapshot.held).collect::<Vec<_>>())
        .bind(
            records
                .clone()
                .map(|r| r.snapshot.expires_at.map(Timestamp::unix_millis))
                .collect::<Vec<_>>(),
        )
        .bind(records.clone().map(|r| r.last4.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.number_ciphertext.as_slice()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.number_fingerprint.as_slice()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.security_code_hash.as_slice()).collect::<Vec<_>>())
        .bind(records.map(|r| r.created_at.unix_millis()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    }

    let issues: Vec<_> = batch
        .cards
        .iter()
        .filter_map(|card| card.issue.as_ref())
        .collect();
    for chunk in issues.chunks(PG_ROWS_PER_STATEMENT) {
        let records = chunk.iter().map(|(record, _)| record);
        sqlx::query(
            "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before, \
             balance_after, reference, entry_id, created_at, channel) \
             SELECT id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, \
                    reference, id, created_at, channel \
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], \
                         $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[], $11::TEXT[]) \
               AS u(id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, \
                    reference, created_at, channel)",
        )
        .bind(records.clone().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(
            records
                .clone()
                .map(|r| r.merchant_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(records.clone().map(|r| r.card_id.as_str()).collect::<Vec<_>>())
        .bind(
            records
                .clone()
                .map(|r| r.transaction_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(records.clone().map(|r| r.amount).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.currency.as_str()).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.balance_before).collect::<Vec<_>>())
        .bind(records.clone().map(|r| r.balance_after).collect::<Vec<_>>())
        .bind(
            records
                .clone()
                .map(|r| r.reference.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .clone()
                .map(|r| r.created_at.unix_millis())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .map(|r| r.channel.map(Channel::as_str))
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    }

    let postings: Vec<_> = issues
        .iter()
        .flat_map(|(record, postings)| postings.iter().map(move |posting| (record.id.as_str(), posting)))
        .collect();
    for chunk in postings.chunks(PG_ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) \
             SELECT transaction_id, transaction_id, account_kind, owner_id, currency, amount \
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[]) \
               AS u(transaction_id, account_kind, owner_id, currency, amount)",
        )
        .bind(chunk.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.account.kind()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|(_, p)| p.account.owner_id())
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|(_, p)| p.currency.code()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.amount).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    }
    run_extras!(&mut **tx, extras(batch))
}

card_batch_reads!(PgPool);

/// Drops a file's content with the request's audit row, in one transaction: whether it did.
pub(super) async fn collect(
    pool: &PgPool,
    merchant: &MerchantId,
    id: &str,
    sha256: &[u8],
    at: Timestamp,
    audit: Option<&AuditEventRow>,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let mut statements = vec![card_batches::collect_extra(merchant, id, sha256, at)];
    statements.extend(audit.map(card_batches::audit_extra));
    match run_extras!(&mut *tx, statements) {
        Ok(()) => {
            tx.commit().await.map_err(StoreError::from_write)?;
            Ok(true)
        }
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

pub(super) async fn batch_by_digest(
    pool: &PgPool,
    merchant: &MerchantId,
    digest: &[u8],
) -> StoreResult<Option<StockBatchRecord>> {
    let row = sqlx::query(sql::STOCK_BATCH_BY_DIGEST)
        .bind(merchant.as_str())
        .bind(digest)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(stock_batch).transpose()
}

pub(super) async fn existing_fingerprints(
    pool: &PgPool,
    merchant: &MerchantId,
    fingerprints: &[Vec<u8>],
) -> StoreResult<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    for chunk in fingerprints.chunks(PG_ROWS_PER_STATEMENT) {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT number_fingerprint FROM cards WHERE merchant_id = $1 AND number_fingerprint = ANY($2::BYTEA[])",
        )
        .bind(merchant.as_str())
        .bind(chunk)
        .fetch_all(pool)
        .await?;
        found.extend(rows);
    }
    Ok(found)
}

pub(super) async fn program_owner(
    pool: &PgPool,
    program: &giftd_domain::ProgramId,
) -> StoreResult<Option<giftd_domain::MerchantId>> {
    let merchant: Option<String> = sqlx::query_scalar(sql::PROGRAM_OWNER)
        .bind(program.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(merchant.map(giftd_domain::MerchantId::new))
}
