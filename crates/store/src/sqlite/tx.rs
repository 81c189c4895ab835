//! The writer's side of SQLite: [`WriteTx`] over the single writer connection, inside the
//! transaction the writer opened with `BEGIN IMMEDIATE`. Being the only writer is what
//! serializes operations on a card here; the guarded updates are the second line of defence.
//!
//! The writer's connection is rusqlite's, used on the writer's own thread: each statement runs
//! right there (prepared once and cached), with no hand-off to another thread and back. The
//! methods are `async` only because the trait is; none of them ever waits.

use async_trait::async_trait;
use giftd_domain::ledger::Posting;
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{CardEffect, CardSnapshot, HoldSnapshot, HoldState};
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{
    ApiKeyId, CardId, CardState, Channel, CheckoutId, CloseReason, HoldId, MerchantId, Program, ProgramId,
    StaffId, StaffSessionId, Timestamp, TransactionId, TransactionType,
};
use rusqlite::{Connection, Params, Row, params};

use super::{checkouts, retention, wallet, webhooks};
use crate::rows;
use crate::sql;
use crate::{
    ApiKeyRecord, CardRecord, CheckoutRow, HoldRecord, IdempotencyRecord, StaffRecord, StaffSessionRecord,
    StoreError, StoreResult, TransactionRecord, WriteTx,
};

pub(crate) struct SqliteTx<'c> {
    pub(crate) conn: &'c mut Connection,
    /// The ledger transactions written, counted once the transaction commits.
    pub(crate) written: crate::telemetry::Written,
}

/// A refused write: a unique key's refusal becomes `UniqueViolation`, as on the other backend.
pub(super) fn write_error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error
        && matches!(
            failure.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return StoreError::UniqueViolation(message.clone().unwrap_or_else(|| failure.to_string()));
    }
    StoreError::Sqlite(error)
}

/// Runs a write statement (prepared once per connection) and answers the rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(write_error)
}

/// The first row a query answers, decoded, if there is one.
pub(super) fn query_optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(decode).transpose()
}

/// Every row a query answers, decoded.
pub(super) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut decode: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(decode(row)?);
    }
    Ok(all)
}

#[async_trait]
impl WriteTx for SqliteTx<'_> {
    async fn savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        self.conn.execute_batch(&format!("SAVEPOINT {name}"))?;
        self.written.savepoint(name);
        Ok(())
    }

    async fn release_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        self.conn.execute_batch(&format!("RELEASE SAVEPOINT {name}"))?;
        self.written.release_savepoint(name);
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        // ROLLBACK TO leaves the savepoint open; release it so the nesting stays balanced.
        self.conn
            .execute_batch(&format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"))?;
        self.written.rollback_to_savepoint(name);
        Ok(())
    }

    async fn idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        not_before: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        query_optional(
            self.conn,
            sql::IDEMPOTENCY_RECORD,
            params![merchant.as_str(), scope, key, not_before.unix_millis()],
            |row| crate::rows::idempotency_record(row),
        )
    }

    async fn put_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        replace_older_than: Timestamp,
    ) -> StoreResult<()> {
        let done = execute(
            self.conn,
            sql::PUT_IDEMPOTENCY_RECORD,
            params![
                merchant.as_str(),
                scope,
                key,
                record.request_hash,
                i64::from(record.status),
                record.body,
                record.created_at.unix_millis(),
                replace_older_than.unix_millis(),
            ],
        )?;
        if done != 1 {
            return Err(StoreError::Conflict("idempotency key"));
        }
        Ok(())
    }

    async fn insert_merchant(&mut self, id: &MerchantId, name: &str, now: Timestamp) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_MERCHANT,
            params![id.as_str(), name, now.unix_millis()],
        )?;
        Ok(())
    }

    async fn insert_api_key(&mut self, key: &ApiKeyRecord, key_hash: &[u8]) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_API_KEY,
            params![
                key_hash,
                key.merchant_id.as_str(),
                key.created_at.unix_millis(),
                key.id.as_str(),
                key.name,
                key.scope.as_str(),
                key.prefix,
                key.expires_at.map(Timestamp::unix_millis),
            ],
        )?;
        Ok(())
    }

    async fn api_key(&mut self, merchant: &MerchantId, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        query_optional(
            self.conn,
            sql::API_KEY_BY_ID,
            params![merchant.as_str(), id.as_str()],
            |row| rows::api_key(row),
        )
    }

    async fn end_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()> {
        execute(
            self.conn,
            sql::END_API_KEY,
            params![
                key.expires_at.map(Timestamp::unix_millis),
                key.revoked_at.map(Timestamp::unix_millis),
                key.merchant_id.as_str(),
                key.id.as_str(),
            ],
        )?;
        Ok(())
    }

    async fn touch_api_key(&mut self, id: &ApiKeyId, at: Timestamp) -> StoreResult<()> {
        execute(
            self.conn,
            sql::TOUCH_API_KEY,
            params![at.unix_millis(), id.as_str()],
        )?;
        Ok(())
    }

    async fn insert_audit_event(&mut self, event: &crate::AuditEventRow) -> StoreResult<()> {
        execute(
            self.conn,
            crate::audit::INSERT_AUDIT_EVENT,
            params![
                event.merchant_id.as_str(),
                event.id.as_str(),
                event.occurred_at.unix_millis(),
                event.actor_type,
                event.actor_id,
                event.request_id,
                event.client_address,
                event.method,
                event.path,
                event.operation,
                event.objects,
                event.outcome,
                event.status,
                event.reason,
            ],
        )?;
        Ok(())
    }

    async fn insert_adjustment(&mut self, a: &crate::AdjustmentRecord) -> StoreResult<()> {
        execute(
            self.conn,
            crate::adjustments::INSERT_ADJUSTMENT,
            params![
                a.id.as_str(),
                a.merchant_id.as_str(),
                a.card_id.as_str(),
                a.amount,
                a.reason.as_str(),
                a.note,
                a.state.as_str(),
                a.requested_by_type,
                a.requested_by_id,
                a.requested_at.unix_millis(),
                a.expires_at.unix_millis(),
                a.decided_by_type,
                a.decided_by_id,
                a.decided_at.map(Timestamp::unix_millis),
                a.transaction_id.as_ref().map(TransactionId::as_str),
            ],
        )?;
        Ok(())
    }

    async fn adjustment(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<crate::AdjustmentRecord>> {
        // The writer is the only one: what it reads stays as read until it commits.
        query_optional(
            self.conn,
            &crate::adjustments::by_id(),
            params![merchant.as_str(), id.as_str()],
            |row| crate::adjustments::row(row),
        )
    }

    async fn update_adjustment(&mut self, a: &crate::AdjustmentRecord) -> StoreResult<()> {
        execute(
            self.conn,
            crate::adjustments::UPDATE_ADJUSTMENT,
            params![
                a.state.as_str(),
                a.decided_by_type,
                a.decided_by_id,
                a.decided_at.map(Timestamp::unix_millis),
                a.transaction_id.as_ref().map(TransactionId::as_str),
                a.merchant_id.as_str(),
                a.id.as_str(),
            ],
        )?;
        Ok(())
    }

    async fn set_adjustment_threshold(&mut self, merchant: &MerchantId, threshold: i64) -> StoreResult<()> {
        execute(
            self.conn,
            crate::adjustments::SET_THRESHOLD,
            params![threshold, merchant.as_str()],
        )?;
        Ok(())
    }

    async fn insert_cardholder_link(&mut self, link: &crate::CardholderLinkRecord) -> StoreResult<()> {
        execute(
            self.conn,
            crate::cardholder_links::INSERT_LINK,
            params![
                link.id.as_str(),
                link.merchant_id.as_str(),
                link.card_id.as_str(),
                link.token_hash,
                link.code_ciphertext,
                link.created_at.unix_millis(),
                link.revoked_at.map(Timestamp::unix_millis),
            ],
        )?;
        Ok(())
    }

    async fn cardholder_links(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<crate::CardholderLinkRecord>> {
        query_all(
            self.conn,
            &crate::cardholder_links::of_card(),
            params![
                merchant.as_str(),
                card.as_str(),
                i64::from(crate::MAX_LINKS_LISTED)
            ],
            |row| crate::cardholder_links::row(row),
        )
    }

    async fn revoke_cardholder_link(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        id: &giftd_domain::CardholderLinkId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let changed = execute(
            self.conn,
            crate::cardholder_links::REVOKE_LINK,
            params![at.unix_millis(), merchant.as_str(), card.as_str(), id.as_str()],
        )?;
        Ok(changed == 1)
    }

    async fn insert_staff(&mut self, staff: &StaffRecord) -> StoreResult<()> {
        let millis = |at: Option<Timestamp>| at.map(Timestamp::unix_millis);
        execute(
            self.conn,
            sql::INSERT_STAFF,
            params![
                staff.id.as_str(),
                staff.merchant_id.as_str(),
                staff.email,
                staff.role.as_str(),
                staff.password_hash,
                millis(staff.temporary_password_expires_at),
                staff.totp_secret,
                millis(staff.totp_enabled_at),
                staff.totp_last_step,
                staff.attempts.failures,
                millis(staff.attempts.window_started_at),
                millis(staff.attempts.locked_until),
                staff.created_at.unix_millis(),
                millis(staff.disabled_at),
                millis(staff.last_sign_in_at),
            ],
        )?;
        Ok(())
    }

    async fn staff(&mut self, merchant: &MerchantId, id: &StaffId) -> StoreResult<Option<StaffRecord>> {
        // The writer is the only one: what it reads stays as read until it commits.
        query_optional(
            self.conn,
            sql::STAFF_BY_ID,
            params![merchant.as_str(), id.as_str()],
            |row| rows::staff(row),
        )
    }

    async fn update_staff(&mut self, staff: &StaffRecord) -> StoreResult<()> {
        let millis = |at: Option<Timestamp>| at.map(Timestamp::unix_millis);
        execute(
            self.conn,
            sql::UPDATE_STAFF,
            params![
                staff.role.as_str(),
                staff.password_hash,
                millis(staff.temporary_password_expires_at),
                staff.totp_secret,
                millis(staff.totp_enabled_at),
                staff.totp_last_step,
                staff.attempts.failures,
                millis(staff.attempts.window_started_at),
                millis(staff.attempts.locked_until),
                millis(staff.disabled_at),
                millis(staff.last_sign_in_at),
                staff.merchant_id.as_str(),
                staff.id.as_str(),
            ],
        )?;
        Ok(())
    }

    async fn active_owner_count(&mut self, merchant: &MerchantId) -> StoreResult<i64> {
        let count = query_optional(
            self.conn,
            sql::ACTIVE_OWNER_COUNT,
            params![merchant.as_str()],
            |row| Ok(row.get::<_, i64>(0)?),
        )?;
        Ok(count.unwrap_or(0))
    }

    async fn insert_staff_session(
        &mut self,
        session: &StaffSessionRecord,
        token_hash: &[u8],
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_STAFF_SESSION,
            params![
                token_hash,
                session.id.as_str(),
                session.staff_id.as_str(),
                session.merchant_id.as_str(),
                session.created_at.unix_millis(),
                session.last_seen_at.unix_millis(),
                session.expires_at.unix_millis(),
            ],
        )?;
        Ok(())
    }

    async fn end_staff_sessions(
        &mut self,
        staff: &StaffId,
        only: Option<&StaffSessionId>,
        except: Option<&StaffSessionId>,
        at: Timestamp,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::END_STAFF_SESSIONS,
            params![
                at.unix_millis(),
                staff.as_str(),
                only.map(StaffSessionId::as_str),
                except.map(StaffSessionId::as_str),
            ],
        )?;
        Ok(())
    }

    async fn touch_staff_session(&mut self, id: &StaffSessionId, at: Timestamp) -> StoreResult<()> {
        execute(
            self.conn,
            sql::TOUCH_STAFF_SESSION,
            params![at.unix_millis(), id.as_str()],
        )?;
        Ok(())
    }

    async fn insert_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_PROGRAM,
            params![
                program.id.as_str(),
                merchant.as_str(),
                program.name,
                program.currency.code(),
                rows::denominations_text(program),
                program.min_load.map(|a| a.minor()),
                program.max_load.map(|a| a.minor()),
                program.max_balance.map(|a| a.minor()),
                program.reloadable,
                program.expiry_months.map(i64::from),
                program.promotional,
                program.number_prefix,
                i64::from(program.number_length),
                i64::from(program.security_code_length),
                program.promotion_code,
                program.created_at.unix_millis(),
                program.active,
                program.breakage_on_expiry,
            ],
        )?;
        Ok(())
    }

    async fn update_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()> {
        execute(
            self.conn,
            sql::UPDATE_PROGRAM,
            params![
                program.name,
                rows::denominations_text(program),
                program.min_load.map(|a| a.minor()),
                program.max_load.map(|a| a.minor()),
                program.max_balance.map(|a| a.minor()),
                program.reloadable,
                program.expiry_months.map(i64::from),
                program.promotion_code,
                program.active,
                program.breakage_on_expiry,
                program.id.as_str(),
                merchant.as_str(),
            ],
        )?;
        Ok(())
    }

    async fn program(&mut self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>> {
        query_optional(
            self.conn,
            &sql::program_by_id(),
            params![merchant.as_str(), id.as_str()],
            |row| rows::program(row),
        )
    }

    async fn card(&mut self, merchant: &MerchantId, id: &CardId) -> StoreResult<Option<CardRecord>> {
        let sql = format!(
            "SELECT {} FROM cards WHERE merchant_id = ? AND id = ?",
            rows::CARD_COLUMNS
        );
        query_optional(self.conn, &sql, params![merchant.as_str(), id.as_str()], |row| {
            rows::card(row)
        })
    }

    async fn card_by_fingerprint(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
    ) -> StoreResult<Option<CardRecord>> {
        let sql = format!(
            "SELECT {} FROM cards WHERE merchant_id = ? AND number_fingerprint = ?",
            rows::CARD_COLUMNS
        );
        query_optional(self.conn, &sql, params![merchant.as_str(), fingerprint], |row| {
            rows::card(row)
        })
    }

    async fn insert_card(&mut self, card: &CardRecord) -> StoreResult<()> {
        let s = &card.snapshot;
        execute(
            self.conn,
            sql::INSERT_CARD,
            params![
                s.id.as_str(),
                card.merchant_id.as_str(),
                s.program_id.as_str(),
                s.kind.as_str(),
                s.state.as_str(),
                s.currency.code(),
                s.expires_at.map(Timestamp::unix_millis),
                card.last4,
                card.number_ciphertext,
                card.number_fingerprint,
                card.security_code_hash,
                card.created_at.unix_millis(),
                card.created_at.unix_millis(),
            ],
        )?;
        Ok(())
    }

    async fn set_card_state(
        &mut self,
        id: &CardId,
        from: CardState,
        to: CardState,
        now: Timestamp,
    ) -> StoreResult<()> {
        // Closing through a state change (not a transfer or merge) is a deactivation.
        let done = execute(
            self.conn,
            sql::SET_CARD_STATE,
            params![to.as_str(), now.unix_millis(), id.as_str(), from.as_str()],
        )?;
        if done != 1 {
            return Err(StoreError::Conflict("card state"));
        }
        Ok(())
    }

    async fn update_card(
        &mut self,
        card: &CardSnapshot,
        effect: &CardEffect,
        now: Timestamp,
    ) -> StoreResult<()> {
        // The guard: the card must still hold what the decision was taken on, and must not end
        // with negative available value. Anything else means the decision is stale.
        let updated = execute(
            self.conn,
            sql::APPLY_CARD_EFFECT,
            params![
                effect.balance_delta,
                effect.held_delta,
                effect.new_state.map(CardState::as_str),
                effect.close_reason.map(CloseReason::as_str),
                effect.new_expires_at.is_some(),
                effect.new_expires_at.flatten().map(Timestamp::unix_millis),
                now.unix_millis(),
                card.id.as_str(),
                card.balance,
                card.held,
            ],
        )?;
        if updated != 1 {
            return Err(StoreError::Conflict("card balance"));
        }
        Ok(())
    }

    async fn insert_transaction(
        &mut self,
        record: &TransactionRecord,
        entry_id: &TransactionId,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_TRANSACTION,
            params![
                record.id.as_str(),
                record.merchant_id.as_str(),
                record.card_id.as_str(),
                record.transaction_type.as_str(),
                record.amount,
                record.currency,
                record.balance_before,
                record.balance_after,
                record.reference,
                record.reverses.as_ref().map(TransactionId::as_str),
                record.hold_id.as_ref().map(HoldId::as_str),
                entry_id.as_str(),
                record.created_at.unix_millis(),
                record.channel.map(Channel::as_str),
            ],
        )?;
        self.written.transaction(record.transaction_type);
        Ok(())
    }

    async fn insert_posting(
        &mut self,
        transaction_id: &TransactionId,
        entry_id: &TransactionId,
        posting: &Posting,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_POSTING,
            params![
                transaction_id.as_str(),
                entry_id.as_str(),
                posting.account.kind(),
                posting.account.owner_id(),
                posting.currency.code(),
                posting.amount,
            ],
        )?;
        Ok(())
    }

    async fn insert_hold(
        &mut self,
        merchant: &MerchantId,
        hold: &HoldSnapshot,
        transaction_id: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_HOLD,
            params![
                hold.id.as_str(),
                merchant.as_str(),
                hold.card_id.as_str(),
                transaction_id.as_str(),
                hold.amount,
                hold.state.as_str(),
                hold.expires_at.unix_millis(),
                now.unix_millis(),
            ],
        )?;
        Ok(())
    }

    async fn hold(&mut self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>> {
        query_optional(
            self.conn,
            &sql::hold_by_id(),
            params![merchant.as_str(), id.as_str()],
            |row| rows::hold(row),
        )
    }

    async fn finish_hold(
        &mut self,
        id: &HoldId,
        state: HoldState,
        captured_amount: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = execute(
            self.conn,
            sql::FINISH_HOLD,
            params![state.as_str(), captured_amount, now.unix_millis(), id.as_str()],
        )?;
        if done != 1 {
            return Err(StoreError::Conflict("hold state"));
        }
        Ok(())
    }

    async fn pending_holds(
        &mut self,
        card: &CardId,
        due_at: Option<Timestamp>,
    ) -> StoreResult<Vec<HoldSnapshot>> {
        let sql = sql::due_holds_of_card();
        query_all(
            self.conn,
            &sql,
            params![card.as_str(), due_at.map_or(i64::MAX, Timestamp::unix_millis)],
            |row| rows::hold_snapshot(row),
        )
    }

    async fn transaction(
        &mut self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>> {
        query_optional(
            self.conn,
            &sql::transaction_by_id(),
            params![merchant.as_str(), id.as_str()],
            |row| rows::transaction(row),
        )
    }

    async fn reversal_totals(&mut self, original: &TransactionId) -> StoreResult<(i64, bool)> {
        let totals = query_optional(
            self.conn,
            "SELECT \
               COALESCE(SUM(CASE WHEN r.type = 'refund' AND NOT EXISTS \
                 (SELECT 1 FROM transactions v WHERE v.reverses = r.id AND v.type = 'void') \
                 THEN r.amount END), 0) AS refunded, \
               COALESCE(MAX(r.type = 'void'), 0) AS voided \
             FROM transactions r WHERE r.reverses = ?",
            params![original.as_str()],
            |row| Ok((row.get("refunded")?, row.get("voided")?)),
        )?;
        Ok(totals.unwrap_or((0, false)))
    }

    async fn attempts(&mut self, merchant: &MerchantId, fingerprint: &[u8]) -> StoreResult<Attempts> {
        let attempts = query_optional(
            self.conn,
            "SELECT failures, window_started_at, locked_until FROM code_attempts \
             WHERE merchant_id = ? AND fingerprint = ?",
            params![merchant.as_str(), fingerprint],
            |row| {
                let failures: i64 = row.get("failures")?;
                Ok(Attempts {
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    window_started_at: row
                        .get::<_, Option<i64>>("window_started_at")?
                        .map(Timestamp::from_unix_millis),
                    locked_until: row
                        .get::<_, Option<i64>>("locked_until")?
                        .map(Timestamp::from_unix_millis),
                })
            },
        )?;
        Ok(attempts.unwrap_or_default())
    }

    async fn put_attempts(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
        attempts: &Attempts,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::PUT_CODE_ATTEMPTS,
            params![
                merchant.as_str(),
                fingerprint,
                i64::from(attempts.failures),
                attempts.window_started_at.map(Timestamp::unix_millis),
                attempts.locked_until.map(Timestamp::unix_millis),
            ],
        )?;
        Ok(())
    }

    async fn programs_by_promotion_code(
        &mut self,
        merchant: &MerchantId,
        promotion_code: &str,
        limit: u32,
    ) -> StoreResult<Vec<Program>> {
        let sql = sql::programs_by_promotion_code();
        query_all(
            self.conn,
            &sql,
            params![merchant.as_str(), promotion_code, i64::from(limit)],
            |row| rows::program(row),
        )
    }

    async fn transaction_of_hold(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        transaction_type: TransactionType,
    ) -> StoreResult<Option<TransactionRecord>> {
        let sql = sql::transaction_of_hold();
        query_optional(
            self.conn,
            &sql,
            params![
                merchant.as_str(),
                card.as_str(),
                hold.as_str(),
                transaction_type.as_str()
            ],
            |row| rows::transaction(row),
        )
    }

    async fn lock_wallet(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<WalletCard>> {
        wallet::lock(self.conn, merchant, user, now)
    }

    async fn put_wallet_card(&mut self, merchant: &MerchantId, card: &WalletCard) -> StoreResult<()> {
        wallet::put(self.conn, merchant, card)
    }

    async fn remove_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: Option<&UserId>,
        card: &CardId,
    ) -> StoreResult<u64> {
        wallet::remove(self.conn, merchant, user, card)
    }

    async fn prefer_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        card: &CardId,
    ) -> StoreResult<bool> {
        wallet::prefer(self.conn, merchant, user, card)
    }

    async fn insert_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        card: &CardId,
        now: Timestamp,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_CLOVER_TOKEN,
            params![token_hash, merchant.as_str(), card.as_str(), now.unix_millis()],
        )?;
        Ok(())
    }

    async fn clover_token_card(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
    ) -> StoreResult<Option<CardId>> {
        query_optional(
            self.conn,
            sql::CLOVER_TOKEN_CARD,
            params![token_hash, merchant.as_str()],
            |row| Ok(CardId::new(row.get::<_, String>("card_id")?)),
        )
    }

    async fn revoke_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = execute(
            self.conn,
            sql::REVOKE_CLOVER_TOKEN,
            params![now.unix_millis(), token_hash, merchant.as_str()],
        )?;
        Ok(done == 1)
    }

    async fn insert_clover_lock(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        now: Timestamp,
    ) -> StoreResult<i64> {
        self.conn
            .prepare_cached(sql::INSERT_CLOVER_LOCK)
            .and_then(|mut statement| {
                statement.query_row(
                    params![hold.as_str(), merchant.as_str(), card.as_str(), now.unix_millis()],
                    |row| row.get("lock_id"),
                )
            })
            .map_err(write_error)
    }

    async fn clover_lock_id(&mut self, hold: &HoldId) -> StoreResult<Option<i64>> {
        query_optional(self.conn, sql::CLOVER_LOCK_ID, params![hold.as_str()], |row| {
            Ok(row.get("lock_id")?)
        })
    }

    async fn insert_adyen_reference(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()> {
        execute(
            self.conn,
            sql::INSERT_ADYEN_REFERENCE,
            params![
                merchant.as_str(),
                api,
                reference,
                transaction.as_str(),
                now.unix_millis()
            ],
        )?;
        Ok(())
    }

    async fn adyen_reference_transactions(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
    ) -> StoreResult<Vec<TransactionRecord>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE merchant_id = ? AND id IN \
             (SELECT transaction_id FROM adyen_references \
             WHERE merchant_id = ? AND api = ? AND reference = ?) ORDER BY seq",
            rows::TRANSACTION_COLUMNS
        );
        query_all(
            self.conn,
            &sql,
            params![merchant.as_str(), merchant.as_str(), api, reference],
            |row| rows::transaction(row),
        )
    }

    async fn seal_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        expected: u16,
        status: u16,
        body: &[u8],
    ) -> StoreResult<bool> {
        checkouts::seal_idempotency_record(self.conn, merchant, scope, key, expected, status, body)
    }

    async fn insert_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()> {
        checkouts::insert(self.conn, row)
    }

    async fn checkout(&mut self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>> {
        checkouts::get_for_update(self.conn, merchant, id)
    }

    async fn update_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()> {
        checkouts::update(self.conn, row)
    }

    async fn simulated_payment(&mut self, reference: &str) -> StoreResult<Option<String>> {
        checkouts::simulated_payment(self.conn, reference)
    }

    async fn put_simulated_payment(
        &mut self,
        reference: &str,
        state: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        checkouts::put_simulated_payment(self.conn, reference, state, now)
    }

    async fn insert_webhook_endpoint(&mut self, row: &crate::WebhookEndpointRow) -> StoreResult<()> {
        webhooks::insert_endpoint(self.conn, row)
    }

    async fn disable_webhook_endpoint(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        webhooks::disable_endpoint(self.conn, merchant, id.as_str(), now)
    }

    async fn enabled_webhook_endpoints(
        &mut self,
        merchant: &MerchantId,
    ) -> StoreResult<Vec<crate::WebhookEndpointRow>> {
        webhooks::enabled_endpoints(self.conn, merchant)
    }

    async fn insert_event(&mut self, event: &crate::EventRow) -> StoreResult<()> {
        webhooks::insert_event(self.conn, event)
    }

    async fn insert_webhook_delivery(&mut self, delivery: &crate::DeliveryRow) -> StoreResult<()> {
        webhooks::insert_delivery(self.conn, delivery)
    }

    async fn claim_webhook_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        skip_endpoints: &[String],
    ) -> StoreResult<Vec<crate::ClaimedDelivery>> {
        webhooks::claim_deliveries(self.conn, now, lease_until, limit, skip_endpoints)
    }

    async fn record_webhook_attempt(
        &mut self,
        attempt: &crate::AttemptRow,
        update: &crate::DeliveryUpdate,
    ) -> StoreResult<bool> {
        webhooks::record_attempt(self.conn, attempt, update)
    }

    async fn retry_webhook_delivery(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookDeliveryId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        webhooks::retry_delivery(self.conn, merchant, id.as_str(), now)
    }

    async fn prune_idempotency_records(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        retention::prune_idempotency_records(self.conn, before, limit)
    }

    async fn prune_events(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        retention::prune_events(self.conn, before, limit)
    }

    async fn prune_code_attempts(
        &mut self,
        window_before: Timestamp,
        unlocked_at: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        retention::prune_code_attempts(self.conn, window_before, unlocked_at, limit)
    }

    async fn batch_cards(&mut self, ids: &[CardId]) -> StoreResult<Vec<(CardRecord, Option<Timestamp>)>> {
        // The single writer already excludes every other write: nothing to lock.
        let sql = format!(
            "SELECT {}, (SELECT MIN(h.expires_at) FROM holds h WHERE h.card_id = cards.id \
             AND h.state = 'pending') AS next_hold_expiry FROM cards WHERE id = ?",
            rows::CARD_COLUMNS
        );
        let mut cards = Vec::with_capacity(ids.len());
        for id in ids {
            let card = query_optional(self.conn, &sql, params![id.as_str()], |row| {
                let expiry: Option<i64> = row.get("next_hold_expiry")?;
                Ok((rows::card(row)?, expiry.map(Timestamp::from_unix_millis)))
            })?;
            cards.extend(card);
        }
        Ok(cards)
    }

    async fn batch_idempotency_records(
        &mut self,
        keys: &[(MerchantId, String, String)],
    ) -> StoreResult<Vec<((MerchantId, String, String), IdempotencyRecord)>> {
        let mut records = Vec::new();
        for (merchant, scope, key) in keys {
            let record = self
                .idempotency_record(merchant, scope, key, Timestamp::from_unix_millis(i64::MIN))
                .await?;
            records.extend(record.map(|r| ((merchant.clone(), scope.clone(), key.clone()), r)));
        }
        Ok(records)
    }

    async fn write_batch(&mut self, writes: &crate::BatchWrites) -> StoreResult<()> {
        super::batch::write(self, writes).await
    }
}
