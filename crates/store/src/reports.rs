//! What the report queries and the card stock writer exchange with the service: plain rows,
//! computed from the ledger (postings and transactions), never from the cached balances.
//!
//! The SQL lives with each backend (`sqlite/reports.rs`, `postgres/reports.rs` for reads,
//! `sqlite/stock.rs`, `postgres/stock.rs` for the bulk write); nothing here decides anything.

use giftd_domain::ledger::Posting;
use giftd_domain::{CardId, CardState, Channel, MerchantId, ProgramId, Timestamp, TransactionType};

use crate::rows::Columns;
use crate::{CardRecord, StoreError, StoreResult, TransactionRecord};

/// Outstanding value of one program in one currency at a point in time: the sum of its
/// cards' `card_available` and `card_held` postings made at or before then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiabilityLine {
    pub merchant_id: MerchantId,
    pub program_id: ProgramId,
    pub currency: String,
    /// Cards with a non-zero ledger balance at that time.
    pub cards: i64,
    /// 128 bits: every card may hold up to `i64::MAX`, so their sum may not fit 64.
    pub liability_minor: i128,
}

/// Transactions of one type, on one UTC day, of one program in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityLine {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub merchant_id: MerchantId,
    pub program_id: ProgramId,
    pub currency: String,
    pub transaction_type: TransactionType,
    pub count: i64,
    /// Sum of the transactions' amounts (positive magnitudes, as on the transactions), in
    /// 128 bits like the liability.
    pub amount_minor: i128,
}

/// Transactions of one type, of one program in one currency, that came through one channel,
/// over a report's days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLine {
    pub merchant_id: MerchantId,
    pub program_id: ProgramId,
    pub currency: String,
    pub transaction_type: TransactionType,
    /// `None`: written before transactions recorded their channel (migration 0020).
    pub channel: Option<Channel>,
    pub count: i64,
    /// As [`ActivityLine::amount_minor`].
    pub amount_minor: i128,
}

/// A card that still holds value at the report's time but has had no transaction since the
/// cut-off: a breakage or escheatment candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DormantCard {
    pub merchant_id: MerchantId,
    pub card_id: CardId,
    pub program_id: ProgramId,
    pub currency: String,
    /// The card's state now (the state is not part of the ledger).
    pub state: CardState,
    /// Ledger balance at the report's time.
    pub balance_minor: i64,
    pub last_activity_at: Timestamp,
}

/// Where a batch of card stock came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockSource {
    /// `giftd cards generate`: new inactive cards.
    Generated,
    /// `giftd cards import`: cards migrated from another processor.
    Imported,
}

impl StockSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Imported => "imported",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "generated" => Some(Self::Generated),
            "imported" => Some(Self::Imported),
            _ => None,
        }
    }
}

/// One card of a batch: its row, and for an imported balance its `issue` transaction with
/// the postings of its journal entry (the entry is named after the transaction).
#[derive(Debug, Clone)]
pub struct StockCard {
    pub record: CardRecord,
    pub issue: Option<(TransactionRecord, Vec<Posting>)>,
}

/// A whole batch, written in one database transaction: every card or none.
#[derive(Debug, Clone)]
pub struct StockBatch {
    /// `stk_...`
    pub id: String,
    pub merchant_id: MerchantId,
    pub program_id: ProgramId,
    pub source: StockSource,
    /// SHA-256 of the import file: the same file imported twice is recognised (and not
    /// written again). Generated batches carry the digest of their batch id (never equal).
    pub source_digest: Vec<u8>,
    pub cards: Vec<StockCard>,
    pub now: Timestamp,
    /// The printer's file of a batch made by a running server, kept until collected.
    pub file: Option<crate::card_batches::StockFile>,
    /// The row of the request that made the batch, written with it.
    pub audit: Option<crate::AuditEventRow>,
    /// The request's idempotency record, written with it.
    pub idempotency: Option<crate::card_batches::StockIdempotency>,
}

/// A batch already written, as `card_stock_batches` remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockBatchRecord {
    pub id: String,
    pub merchant_id: MerchantId,
    pub program_id: ProgramId,
    pub source: StockSource,
    pub cards: i64,
    pub value_minor: i64,
    pub created_at: Timestamp,
}

/// Rows per multi-row `INSERT`. SQLite allows 32,766 bound parameters per statement and
/// PostgreSQL 65,535; a card row binds 14, so 500 rows stay well inside both while turning
/// 100,000 single inserts into 200 statements.
pub const STOCK_ROWS_PER_STATEMENT: usize = 500;

// ---- decoding, shared by both backends ----

/// A sum the report queries take in two halves so that no SQL `SUM` can overflow 64 bits
/// (SQLite fails with "integer overflow", PostgreSQL's cast back to `BIGINT` with "out of
/// range"): `SUM(x >> 32)` as `{name}_high` and `SUM(x & 4294967295)` as `{name}_low`. Each
/// half of a row is at most 2^32 in size, so their sums fit 64 bits for fewer than 2^31 rows,
/// and `x = (x >> 32) * 2^32 + (x & (2^32 - 1))` exactly, negative `x` included (arithmetic
/// shift on both databases).
pub(crate) fn split_sum(row: &impl Columns, name: &str) -> StoreResult<i128> {
    let high = row.integer(&format!("{name}_high"))?;
    let low = row.integer(&format!("{name}_low"))?;
    Ok((i128::from(high) << 32) + i128::from(low))
}

pub(crate) fn liability_line(row: &impl Columns) -> StoreResult<LiabilityLine> {
    Ok(LiabilityLine {
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        program_id: ProgramId::new(row.text("program_id")?),
        currency: row.text("currency")?,
        cards: row.integer("cards")?,
        liability_minor: split_sum(row, "liability")?,
    })
}

pub(crate) fn activity_line(row: &impl Columns) -> StoreResult<ActivityLine> {
    let kind = row.text("type")?;
    Ok(ActivityLine {
        day: row.integer("day")?,
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        program_id: ProgramId::new(row.text("program_id")?),
        currency: row.text("currency")?,
        transaction_type: TransactionType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown transaction type {kind:?}")))?,
        count: row.integer("count")?,
        amount_minor: split_sum(row, "amount")?,
    })
}

pub(crate) fn channel_line(row: &impl Columns) -> StoreResult<ChannelLine> {
    let kind = row.text("type")?;
    Ok(ChannelLine {
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        program_id: ProgramId::new(row.text("program_id")?),
        currency: row.text("currency")?,
        transaction_type: TransactionType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown transaction type {kind:?}")))?,
        channel: row
            .optional_text("channel")?
            .map(|channel| {
                Channel::parse(&channel)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown channel {channel:?}")))
            })
            .transpose()?,
        count: row.integer("count")?,
        amount_minor: split_sum(row, "amount")?,
    })
}

pub(crate) fn dormant_card(row: &impl Columns) -> StoreResult<DormantCard> {
    let state = row.text("state")?;
    Ok(DormantCard {
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        card_id: CardId::new(row.text("id")?),
        program_id: ProgramId::new(row.text("program_id")?),
        currency: row.text("currency")?,
        state: CardState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown card state {state:?}")))?,
        balance_minor: row.integer("balance")?,
        last_activity_at: Timestamp::from_unix_millis(row.integer("last_at")?),
    })
}

pub(crate) fn stock_batch(row: &impl Columns) -> StoreResult<StockBatchRecord> {
    let source = row.text("source")?;
    Ok(StockBatchRecord {
        id: row.text("id")?,
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        program_id: ProgramId::new(row.text("program_id")?),
        source: StockSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown stock source {source:?}")))?,
        cards: row.integer("cards")?,
        value_minor: row.integer("value")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}
