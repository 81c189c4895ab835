//! Decoding SQLite rows into records. A value that does not decode is `StoreError::Corrupt`:
//! the database was written by something other than giftd, or by a bug.

use giftd_domain::operations::{CardSnapshot, HoldSnapshot, HoldState};
use giftd_domain::{
    Amount, CardId, CardKind, CardState, Currency, HoldId, MerchantId, Program, ProgramId, Timestamp,
    TransactionId, TransactionType,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{CardRecord, HoldRecord, StoreError, StoreResult, TransactionRecord};

pub(crate) const CARD_COLUMNS: &str = "id, merchant_id, program_id, kind, state, currency, \
    balance, held, expires_at, last4, number_ciphertext, number_fingerprint, security_code_hash, created_at";
pub(crate) const TRANSACTION_COLUMNS: &str = "id, merchant_id, card_id, type, amount, currency, \
    balance_before, balance_after, reference, reverses, hold_id, created_at";
pub(crate) const HOLD_COLUMNS: &str =
    "id, merchant_id, card_id, amount, captured_amount, state, expires_at, created_at";
pub(crate) const PROGRAM_COLUMNS: &str = "id, name, currency, denominations, min_load, max_load, \
    max_balance, reloadable, expiry_months, promotional, number_prefix, number_length, \
    security_code_length, promotion_code, created_at";

fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value}"))
}

fn currency(code: &str) -> StoreResult<Currency> {
    Currency::parse(code).ok_or_else(|| corrupt("currency", code))
}

fn amount(value: Option<i64>) -> StoreResult<Option<Amount>> {
    value
        .map(|v| Amount::new(v).map_err(|_| corrupt("amount", v)))
        .transpose()
}

fn timestamp(value: Option<i64>) -> Option<Timestamp> {
    value.map(Timestamp::from_unix_millis)
}

pub(crate) fn card(row: &SqliteRow) -> StoreResult<CardRecord> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let code: String = row.try_get("currency")?;
    Ok(CardRecord {
        merchant_id: MerchantId::new(row.try_get::<String, _>("merchant_id")?),
        snapshot: CardSnapshot {
            id: CardId::new(row.try_get::<String, _>("id")?),
            program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
            kind: CardKind::parse(&kind).ok_or_else(|| corrupt("card kind", &kind))?,
            state: CardState::parse(&state).ok_or_else(|| corrupt("card state", &state))?,
            currency: currency(&code)?,
            balance: row.try_get("balance")?,
            held: row.try_get("held")?,
            expires_at: timestamp(row.try_get("expires_at")?),
        },
        last4: row.try_get("last4")?,
        number_ciphertext: row.try_get("number_ciphertext")?,
        number_fingerprint: row.try_get("number_fingerprint")?,
        security_code_hash: row.try_get("security_code_hash")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn transaction(row: &SqliteRow) -> StoreResult<TransactionRecord> {
    let kind: String = row.try_get("type")?;
    Ok(TransactionRecord {
        id: TransactionId::new(row.try_get::<String, _>("id")?),
        merchant_id: MerchantId::new(row.try_get::<String, _>("merchant_id")?),
        card_id: CardId::new(row.try_get::<String, _>("card_id")?),
        transaction_type: TransactionType::parse(&kind).ok_or_else(|| corrupt("transaction type", &kind))?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        balance_before: row.try_get("balance_before")?,
        balance_after: row.try_get("balance_after")?,
        reference: row.try_get("reference")?,
        reverses: row
            .try_get::<Option<String>, _>("reverses")?
            .map(TransactionId::new),
        hold_id: row.try_get::<Option<String>, _>("hold_id")?.map(HoldId::new),
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn hold_snapshot(row: &SqliteRow) -> StoreResult<HoldSnapshot> {
    let state: String = row.try_get("state")?;
    Ok(HoldSnapshot {
        id: HoldId::new(row.try_get::<String, _>("id")?),
        card_id: CardId::new(row.try_get::<String, _>("card_id")?),
        amount: row.try_get("amount")?,
        state: HoldState::parse(&state).ok_or_else(|| corrupt("hold state", &state))?,
        expires_at: Timestamp::from_unix_millis(row.try_get("expires_at")?),
    })
}

pub(crate) fn hold(row: &SqliteRow) -> StoreResult<HoldRecord> {
    Ok(HoldRecord {
        merchant_id: MerchantId::new(row.try_get::<String, _>("merchant_id")?),
        snapshot: hold_snapshot(row)?,
        captured_amount: row.try_get("captured_amount")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn program(row: &SqliteRow) -> StoreResult<Program> {
    let code: String = row.try_get("currency")?;
    let denominations = row
        .try_get::<Option<String>, _>("denominations")?
        .map(|list| {
            list.split(',')
                .map(|d| {
                    d.parse::<i64>()
                        .ok()
                        .and_then(|v| Amount::new(v).ok())
                        .ok_or_else(|| corrupt("denomination", d))
                })
                .collect::<StoreResult<Vec<Amount>>>()
        })
        .transpose()?;
    let small = |name: &str| -> StoreResult<u32> {
        let value: i64 = row.try_get(name)?;
        u32::try_from(value).map_err(|_| corrupt(name, value))
    };
    Ok(Program {
        id: ProgramId::new(row.try_get::<String, _>("id")?),
        name: row.try_get("name")?,
        currency: currency(&code)?,
        denominations,
        min_load: amount(row.try_get("min_load")?)?,
        max_load: amount(row.try_get("max_load")?)?,
        max_balance: amount(row.try_get("max_balance")?)?,
        reloadable: row.try_get("reloadable")?,
        expiry_months: row
            .try_get::<Option<i64>, _>("expiry_months")?
            .map(|m| u32::try_from(m).map_err(|_| corrupt("expiry_months", m)))
            .transpose()?,
        promotional: row.try_get("promotional")?,
        number_prefix: row.try_get("number_prefix")?,
        number_length: small("number_length")?,
        security_code_length: small("security_code_length")?,
        promotion_code: row.try_get("promotion_code")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn denominations_text(program: &Program) -> Option<String> {
    program.denominations.as_ref().map(|list| {
        list.iter()
            .map(|d| d.minor().to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}
