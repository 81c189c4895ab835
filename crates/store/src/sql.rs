//! SQL that both backends run as written, so that a statement is written once. Placeholders
//! are PostgreSQL's `$N`: SQLite reads `$N` as a named parameter, which sqlx binds as argument
//! N, and which rusqlite (the SQLite writer) binds by position, parameter N being the N-th to
//! appear; so in every statement here the first appearances run `$1`, `$2`, … in order, which
//! a test below checks. Statements whose dialects differ (casts, locks, upserts that differ,
//! batch writes) stay in each backend's module.

use crate::rows;

/// A decision's effect on a card, guarded: the card must still hold what the decision was taken
/// on (`$9`, `$10`), and may not end with negative available value.
pub(crate) const APPLY_CARD_EFFECT: &str = "UPDATE cards SET balance = balance + $1, held = held + $2, \
     state = COALESCE($3, state), closed_reason = COALESCE($4, closed_reason), \
     expires_at = CASE WHEN $5 THEN $6 ELSE expires_at END, updated_at = $7 \
     WHERE id = $8 AND balance = $9 AND held = $10 \
     AND (balance + $1) - (held + $2) >= 0 AND held + $2 >= 0";
pub(crate) const CLOVER_LOCK_ID: &str = "SELECT lock_id FROM clover_locks WHERE hold_id = $1";
pub(crate) const CLOVER_TOKEN_CARD: &str = "SELECT card_id FROM clover_tokens WHERE token_hash = $1 AND merchant_id = $2 AND \
     revoked_at IS NULL";
pub(crate) const DUE_HOLDS: &str = "SELECT merchant_id, id FROM holds WHERE state = 'pending' AND expires_at <= $1 ORDER \
     BY expires_at LIMIT $2";
pub(crate) const FAIL_DELIVERIES_OF_DISABLED_ENDPOINT: &str = "UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint disabled', \
     updated_at = $1 WHERE endpoint_id = $2 AND state = 'pending'";
pub(crate) const FINISH_HOLD: &str = "UPDATE holds SET state = $1, captured_amount = $2, finished_at = $3 WHERE id = $4 \
     AND state = 'pending'";
pub(crate) const IDEMPOTENCY_RECORD: &str = "SELECT request_hash, status, body, created_at FROM idempotency_records WHERE \
     merchant_id = $1 AND scope = $2 AND key = $3 AND created_at >= $4";
/// Stored answers whose key starts with `$3`, newest first: `substr` rather than a range on
/// `key`, since PostgreSQL compares text in the database's collation, where punctuation may not
/// order bytewise. It reads every record of the merchant's scope within the window; only the
/// Terminal API's TransactionStatus without a ServiceID asks it.
pub(crate) const STORED_ANSWERS_BY_PREFIX: &str = "SELECT key, request_hash, status, body, created_at FROM \
     idempotency_records WHERE merchant_id = $1 AND scope = $2 AND substr(key, 1, length($3)) = $3 AND \
     created_at >= $4 ORDER BY created_at DESC, key DESC LIMIT $5";
pub(crate) const INSERT_ADYEN_REFERENCE: &str = "INSERT INTO adyen_references (merchant_id, api, reference, transaction_id, \
     created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys (key_hash, merchant_id, created_at, id, name, scope, prefix, \
     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const API_KEY_BY_HASH: &str = "SELECT id, merchant_id, name, scope, prefix, created_at, expires_at, revoked_at, \
     last_used_at FROM api_keys WHERE key_hash = $1";
pub(crate) const API_KEY_BY_ID: &str = "SELECT id, merchant_id, name, scope, prefix, created_at, expires_at, revoked_at, \
     last_used_at FROM api_keys WHERE merchant_id = $1 AND id = $2";
pub(crate) const API_KEYS_OF_MERCHANT: &str = "SELECT id, merchant_id, name, scope, prefix, created_at, expires_at, revoked_at, \
     last_used_at FROM api_keys WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
/// Keys that still work at `$2`: neither revoked nor expired.
pub(crate) const WORKING_API_KEY_COUNT: &str = "SELECT COUNT(*) FROM api_keys WHERE merchant_id = $1 AND revoked_at IS NULL \
     AND (expires_at IS NULL OR expires_at > $2)";
pub(crate) const END_API_KEY: &str =
    "UPDATE api_keys SET expires_at = $1, revoked_at = $2 WHERE merchant_id = $3 AND id = $4";
pub(crate) const TOUCH_API_KEY: &str =
    "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";
pub(crate) const INSERT_STAFF: &str = "INSERT INTO staff (id, merchant_id, email, role, password_hash, temporary_password_expires_at, totp_secret, \
     totp_enabled_at, totp_last_step, failed_sign_ins, failure_window_started_at, locked_until, created_at, \
     disabled_at, last_sign_in_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
pub(crate) const STAFF_BY_ID: &str = "SELECT id, merchant_id, email, role, password_hash, temporary_password_expires_at, totp_secret, \
     totp_enabled_at, totp_last_step, failed_sign_ins, failure_window_started_at, locked_until, created_at, \
     disabled_at, last_sign_in_at \
     FROM staff WHERE merchant_id = $1 AND id = $2";
pub(crate) const STAFF_BY_EMAIL: &str = "SELECT id, merchant_id, email, role, password_hash, temporary_password_expires_at, totp_secret, \
     totp_enabled_at, totp_last_step, failed_sign_ins, failure_window_started_at, locked_until, created_at, \
     disabled_at, last_sign_in_at \
     FROM staff WHERE email = $1";
pub(crate) const STAFF_OF_MERCHANT: &str = "SELECT id, merchant_id, email, role, password_hash, temporary_password_expires_at, totp_secret, \
     totp_enabled_at, totp_last_step, failed_sign_ins, failure_window_started_at, locked_until, created_at, \
     disabled_at, last_sign_in_at \
     FROM staff WHERE merchant_id = $1 ORDER BY created_at, id LIMIT $2";
/// Everything about a staff member that changes (its id, merchant, email and creation never do).
pub(crate) const UPDATE_STAFF: &str = "UPDATE staff SET role = $1, password_hash = $2, \
     temporary_password_expires_at = $3, totp_secret = $4, totp_enabled_at = $5, totp_last_step = $6, \
     failed_sign_ins = $7, failure_window_started_at = $8, locked_until = $9, disabled_at = $10, \
     last_sign_in_at = $11 WHERE merchant_id = $12 AND id = $13";
/// Owners who can still sign in.
pub(crate) const ACTIVE_OWNER_COUNT: &str =
    "SELECT COUNT(*) FROM staff WHERE merchant_id = $1 AND role = 'owner' AND disabled_at IS NULL";
pub(crate) const INSERT_STAFF_SESSION: &str = "INSERT INTO staff_sessions (token_hash, id, staff_id, merchant_id, \
     created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// A staff member's sessions still open at `$2` (not ended, not past their lifetime; the idle
/// timeout is the caller's to apply), newest first.
pub(crate) const OPEN_STAFF_SESSIONS: &str = "SELECT id, staff_id, merchant_id, created_at, last_seen_at, \
     expires_at, ended_at FROM staff_sessions WHERE staff_id = $1 AND ended_at IS NULL AND expires_at > $2 \
     ORDER BY created_at DESC, id DESC LIMIT $3";
pub(crate) const STAFF_SESSION_BY_HASH: &str = "SELECT id, staff_id, merchant_id, created_at, last_seen_at, \
     expires_at, ended_at FROM staff_sessions WHERE token_hash = $1";
/// Ends the staff member's open sessions: only the one named by `$3` when it is not null, all
/// but the one named by `$4` when that is not null.
pub(crate) const END_STAFF_SESSIONS: &str = "UPDATE staff_sessions SET ended_at = $1 WHERE staff_id = $2 \
     AND ended_at IS NULL AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id <> $4)";
pub(crate) const TOUCH_STAFF_SESSION: &str =
    "UPDATE staff_sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1";
pub(crate) const INSERT_CARD: &str = "INSERT INTO cards (id, merchant_id, program_id, kind, state, currency, balance, \
     held, expires_at, last4, number_ciphertext, number_fingerprint, security_code_hash, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8, $9, $10, $11, \
     $12, $13)";
pub(crate) const INSERT_CLOVER_LOCK: &str = "INSERT INTO clover_locks (hold_id, merchant_id, card_id, lock_id, created_at) VALUES \
     ($1, $2, $3, (SELECT COALESCE(MAX(lock_id), 0) + 1 FROM clover_locks WHERE card_id = \
     $3), $4) RETURNING lock_id";
pub(crate) const INSERT_CLOVER_TOKEN: &str = "INSERT INTO clover_tokens (token_hash, merchant_id, card_id, created_at) VALUES ($1, \
     $2, $3, $4)";
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (id, merchant_id, type, payload, created_at) VALUES ($1, $2, $3, \
     $4, $5)";
pub(crate) const INSERT_HOLD: &str = "INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, \
     expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const INSERT_MERCHANT: &str = "INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const INSERT_POSTING: &str = "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, \
     amount) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const INSERT_PROGRAM: &str = "INSERT INTO programs (id, merchant_id, name, currency, denominations, min_load, \
     max_load, max_balance, reloadable, expiry_months, promotional, number_prefix, \
     number_length, security_code_length, promotion_code, created_at, active, breakage_on_expiry) VALUES ($1, $2, \
     $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
/// A program's changeable fields (`Program::amend` decides what they may become).
pub(crate) const UPDATE_PROGRAM: &str = "UPDATE programs SET name = $1, denominations = $2, min_load = $3, max_load = $4, \
     max_balance = $5, reloadable = $6, expiry_months = $7, promotion_code = $8, active = $9, \
     breakage_on_expiry = $10 WHERE id = $11 AND merchant_id = $12";
pub(crate) const INSERT_STOCK_BATCH: &str = "INSERT INTO card_stock_batches (id, merchant_id, program_id, source, source_digest, \
     cards, value, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const INSERT_TRANSACTION: &str = "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, \
     balance_before, balance_after, reference, reverses, hold_id, entry_id, created_at, channel) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
/// A wallet user's row, made on its first wallet change; a row made before public ids existed
/// gets its public id (`$4`) here too.
pub(crate) const INSERT_WALLET_USER: &str = "INSERT INTO wallet_users (merchant_id, user_id, created_at, public_id) VALUES ($1, \
     $2, $3, $4) ON CONFLICT (merchant_id, user_id) DO UPDATE SET public_id = excluded.public_id WHERE \
     wallet_users.public_id IS NULL";
pub(crate) const WALLET_USER_BY_PUBLIC_ID: &str =
    "SELECT user_id FROM wallet_users WHERE merchant_id = $1 AND public_id = $2";
pub(crate) const INSERT_WEBHOOK_ATTEMPT: &str = "INSERT INTO webhook_attempts (delivery_id, attempted_at, status, error, duration_ms) \
     VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_WEBHOOK_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const INSERT_WEBHOOK_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, merchant_id, url, secret, event_types, \
     low_balance_threshold, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, \
     $6, $7, $8, $9)";
pub(crate) const PENDING_HOLD_COUNT: &str =
    "SELECT COUNT(*) AS pending FROM holds WHERE state = 'pending' AND expires_at > $1";
pub(crate) const PENDING_WEBHOOK_DELIVERY_COUNT: &str =
    "SELECT COUNT(*) AS pending FROM webhook_deliveries WHERE state = 'pending'";
pub(crate) const POSTPONE_WEBHOOK_DELIVERY: &str =
    "UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $2 WHERE id = $3";
/// Cards whose value expiry moves to breakage now: past their expiry, holding value and no
/// pending hold, of a program that takes breakage; the longest expired first. `holds_value`
/// (`balance > 0`, migration 0021) is what `cards_by_expiry` is partial on.
pub(crate) const CARDS_DUE_FOR_BREAKAGE: &str = "SELECT c.merchant_id, c.id FROM cards c \
     JOIN programs p ON p.id = c.program_id WHERE c.holds_value AND c.expires_at <= $1 AND c.held = 0 \
     AND c.state IN ('active', 'frozen') AND p.breakage_on_expiry ORDER BY c.expires_at LIMIT $2";
pub(crate) const PROGRAM_OWNER: &str = "SELECT merchant_id FROM programs WHERE id = $1";
pub(crate) const PUT_CODE_ATTEMPTS: &str = "INSERT INTO code_attempts (merchant_id, fingerprint, failures, window_started_at, \
     locked_until) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, fingerprint) DO \
     UPDATE SET failures = excluded.failures, window_started_at = \
     excluded.window_started_at, locked_until = excluded.locked_until";
pub(crate) const PUT_IDEMPOTENCY_RECORD: &str = "INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, status, \
     body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant_id, \
     scope, key) DO UPDATE SET request_hash = excluded.request_hash, status = \
     excluded.status, body = excluded.body, created_at = excluded.created_at WHERE \
     idempotency_records.created_at < $8";
pub(crate) const PUT_WALLET_CARD: &str = "INSERT INTO wallet_cards (merchant_id, user_id, card_id, access, preferred, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id, user_id, \
     card_id) DO UPDATE SET access = excluded.access";
pub(crate) const RECORD_WEBHOOK_DELIVERY_ATTEMPT: &str = "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = \
     $2, last_status = $3, last_error = $4, updated_at = $5 WHERE id = $6 AND state = \
     'pending' AND attempts = $7";
pub(crate) const REMOVE_CLOSED_WALLET_CARDS: &str = "DELETE FROM wallet_cards WHERE merchant_id = $1 AND user_id = $2 AND card_id IN \
     (SELECT id FROM cards WHERE state = 'closed')";
pub(crate) const RETRY_WEBHOOK_DELIVERY: &str = "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, updated_at = \
     $1 WHERE merchant_id = $2 AND id = $3 AND endpoint_id IN (SELECT id FROM \
     webhook_endpoints WHERE enabled = $4)";
pub(crate) const REVOKE_CLOVER_TOKEN: &str = "UPDATE clover_tokens SET revoked_at = $1 WHERE token_hash = $2 AND merchant_id = $3 \
     AND revoked_at IS NULL";
pub(crate) const SEAL_IDEMPOTENCY_RECORD: &str = "UPDATE idempotency_records SET status = $1, body = $2 WHERE merchant_id = $3 AND \
     scope = $4 AND key = $5 AND status = $6";
pub(crate) const SET_CARD_STATE: &str = "UPDATE cards SET state = $1, updated_at = $2, closed_reason = CASE WHEN $1 = \
     'closed' THEN 'deactivated' ELSE closed_reason END WHERE id = $3 AND state = $4";
pub(crate) const SET_WEBHOOK_ENDPOINT_ENABLED: &str = "UPDATE webhook_endpoints SET enabled = $1, updated_at = $2 WHERE merchant_id = $3 \
     AND id = $4 AND enabled = $5";
pub(crate) const STOCK_BATCH_BY_DIGEST: &str = "SELECT id, merchant_id, program_id, source, cards, value, created_at FROM \
     card_stock_batches WHERE merchant_id = $1 AND source_digest = $2";
pub(crate) const WEBHOOK_ATTEMPTS_OF_EVENT: &str = "SELECT a.delivery_id, a.attempted_at, a.status, a.error, a.duration_ms FROM \
     webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE \
     d.merchant_id = $1 AND d.event_id = $2 ORDER BY a.seq";

/// The columns of a webhook endpoint row (`webhooks::endpoint_row`).
pub(crate) const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, secret, event_types, low_balance_threshold, enabled, \
     created_at, updated_at";
/// The columns of an event row (`webhooks::event_row`).
pub(crate) const EVENT_COLUMNS: &str = "id, merchant_id, type, payload, created_at";
/// The columns of a webhook delivery row (`webhooks::delivery_row`).
pub(crate) const DELIVERY_COLUMNS: &str = "id, merchant_id, event_id, endpoint_id, state, attempts, next_attempt_at, \
     last_status, last_error, created_at, updated_at";
/// The columns of a wallet card row.
pub(crate) const WALLET_CARD_COLUMNS: &str = "user_id, card_id, access, preferred, created_at";

/// A program by merchant and id.
pub(crate) fn program_by_id() -> String {
    format!(
        "SELECT {} FROM programs WHERE merchant_id = $1 AND id = $2",
        rows::PROGRAM_COLUMNS
    )
}

/// A hold by merchant and id.
pub(crate) fn hold_by_id() -> String {
    format!(
        "SELECT {} FROM holds WHERE merchant_id = $1 AND id = $2",
        rows::HOLD_COLUMNS
    )
}

/// A transaction by merchant and id.
pub(crate) fn transaction_by_id() -> String {
    format!(
        "SELECT {} FROM transactions WHERE merchant_id = $1 AND id = $2",
        rows::TRANSACTION_COLUMNS
    )
}

/// A merchant's enabled webhook endpoints (`$2` is true), oldest first.
pub(crate) fn enabled_webhook_endpoints() -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 AND enabled = $2 ORDER BY seq"
    )
}

/// A webhook endpoint by merchant and id.
pub(crate) fn webhook_endpoint_by_id() -> String {
    format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2")
}

/// An event by merchant and id.
pub(crate) fn event_by_id() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND id = $2")
}

/// An event's deliveries, oldest first.
pub(crate) fn deliveries_of_event() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE merchant_id = $1 AND event_id = $2 ORDER BY seq"
    )
}

/// A card's pending holds due by `$2`, soonest first.
pub(crate) fn due_holds_of_card() -> String {
    format!(
        "SELECT {} FROM holds WHERE card_id = $1 AND state = 'pending' AND expires_at <= $2 \
             ORDER BY expires_at, seq",
        rows::HOLD_COLUMNS
    )
}

/// A merchant's programs with a promotion code, oldest first, at most `$3`.
pub(crate) fn programs_by_promotion_code() -> String {
    format!(
        "SELECT {} FROM programs WHERE merchant_id = $1 AND promotion_code = $2 ORDER BY seq LIMIT $3",
        rows::PROGRAM_COLUMNS
    )
}

/// The transaction of a hold of a card, of one type.
pub(crate) fn transaction_of_hold() -> String {
    format!(
        "SELECT {} FROM transactions WHERE merchant_id = $1 AND card_id = $2 AND hold_id = $3 AND type = $4 \
             ORDER BY seq LIMIT 1",
        rows::TRANSACTION_COLUMNS
    )
}

/// A user's wallet cards, oldest first.
pub(crate) fn wallet_cards_of_user() -> String {
    format!(
        "SELECT {WALLET_CARD_COLUMNS} FROM wallet_cards WHERE merchant_id = $1 AND user_id = $2 ORDER BY created_at, card_id"
    )
}

/// The channel report: transactions created in `[$1, $2)` of one merchant (`$3`) or all,
/// counted and summed per program, currency, type and channel (NULL: written before
/// transactions recorded one). An adjustment counts net, as in the activity report; the sums
/// are taken in two halves (`crate::reports::split_sum`).
pub(crate) const CHANNEL_ACTIVITY: &str = "SELECT t.merchant_id, c.program_id, t.currency, t.type, t.channel, \
     COUNT(*) AS count, CAST(SUM((CASE WHEN t.type = 'adjustment' THEN t.balance_after - t.balance_before \
     ELSE t.amount END) >> 32) AS BIGINT) AS amount_high, CAST(SUM((CASE WHEN t.type = 'adjustment' \
     THEN t.balance_after - t.balance_before ELSE t.amount END) & 4294967295) AS BIGINT) AS amount_low \
     FROM transactions t JOIN cards c ON c.id = t.card_id \
     WHERE t.created_at >= $1 AND t.created_at < $2 AND (CAST($3 AS TEXT) IS NULL OR t.merchant_id = $3) \
     GROUP BY t.merchant_id, c.program_id, t.currency, t.type, t.channel \
     ORDER BY t.merchant_id, c.program_id, t.currency, t.type, t.channel";

/// A `LIKE … ESCAPE '\'` pattern matching text that starts with `prefix`, its wildcards and
/// escape character taken literally.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Every statement of this module, for the placeholder check.
#[cfg(test)]
const ALL: &[&str] = &[
    APPLY_CARD_EFFECT,
    CHANNEL_ACTIVITY,
    CLOVER_LOCK_ID,
    CLOVER_TOKEN_CARD,
    DUE_HOLDS,
    FAIL_DELIVERIES_OF_DISABLED_ENDPOINT,
    FINISH_HOLD,
    IDEMPOTENCY_RECORD,
    INSERT_ADYEN_REFERENCE,
    INSERT_API_KEY,
    API_KEY_BY_HASH,
    API_KEY_BY_ID,
    API_KEYS_OF_MERCHANT,
    END_API_KEY,
    WORKING_API_KEY_COUNT,
    TOUCH_API_KEY,
    INSERT_CARD,
    INSERT_CLOVER_LOCK,
    INSERT_CLOVER_TOKEN,
    INSERT_EVENT,
    INSERT_HOLD,
    INSERT_MERCHANT,
    INSERT_POSTING,
    INSERT_PROGRAM,
    UPDATE_PROGRAM,
    INSERT_STOCK_BATCH,
    INSERT_TRANSACTION,
    INSERT_WALLET_USER,
    WALLET_USER_BY_PUBLIC_ID,
    INSERT_WEBHOOK_ATTEMPT,
    INSERT_WEBHOOK_DELIVERY,
    INSERT_WEBHOOK_ENDPOINT,
    PENDING_HOLD_COUNT,
    PENDING_WEBHOOK_DELIVERY_COUNT,
    POSTPONE_WEBHOOK_DELIVERY,
    PROGRAM_OWNER,
    PUT_CODE_ATTEMPTS,
    PUT_IDEMPOTENCY_RECORD,
    PUT_WALLET_CARD,
    RECORD_WEBHOOK_DELIVERY_ATTEMPT,
    REMOVE_CLOSED_WALLET_CARDS,
    RETRY_WEBHOOK_DELIVERY,
    REVOKE_CLOVER_TOKEN,
    SEAL_IDEMPOTENCY_RECORD,
    SET_CARD_STATE,
    SET_WEBHOOK_ENDPOINT_ENABLED,
    STOCK_BATCH_BY_DIGEST,
    STORED_ANSWERS_BY_PREFIX,
    WEBHOOK_ATTEMPTS_OF_EVENT,
];

#[cfg(test)]
mod tests {
    use super::{ALL, like_prefix};

    #[test]
    fn a_like_prefix_takes_wildcards_literally() {
        assert_eq!(like_prefix("chr_01a2"), "chr\\_01a2%");
        assert_eq!(like_prefix("50%\\"), "50\\%\\\\%");
    }

    /// The parameter numbers of a statement in the order they first appear.
    fn first_appearances(sql: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>()
                && !seen.contains(&n)
            {
                seen.push(n);
            }
        }
        seen
    }

    #[test]
    fn every_shared_statement_numbers_its_parameters_in_the_order_they_first_appear() {
        let built = [
            super::program_by_id(),
            super::hold_by_id(),
            super::transaction_by_id(),
            super::enabled_webhook_endpoints(),
            super::webhook_endpoint_by_id(),
            super::event_by_id(),
            super::deliveries_of_event(),
            super::due_holds_of_card(),
            super::programs_by_promotion_code(),
            super::transaction_of_hold(),
            super::wallet_cards_of_user(),
        ];
        for sql in ALL.iter().copied().chain(built.iter().map(String::as_str)) {
            let seen = first_appearances(sql);
            let expected: Vec<u32> = (1..=u32::try_from(seen.len()).expect("few")).collect();
            assert_eq!(seen, expected, "{sql}");
            assert!(!sql.contains('?'), "a SQLite-only placeholder in {sql}");
        }
    }
}
