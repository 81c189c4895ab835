//! [`WriteTx`] on PostgreSQL: one job's transaction on a pooled connection. Many giftd
//! processes may write at once, so correctness comes from the database: a card is locked
//! (`SELECT ... FOR UPDATE`) before anything about it is decided, holds and reversals are only
//! touched under their card's lock, guarded updates check the row, and unique keys catch the
//! rest. A conflict is an error the runner retries.

use async_trait::async_trait;
use giftd_domain::ledger::Posting;
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{CardEffect, CardSnapshot, HoldSnapshot, HoldState};
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{
    ApiKeyId, CardId, CardState, Channel, CheckoutId, CloseReason, HoldId, MerchantId, Program, ProgramId,
    StaffId, StaffSessionId, Timestamp, TransactionId, TransactionType,
};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::{checkouts, queries, retention, wallet, webhooks};
use crate::rows;
use crate::sql;
use crate::{
    ApiKeyRecord, CardRecord, CheckoutRow, HoldRecord, IdempotencyRecord, StaffRecord, StaffSessionRecord,
    StoreError, StoreResult, TransactionRecord, WriteTx,
};

pub(crate) struct PgTx<'c> {
    pub(crate) conn: &'c mut PgConnection,
    /// The ledger transactions written, counted once the transaction commits.
    pub(crate) written: crate::telemetry::Written,
}

fn write_error(error: sqlx::Error) -> StoreError {
    StoreError::from_write(error)
}

#[async_trait]
impl WriteTx for PgTx<'_> {
    async fn savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        sqlx::raw_sql(AssertSqlSafe(format!("SAVEPOINT {name}")))
            .execute(&mut *self.conn)
            .await?;
        self.written.savepoint(name);
        Ok(())
    }

    async fn release_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        sqlx::raw_sql(AssertSqlSafe(format!("RELEASE SAVEPOINT {name}")))
            .execute(&mut *self.conn)
            .await?;
        self.written.release_savepoint(name);
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        // ROLLBACK TO leaves the savepoint open; release it so the nesting stays balanced.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        )))
        .execute(&mut *self.conn)
        .await?;
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
        let row = sqlx::query(sql::IDEMPOTENCY_RECORD)
            .bind(merchant.as_str())
            .bind(scope)
            .bind(key)
            .bind(not_before.unix_millis())
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(crate::rows::idempotency_record).transpose()
    }

    async fn put_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        replace_older_than: Timestamp,
    ) -> StoreResult<()> {
        let done = sqlx::query(sql::PUT_IDEMPOTENCY_RECORD)
            .bind(merchant.as_str())
            .bind(scope)
            .bind(key)
            .bind(&record.request_hash)
            .bind(i64::from(record.status))
            .bind(&record.body)
            .bind(record.created_at.unix_millis())
            .bind(replace_older_than.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict("idempotency key"));
        }
        Ok(())
    }

    async fn insert_merchant(&mut self, id: &MerchantId, name: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(sql::INSERT_MERCHANT)
            .bind(id.as_str())
            .bind(name)
            .bind(now.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_api_key(&mut self, key: &ApiKeyRecord, key_hash: &[u8]) -> StoreResult<()> {
        sqlx::query(sql::INSERT_API_KEY)
            .bind(key_hash)
            .bind(key.merchant_id.as_str())
            .bind(key.created_at.unix_millis())
            .bind(key.id.as_str())
            .bind(&key.name)
            .bind(key.scope.as_str())
            .bind(&key.prefix)
            .bind(key.expires_at.map(Timestamp::unix_millis))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn api_key(&mut self, merchant: &MerchantId, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(sql::API_KEY_BY_ID)
            .bind(merchant.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn end_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()> {
        sqlx::query(sql::END_API_KEY)
            .bind(key.expires_at.map(Timestamp::unix_millis))
            .bind(key.revoked_at.map(Timestamp::unix_millis))
            .bind(key.merchant_id.as_str())
            .bind(key.id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn touch_api_key(&mut self, id: &ApiKeyId, at: Timestamp) -> StoreResult<()> {
        sqlx::query(sql::TOUCH_API_KEY)
            .bind(at.unix_millis())
            .bind(id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_audit_event(&mut self, event: &crate::AuditEventRow) -> StoreResult<()> {
        sqlx::query(crate::audit::INSERT_AUDIT_EVENT)
            .bind(event.merchant_id.as_str())
            .bind(event.id.as_str())
            .bind(event.occurred_at.unix_millis())
            .bind(&event.actor_type)
            .bind(&event.actor_id)
            .bind(&event.request_id)
            .bind(&event.client_address)
            .bind(&event.method)
            .bind(&event.path)
            .bind(&event.operation)
            .bind(&event.objects)
            .bind(&event.outcome)
            .bind(event.status)
            .bind(&event.reason)
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_adjustment(&mut self, a: &crate::AdjustmentRecord) -> StoreResult<()> {
        sqlx::query(crate::adjustments::INSERT_ADJUSTMENT)
            .bind(a.id.as_str())
            .bind(a.merchant_id.as_str())
            .bind(a.card_id.as_str())
            .bind(a.amount)
            .bind(a.reason.as_str())
            .bind(&a.note)
            .bind(a.state.as_str())
            .bind(&a.requested_by_type)
            .bind(&a.requested_by_id)
            .bind(a.requested_at.unix_millis())
            .bind(a.expires_at.unix_millis())
            .bind(&a.decided_by_type)
            .bind(&a.decided_by_id)
            .bind(a.decided_at.map(Timestamp::unix_millis))
            .bind(a.transaction_id.as_ref().map(TransactionId::as_str))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn adjustment(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<crate::AdjustmentRecord>> {
        // Locked: an approval and a rejection at once are decided one after the other.
        let row = sqlx::query(AssertSqlSafe(format!(
            "{} FOR UPDATE",
            crate::adjustments::by_id()
        )))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *self.conn)
        .await?;
        row.as_ref().map(crate::adjustments::row).transpose()
    }

    async fn update_adjustment(&mut self, a: &crate::AdjustmentRecord) -> StoreResult<()> {
        sqlx::query(crate::adjustments::UPDATE_ADJUSTMENT)
            .bind(a.state.as_str())
            .bind(&a.decided_by_type)
            .bind(&a.decided_by_id)
            .bind(a.decided_at.map(Timestamp::unix_millis))
            .bind(a.transaction_id.as_ref().map(TransactionId::as_str))
            .bind(a.merchant_id.as_str())
            .bind(a.id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn set_adjustment_threshold(&mut self, merchant: &MerchantId, threshold: i64) -> StoreResult<()> {
        sqlx::query(crate::adjustments::SET_THRESHOLD)
            .bind(threshold)
            .bind(merchant.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_cardholder_link(&mut self, link: &crate::CardholderLinkRecord) -> StoreResult<()> {
        sqlx::query(crate::cardholder_links::INSERT_LINK)
            .bind(link.id.as_str())
            .bind(link.merchant_id.as_str())
            .bind(link.card_id.as_str())
            .bind(&link.token_hash)
            .bind(&link.code_ciphertext)
            .bind(link.created_at.unix_millis())
            .bind(link.revoked_at.map(Timestamp::unix_millis))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn cardholder_links(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<crate::CardholderLinkRecord>> {
        let rows = sqlx::query(AssertSqlSafe(crate::cardholder_links::of_card()))
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(i64::from(crate::MAX_LINKS_LISTED))
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(crate::cardholder_links::row).collect()
    }

    async fn revoke_cardholder_link(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        id: &giftd_domain::CardholderLinkId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(crate::cardholder_links::REVOKE_LINK)
            .bind(at.unix_millis())
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_staff(&mut self, staff: &StaffRecord) -> StoreResult<()> {
        let millis = |at: Option<Timestamp>| at.map(Timestamp::unix_millis);
        sqlx::query(sql::INSERT_STAFF)
            .bind(staff.id.as_str())
            .bind(staff.merchant_id.as_str())
            .bind(&staff.email)
            .bind(staff.role.as_str())
            .bind(&staff.password_hash)
            .bind(millis(staff.temporary_password_expires_at))
            .bind(&staff.totp_secret)
            .bind(millis(staff.totp_enabled_at))
            .bind(staff.totp_last_step)
            .bind(i64::from(staff.attempts.failures))
            .bind(millis(staff.attempts.window_started_at))
            .bind(millis(staff.attempts.locked_until))
            .bind(staff.created_at.unix_millis())
            .bind(millis(staff.disabled_at))
            .bind(millis(staff.last_sign_in_at))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn staff(&mut self, merchant: &MerchantId, id: &StaffId) -> StoreResult<Option<StaffRecord>> {
        // Locked: two failed sign-ins at once must both count.
        let row = sqlx::query(AssertSqlSafe(format!("{} FOR UPDATE", sql::STAFF_BY_ID)))
            .bind(merchant.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(rows::staff).transpose()
    }

    async fn update_staff(&mut self, staff: &StaffRecord) -> StoreResult<()> {
        let millis = |at: Option<Timestamp>| at.map(Timestamp::unix_millis);
        sqlx::query(sql::UPDATE_STAFF)
            .bind(staff.role.as_str())
            .bind(&staff.password_hash)
            .bind(millis(staff.temporary_password_expires_at))
            .bind(&staff.totp_secret)
            .bind(millis(staff.totp_enabled_at))
            .bind(staff.totp_last_step)
            .bind(i64::from(staff.attempts.failures))
            .bind(millis(staff.attempts.window_started_at))
            .bind(millis(staff.attempts.locked_until))
            .bind(millis(staff.disabled_at))
            .bind(millis(staff.last_sign_in_at))
            .bind(staff.merchant_id.as_str())
            .bind(staff.id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn active_owner_count(&mut self, merchant: &MerchantId) -> StoreResult<i64> {
        let count: i64 = sqlx::query_scalar(sql::ACTIVE_OWNER_COUNT)
            .bind(merchant.as_str())
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(count)
    }

    async fn insert_staff_session(
        &mut self,
        session: &StaffSessionRecord,
        token_hash: &[u8],
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_STAFF_SESSION)
            .bind(token_hash)
            .bind(session.id.as_str())
            .bind(session.staff_id.as_str())
            .bind(session.merchant_id.as_str())
            .bind(session.created_at.unix_millis())
            .bind(session.last_seen_at.unix_millis())
            .bind(session.expires_at.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn end_staff_sessions(
        &mut self,
        staff: &StaffId,
        only: Option<&StaffSessionId>,
        except: Option<&StaffSessionId>,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(sql::END_STAFF_SESSIONS)
            .bind(at.unix_millis())
            .bind(staff.as_str())
            .bind(only.map(StaffSessionId::as_str))
            .bind(except.map(StaffSessionId::as_str))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn touch_staff_session(&mut self, id: &StaffSessionId, at: Timestamp) -> StoreResult<()> {
        sqlx::query(sql::TOUCH_STAFF_SESSION)
            .bind(at.unix_millis())
            .bind(id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()> {
        sqlx::query(sql::INSERT_PROGRAM)
            .bind(program.id.as_str())
            .bind(merchant.as_str())
            .bind(&program.name)
            .bind(program.currency.code())
            .bind(rows::denominations_text(program))
            .bind(program.min_load.map(|a| a.minor()))
            .bind(program.max_load.map(|a| a.minor()))
            .bind(program.max_balance.map(|a| a.minor()))
            .bind(program.reloadable)
            .bind(program.expiry_months.map(i64::from))
            .bind(program.promotional)
            .bind(&program.number_prefix)
            .bind(i64::from(program.number_length))
            .bind(i64::from(program.security_code_length))
            .bind(&program.promotion_code)
            .bind(program.created_at.unix_millis())
            .bind(program.active)
            .bind(program.breakage_on_expiry)
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn update_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()> {
        sqlx::query(sql::UPDATE_PROGRAM)
            .bind(&program.name)
            .bind(rows::denominations_text(program))
            .bind(program.min_load.map(|a| a.minor()))
            .bind(program.max_load.map(|a| a.minor()))
            .bind(program.max_balance.map(|a| a.minor()))
            .bind(program.reloadable)
            .bind(program.expiry_months.map(i64::from))
            .bind(&program.promotion_code)
            .bind(program.active)
            .bind(program.breakage_on_expiry)
            .bind(program.id.as_str())
            .bind(merchant.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn program(&mut self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>> {
        queries::program(&mut *self.conn, merchant, id).await
    }

    async fn card(&mut self, merchant: &MerchantId, id: &CardId) -> StoreResult<Option<CardRecord>> {
        let sql = format!(
            "SELECT {} FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE",
            rows::CARD_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(rows::card).transpose()
    }

    async fn card_by_fingerprint(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
    ) -> StoreResult<Option<CardRecord>> {
        let sql = format!(
            "SELECT {} FROM cards WHERE merchant_id = $1 AND number_fingerprint = $2 FOR UPDATE",
            rows::CARD_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(fingerprint)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(rows::card).transpose()
    }

    async fn insert_card(&mut self, card: &CardRecord) -> StoreResult<()> {
        let s = &card.snapshot;
        sqlx::query(sql::INSERT_CARD)
            .bind(s.id.as_str())
            .bind(card.merchant_id.as_str())
            .bind(s.program_id.as_str())
            .bind(s.kind.as_str())
            .bind(s.state.as_str())
            .bind(s.currency.code())
            .bind(s.expires_at.map(Timestamp::unix_millis))
            .bind(&card.last4)
            .bind(&card.number_ciphertext)
            .bind(&card.number_fingerprint)
            .bind(&card.security_code_hash)
            .bind(card.created_at.unix_millis())
            .bind(card.created_at.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
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
        let done = sqlx::query(sql::SET_CARD_STATE)
            .bind(to.as_str())
            .bind(now.unix_millis())
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        if done.rows_affected() != 1 {
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
        let updated = sqlx::query(sql::APPLY_CARD_EFFECT)
            .bind(effect.balance_delta)
            .bind(effect.held_delta)
            .bind(effect.new_state.map(CardState::as_str))
            .bind(effect.close_reason.map(CloseReason::as_str))
            .bind(effect.new_expires_at.is_some())
            .bind(effect.new_expires_at.flatten().map(Timestamp::unix_millis))
            .bind(now.unix_millis())
            .bind(card.id.as_str())
            .bind(card.balance)
            .bind(card.held)
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict("card balance"));
        }
        Ok(())
    }

    async fn insert_transaction(
        &mut self,
        record: &TransactionRecord,
        entry_id: &TransactionId,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_TRANSACTION)
            .bind(record.id.as_str())
            .bind(record.merchant_id.as_str())
            .bind(record.card_id.as_str())
            .bind(record.transaction_type.as_str())
            .bind(record.amount)
            .bind(&record.currency)
            .bind(record.balance_before)
            .bind(record.balance_after)
            .bind(&record.reference)
            .bind(record.reverses.as_ref().map(TransactionId::as_str))
            .bind(record.hold_id.as_ref().map(HoldId::as_str))
            .bind(entry_id.as_str())
            .bind(record.created_at.unix_millis())
            .bind(record.channel.map(Channel::as_str))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        self.written.transaction(record.transaction_type);
        Ok(())
    }

    async fn insert_posting(
        &mut self,
        transaction_id: &TransactionId,
        entry_id: &TransactionId,
        posting: &Posting,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_POSTING)
            .bind(transaction_id.as_str())
            .bind(entry_id.as_str())
            .bind(posting.account.kind())
            .bind(posting.account.owner_id())
            .bind(posting.currency.code())
            .bind(posting.amount)
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn insert_hold(
        &mut self,
        merchant: &MerchantId,
        hold: &HoldSnapshot,
        transaction_id: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_HOLD)
            .bind(hold.id.as_str())
            .bind(merchant.as_str())
            .bind(hold.card_id.as_str())
            .bind(transaction_id.as_str())
            .bind(hold.amount)
            .bind(hold.state.as_str())
            .bind(hold.expires_at.unix_millis())
            .bind(now.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn hold(&mut self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>> {
        queries::hold(&mut *self.conn, merchant, id).await
    }

    async fn finish_hold(
        &mut self,
        id: &HoldId,
        state: HoldState,
        captured_amount: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = sqlx::query(sql::FINISH_HOLD)
            .bind(state.as_str())
            .bind(captured_amount)
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        if done.rows_affected() != 1 {
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
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(card.as_str())
            .bind(due_at.map_or(i64::MAX, Timestamp::unix_millis))
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(rows::hold_snapshot).collect()
    }

    async fn transaction(
        &mut self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>> {
        queries::transaction(&mut *self.conn, merchant, id).await
    }

    async fn reversal_totals(&mut self, original: &TransactionId) -> StoreResult<(i64, bool)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN r.type = 'refund' AND NOT EXISTS \
               (SELECT 1 FROM transactions v WHERE v.reverses = r.id AND v.type = 'void') \
               THEN r.amount END), 0) AS BIGINT) AS refunded, \
             COALESCE(bool_or(r.type = 'void'), false) AS voided \
             FROM transactions r WHERE r.reverses = $1",
        )
        .bind(original.as_str())
        .fetch_one(&mut *self.conn)
        .await?;
        Ok((row.try_get("refunded")?, row.try_get("voided")?))
    }

    async fn attempts(&mut self, merchant: &MerchantId, fingerprint: &[u8]) -> StoreResult<Attempts> {
        // Make sure the row exists, then lock it: concurrent wrong codes for one number are
        // counted one after the other, none lost.
        sqlx::query(
            "INSERT INTO code_attempts (merchant_id, fingerprint, failures) VALUES ($1, $2, 0) \
             ON CONFLICT (merchant_id, fingerprint) DO NOTHING",
        )
        .bind(merchant.as_str())
        .bind(fingerprint)
        .execute(&mut *self.conn)
        .await
        .map_err(write_error)?;
        let row = sqlx::query(
            "SELECT failures, window_started_at, locked_until FROM code_attempts \
             WHERE merchant_id = $1 AND fingerprint = $2 FOR UPDATE",
        )
        .bind(merchant.as_str())
        .bind(fingerprint)
        .fetch_optional(&mut *self.conn)
        .await?;
        let Some(row) = row else {
            return Ok(Attempts::default());
        };
        let failures: i64 = row.try_get("failures")?;
        Ok(Attempts {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            window_started_at: row
                .try_get::<Option<i64>, _>("window_started_at")?
                .map(Timestamp::from_unix_millis),
            locked_until: row
                .try_get::<Option<i64>, _>("locked_until")?
                .map(Timestamp::from_unix_millis),
        })
    }

    async fn put_attempts(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
        attempts: &Attempts,
    ) -> StoreResult<()> {
        sqlx::query(sql::PUT_CODE_ATTEMPTS)
            .bind(merchant.as_str())
            .bind(fingerprint)
            .bind(i64::from(attempts.failures))
            .bind(attempts.window_started_at.map(Timestamp::unix_millis))
            .bind(attempts.locked_until.map(Timestamp::unix_millis))
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn programs_by_promotion_code(
        &mut self,
        merchant: &MerchantId,
        promotion_code: &str,
        limit: u32,
    ) -> StoreResult<Vec<Program>> {
        let sql = sql::programs_by_promotion_code();
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(promotion_code)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(rows::program).collect()
    }

    async fn transaction_of_hold(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        transaction_type: TransactionType,
    ) -> StoreResult<Option<TransactionRecord>> {
        let sql = sql::transaction_of_hold();
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(hold.as_str())
            .bind(transaction_type.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(rows::transaction).transpose()
    }

    async fn lock_wallet(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<WalletCard>> {
        wallet::lock(&mut *self.conn, merchant, user, now).await
    }

    async fn put_wallet_card(&mut self, merchant: &MerchantId, card: &WalletCard) -> StoreResult<()> {
        wallet::put(&mut *self.conn, merchant, card).await
    }

    async fn remove_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: Option<&UserId>,
        card: &CardId,
    ) -> StoreResult<u64> {
        wallet::remove(&mut *self.conn, merchant, user, card).await
    }

    async fn prefer_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        card: &CardId,
    ) -> StoreResult<bool> {
        wallet::prefer(&mut *self.conn, merchant, user, card).await
    }

    async fn insert_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        card: &CardId,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_CLOVER_TOKEN)
            .bind(token_hash)
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(now.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn clover_token_card(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
    ) -> StoreResult<Option<CardId>> {
        let row = sqlx::query(sql::CLOVER_TOKEN_CARD)
            .bind(token_hash)
            .bind(merchant.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("card_id"))
            .transpose()?
            .map(CardId::new))
    }

    async fn revoke_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql::REVOKE_CLOVER_TOKEN)
            .bind(now.unix_millis())
            .bind(token_hash)
            .bind(merchant.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_clover_lock(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let row = sqlx::query(sql::INSERT_CLOVER_LOCK)
            .bind(hold.as_str())
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(now.unix_millis())
            .fetch_one(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(row.try_get("lock_id")?)
    }

    async fn clover_lock_id(&mut self, hold: &HoldId) -> StoreResult<Option<i64>> {
        let row = sqlx::query(sql::CLOVER_LOCK_ID)
            .bind(hold.as_str())
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("lock_id")).transpose()?)
    }

    async fn insert_adyen_reference(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_ADYEN_REFERENCE)
            .bind(merchant.as_str())
            .bind(api)
            .bind(reference)
            .bind(transaction.as_str())
            .bind(now.unix_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn adyen_reference_transactions(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
    ) -> StoreResult<Vec<TransactionRecord>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE merchant_id = $1 AND id IN \
             (SELECT transaction_id FROM adyen_references \
             WHERE merchant_id = $1 AND api = $2 AND reference = $3) ORDER BY seq",
            rows::TRANSACTION_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(api)
            .bind(reference)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(rows::transaction).collect()
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
        checkouts::seal_idempotency_record(&mut *self.conn, merchant, scope, key, expected, status, body)
            .await
    }

    async fn insert_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()> {
        checkouts::insert(&mut *self.conn, row).await
    }

    async fn checkout(&mut self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>> {
        checkouts::get(&mut *self.conn, merchant, id, true).await
    }

    async fn update_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()> {
        checkouts::update(&mut *self.conn, row).await
    }

    async fn simulated_payment(&mut self, reference: &str) -> StoreResult<Option<String>> {
        checkouts::simulated_payment(&mut *self.conn, reference).await
    }

    async fn put_simulated_payment(
        &mut self,
        reference: &str,
        state: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        checkouts::put_simulated_payment(&mut *self.conn, reference, state, now).await
    }

    async fn insert_webhook_endpoint(&mut self, row: &crate::WebhookEndpointRow) -> StoreResult<()> {
        webhooks::insert_endpoint(&mut *self.conn, row).await
    }

    async fn disable_webhook_endpoint(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        webhooks::disable_endpoint(&mut *self.conn, merchant, id.as_str(), now).await
    }

    async fn enabled_webhook_endpoints(
        &mut self,
        merchant: &MerchantId,
    ) -> StoreResult<Vec<crate::WebhookEndpointRow>> {
        webhooks::enabled_endpoints(&mut *self.conn, merchant).await
    }

    async fn insert_event(&mut self, event: &crate::EventRow) -> StoreResult<()> {
        webhooks::insert_event(&mut *self.conn, event).await
    }

    async fn insert_webhook_delivery(&mut self, delivery: &crate::DeliveryRow) -> StoreResult<()> {
        webhooks::insert_delivery(&mut *self.conn, delivery).await
    }

    async fn claim_webhook_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        skip_endpoints: &[String],
    ) -> StoreResult<Vec<crate::ClaimedDelivery>> {
        webhooks::claim_deliveries(&mut *self.conn, now, lease_until, limit, skip_endpoints).await
    }

    async fn record_webhook_attempt(
        &mut self,
        attempt: &crate::AttemptRow,
        update: &crate::DeliveryUpdate,
    ) -> StoreResult<bool> {
        webhooks::record_attempt(&mut *self.conn, attempt, update).await
    }

    async fn retry_webhook_delivery(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookDeliveryId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        webhooks::retry_delivery(&mut *self.conn, merchant, id.as_str(), now).await
    }

    async fn prune_idempotency_records(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        retention::prune_idempotency_records(&mut *self.conn, before, limit).await
    }

    async fn prune_events(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        retention::prune_events(&mut *self.conn, before, limit).await
    }

    async fn prune_code_attempts(
        &mut self,
        window_before: Timestamp,
        unlocked_at: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        retention::prune_code_attempts(&mut *self.conn, window_before, unlocked_at, limit).await
    }

    async fn batch_cards(&mut self, ids: &[CardId]) -> StoreResult<Vec<(CardRecord, Option<Timestamp>)>> {
        super::batch::cards(&mut *self.conn, ids).await
    }

    async fn batch_idempotency_records(
        &mut self,
        keys: &[(MerchantId, String, String)],
    ) -> StoreResult<Vec<((MerchantId, String, String), IdempotencyRecord)>> {
        super::batch::idempotency_records(&mut *self.conn, keys).await
    }

    async fn write_batch(&mut self, writes: &crate::BatchWrites) -> StoreResult<()> {
        super::batch::write(&mut *self.conn, writes).await
    }
}
