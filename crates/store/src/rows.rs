//! Decoding rows into records, for both backends: each backend's row type implements
//! [`Columns`], and the decoding is written once. A value that does not decode is
//! `StoreError::Corrupt`: the database was written by something other than giftd, or by a bug.

use giftd_domain::operations::{CardSnapshot, HoldSnapshot, HoldState};
use giftd_domain::{
    Amount, CardId, CardKind, CardState, Channel, CloseReason, Currency, HoldId, MerchantId, Program,
    ProgramId, Timestamp, TransactionId, TransactionType,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::{CardRecord, HoldRecord, IdempotencyRecord, StoreError, StoreResult, TransactionRecord};

pub(crate) const CARD_COLUMNS: &str = "id, merchant_id, program_id, kind, state, currency, \
    balance, held, expires_at, closed_reason, last4, number_ciphertext, number_fingerprint, security_code_hash, created_at";
pub(crate) const TRANSACTION_COLUMNS: &str = "id, merchant_id, card_id, type, amount, currency, \
    balance_before, balance_after, reference, reverses, hold_id, channel, created_at";
pub(crate) const HOLD_COLUMNS: &str =
    "id, merchant_id, card_id, amount, captured_amount, state, expires_at, created_at";
pub(crate) const PROGRAM_COLUMNS: &str = "id, name, currency, denominations, min_load, max_load, \
    max_balance, reloadable, expiry_months, promotional, number_prefix, number_length, \
    security_code_length, promotion_code, created_at, active, breakage_on_expiry";

/// Typed column access shared by the backends' row types.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn optional_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn integer(&self, column: &str) -> StoreResult<i64>;
    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>>;
    fn boolean(&self, column: &str) -> StoreResult<bool>;
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>>;
    fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>>;
}

macro_rules! columns_for {
    ($row:ty, $get:ident) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> StoreResult<String> {
                Ok(self.$get(column)?)
            }
            fn optional_text(&self, column: &str) -> StoreResult<Option<String>> {
                Ok(self.$get(column)?)
            }
            fn integer(&self, column: &str) -> StoreResult<i64> {
                Ok(self.$get(column)?)
            }
            fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>> {
                Ok(self.$get(column)?)
            }
            fn boolean(&self, column: &str) -> StoreResult<bool> {
                Ok(self.$get(column)?)
            }
            fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
                Ok(self.$get(column)?)
            }
            fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
                Ok(self.$get(column)?)
            }
        }
    };
}

columns_for!(SqliteRow, try_get);
columns_for!(PgRow, try_get);
// The SQLite writer's rows (rusqlite), decoded by the same functions as the pools' rows.
columns_for!(rusqlite::Row<'_>, get);

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

pub(crate) fn card(row: &impl Columns) -> StoreResult<CardRecord> {
    let kind: String = row.text("kind")?;
    let state: String = row.text("state")?;
    let code: String = row.text("currency")?;
    Ok(CardRecord {
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        snapshot: CardSnapshot {
            id: CardId::new(row.text("id")?),
            program_id: ProgramId::new(row.text("program_id")?),
            kind: CardKind::parse(&kind).ok_or_else(|| corrupt("card kind", &kind))?,
            state: CardState::parse(&state).ok_or_else(|| corrupt("card state", &state))?,
            currency: currency(&code)?,
            balance: row.integer("balance")?,
            held: row.integer("held")?,
            expires_at: timestamp(row.optional_integer("expires_at")?),
        },
        closed_reason: row
            .optional_text("closed_reason")?
            .map(|reason| CloseReason::parse(&reason).ok_or_else(|| corrupt("closed reason", &reason)))
            .transpose()?,
        last4: row.text("last4")?,
        number_ciphertext: row.bytes("number_ciphertext")?,
        number_fingerprint: row.bytes("number_fingerprint")?,
        security_code_hash: row.bytes("security_code_hash")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

pub(crate) fn transaction(row: &impl Columns) -> StoreResult<TransactionRecord> {
    let kind: String = row.text("type")?;
    Ok(TransactionRecord {
        id: TransactionId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        card_id: CardId::new(row.text("card_id")?),
        transaction_type: TransactionType::parse(&kind).ok_or_else(|| corrupt("transaction type", &kind))?,
        amount: row.integer("amount")?,
        currency: row.text("currency")?,
        balance_before: row.integer("balance_before")?,
        balance_after: row.integer("balance_after")?,
        reference: row.optional_text("reference")?,
        reverses: row.optional_text("reverses")?.map(TransactionId::new),
        hold_id: row.optional_text("hold_id")?.map(HoldId::new),
        channel: row
            .optional_text("channel")?
            .map(|channel| Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel)))
            .transpose()?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

pub(crate) fn hold_snapshot(row: &impl Columns) -> StoreResult<HoldSnapshot> {
    let state: String = row.text("state")?;
    Ok(HoldSnapshot {
        id: HoldId::new(row.text("id")?),
        card_id: CardId::new(row.text("card_id")?),
        amount: row.integer("amount")?,
        state: HoldState::parse(&state).ok_or_else(|| corrupt("hold state", &state))?,
        expires_at: Timestamp::from_unix_millis(row.integer("expires_at")?),
    })
}

/// An idempotency record, as `sql::IDEMPOTENCY_RECORD` reads it.
pub(crate) fn idempotency_record(row: &impl Columns) -> StoreResult<IdempotencyRecord> {
    let status = row.integer("status")?;
    Ok(IdempotencyRecord {
        request_hash: row.bytes("request_hash")?,
        status: u16::try_from(status).map_err(|_| corrupt("idempotency status", status))?,
        body: row.bytes("body")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

/// An idempotency record with its key, as `sql::STORED_ANSWERS_BY_PREFIX` reads it.
pub(crate) fn keyed_idempotency_record(row: &impl Columns) -> StoreResult<(String, IdempotencyRecord)> {
    Ok((row.text("key")?, idempotency_record(row)?))
}

/// An API key, as `sql::API_KEY_BY_HASH` and its siblings read it.
pub(crate) fn api_key(row: &impl Columns) -> StoreResult<crate::ApiKeyRecord> {
    let scope = row.text("scope")?;
    let at = |column: &str| {
        row.optional_integer(column)
            .map(|v| v.map(Timestamp::from_unix_millis))
    };
    Ok(crate::ApiKeyRecord {
        id: giftd_domain::ApiKeyId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        name: row.text("name")?,
        scope: giftd_domain::Scope::parse(&scope).ok_or_else(|| corrupt("API key scope", &scope))?,
        prefix: row.optional_text("prefix")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        expires_at: at("expires_at")?,
        revoked_at: at("revoked_at")?,
        last_used_at: at("last_used_at")?,
    })
}

/// A staff member, as `sql::STAFF_BY_ID` and its siblings read it.
pub(crate) fn staff(row: &impl Columns) -> StoreResult<crate::StaffRecord> {
    let role = row.text("role")?;
    let at = |column: &str| {
        row.optional_integer(column)
            .map(|v| v.map(Timestamp::from_unix_millis))
    };
    let failures = row.integer("failed_sign_ins")?;
    Ok(crate::StaffRecord {
        id: giftd_domain::StaffId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        email: row.text("email")?,
        role: giftd_domain::Role::parse(&role).ok_or_else(|| corrupt("staff role", &role))?,
        password_hash: row.text("password_hash")?,
        temporary_password_expires_at: at("temporary_password_expires_at")?,
        totp_secret: row.optional_bytes("totp_secret")?,
        totp_enabled_at: at("totp_enabled_at")?,
        totp_last_step: row.optional_integer("totp_last_step")?,
        attempts: giftd_domain::lockout::Attempts {
            failures: u32::try_from(failures).map_err(|_| corrupt("failed sign-ins", failures))?,
            window_started_at: at("failure_window_started_at")?,
            locked_until: at("locked_until")?,
        },
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        disabled_at: at("disabled_at")?,
        last_sign_in_at: at("last_sign_in_at")?,
    })
}

/// A staff member's session, as `sql::STAFF_SESSION_BY_HASH` reads it.
pub(crate) fn staff_session(row: &impl Columns) -> StoreResult<crate::StaffSessionRecord> {
    Ok(crate::StaffSessionRecord {
        id: giftd_domain::StaffSessionId::new(row.text("id")?),
        staff_id: giftd_domain::StaffId::new(row.text("staff_id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        last_seen_at: Timestamp::from_unix_millis(row.integer("last_seen_at")?),
        expires_at: Timestamp::from_unix_millis(row.integer("expires_at")?),
        ended_at: row.optional_integer("ended_at")?.map(Timestamp::from_unix_millis),
    })
}

/// A wallet user's id as stored.
pub(crate) fn user_id(text: &str) -> StoreResult<giftd_domain::wallet::UserId> {
    giftd_domain::wallet::UserId::parse(text).ok_or_else(|| corrupt("wallet user id", text))
}

pub(crate) fn hold(row: &impl Columns) -> StoreResult<HoldRecord> {
    Ok(HoldRecord {
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        snapshot: hold_snapshot(row)?,
        captured_amount: row.integer("captured_amount")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

pub(crate) fn program(row: &impl Columns) -> StoreResult<Program> {
    let code: String = row.text("currency")?;
    let denominations = row
        .optional_text("denominations")?
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
        let value: i64 = row.integer(name)?;
        u32::try_from(value).map_err(|_| corrupt(name, value))
    };
    Ok(Program {
        id: ProgramId::new(row.text("id")?),
        name: row.text("name")?,
        currency: currency(&code)?,
        denominations,
        min_load: amount(row.optional_integer("min_load")?)?,
        max_load: amount(row.optional_integer("max_load")?)?,
        max_balance: amount(row.optional_integer("max_balance")?)?,
        reloadable: row.boolean("reloadable")?,
        expiry_months: row
            .optional_integer("expiry_months")?
            .map(|m| u32::try_from(m).map_err(|_| corrupt("expiry_months", m)))
            .transpose()?,
        promotional: row.boolean("promotional")?,
        number_prefix: row.text("number_prefix")?,
        number_length: small("number_length")?,
        security_code_length: small("security_code_length")?,
        promotion_code: row.optional_text("promotion_code")?,
        active: row.boolean("active")?,
        breakage_on_expiry: row.boolean("breakage_on_expiry")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
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
