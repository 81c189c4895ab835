//! A merchant's people: staff accounts with a role (`giftd_domain::Role`), signed in with an
//! email and a password (kept only as its argon2id hash) and optionally a TOTP second factor
//! (its secret kept encrypted), and the sessions they sign in to. Owners invite staff (each gets
//! a temporary password, shown once, that must be changed at the first sign-in), change roles,
//! disable accounts and reset passwords; everyone changes their own password and turns on their
//! own second factor. Wrong passwords and codes lock an account as wrong security codes lock a
//! card number (`giftd_domain::lockout`). A session ends when its staff member signs out, is
//! disabled, changes role or password, after [`SESSION_IDLE_SECONDS`] without use, and after
//! [`SESSION_LIFETIME_SECONDS`] whatever happens.
//!
//! Password hashing and checking (tens of milliseconds of CPU each) run on the blocking pool,
//! never inside a write job: a job only records what they decided. Every signed-in request
//! reads its session and staff member (`Service::authenticate_staff`): people make few
//! requests, and a role change or a disabling then takes effect at once, in every process.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use giftd_domain::lockout::Attempts;
use giftd_domain::{Access, MerchantId, Role, StaffId, StaffSessionId, Timestamp};
use giftd_store::{StaffRecord, StaffSessionRecord, StoreError, StoreResult, WriteTx};
use rand::{Rng, RngExt};

use crate::error::{Failure, Refusal, ServiceError};
use crate::operation::{Context, Operation};
use crate::webhooks::Before;
use crate::{IdempotencyKey, Rendered, Renderer, Service};

/// Shortest password a person may choose (OWASP's minimum without other composition rules).
pub const MIN_PASSWORD_LENGTH: usize = 12;
/// Longest password: long enough for any passphrase, short enough that hashing stays bounded.
pub const MAX_PASSWORD_LENGTH: usize = 128;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LENGTH: usize = 254;
/// Most staff accounts per merchant, and the most a listing shows.
pub const MAX_STAFF: u32 = 500;
/// A session unused this long has ended.
pub const SESSION_IDLE_SECONDS: i64 = 15 * 60;
/// A session ends this long after sign-in, however active it is: an office day.
pub const SESSION_LIFETIME_SECONDS: i64 = 8 * 3600;
/// A session's use is recorded at most this often (its idle timeout counts from the last one).
pub const SESSION_TOUCH_SECONDS: i64 = 60;
/// A temporary password stops working this long after it was made.
pub const TEMPORARY_PASSWORD_SECONDS: i64 = 7 * 24 * 3600;
/// Characters of a temporary password: 20 from a 33-character alphabet without look-alikes
/// (about 100 random bits).
const TEMPORARY_PASSWORD_LENGTH: usize = 20;
const TEMPORARY_PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789AB";
/// The name authenticator apps show for giftd's codes.
const TOTP_ISSUER: &str = "giftd";
/// A TOTP secret's length: 160 bits, as RFC 4226 recommends.
const TOTP_SECRET_BYTES: usize = 20;
/// The prefix of a session token, which tells it from an API key (`gk_`).
pub const SESSION_TOKEN_PREFIX: &str = "gs_";

/// Why a sign-in, or a signed-in request, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffRefusal {
    /// Unknown email, wrong password or wrong second-factor code: which one is not said.
    #[error("wrong email, password or code")]
    InvalidCredentials,
    /// The password was right; the account has a second factor and no code was sent.
    #[error("this account has a second factor: send its current code")]
    TotpRequired,
    /// Too many wrong attempts: no sign-in, even with the right password, until `until`.
    #[error("too many failed sign-ins: this account is locked for now")]
    Locked { until: Timestamp },
    /// The password was right, but the account is disabled.
    #[error("this account is disabled")]
    Disabled,
    /// The temporary password was right, but it has expired: an owner must reset it.
    #[error("this temporary password has expired: ask an owner to reset it")]
    TemporaryPasswordExpired,
    /// Signed in with a temporary password: only a new password may be set until then.
    #[error("choose a new password first (POST /v1/staff/me/password)")]
    PasswordChangeRequired,
    /// The staff member's role does not allow this request.
    #[error("the role {role} does not allow this request")]
    InsufficientRole { role: Role },
    /// An adjustment is approved or rejected by someone other than the one who asked.
    #[error("an adjustment is decided by a second person, not the one who asked for it")]
    OwnAdjustment,
}

/// A staff member as the API shows them: no password hash, no TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub id: StaffId,
    pub merchant_id: MerchantId,
    pub email: String,
    pub role: Role,
    pub totp_enabled: bool,
    /// Signed in with a temporary password that must still be changed.
    pub password_change_required: bool,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub last_sign_in_at: Option<Timestamp>,
    /// While failed sign-ins lock the account.
    pub locked_until: Option<Timestamp>,
}

impl StaffMember {
    fn of(staff: &StaffRecord, now: Timestamp) -> Self {
        Self {
            id: staff.id.clone(),
            merchant_id: staff.merchant_id.clone(),
            email: staff.email.clone(),
            role: staff.role,
            totp_enabled: staff.totp_enabled_at.is_some(),
            password_change_required: staff.temporary_password_expires_at.is_some(),
            created_at: staff.created_at,
            disabled_at: staff.disabled_at,
            last_sign_in_at: staff.last_sign_in_at,
            locked_until: staff.attempts.locked_until(now),
        }
    }
}

/// A secret shown once (a session token, a temporary password, a TOTP secret and its URL),
/// never in `Debug` output.
#[derive(Clone)]
pub struct ShownOnce(String);

impl ShownOnce {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownOnce(redacted)")
    }
}

/// Who a signed-in request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffCaller {
    pub merchant: MerchantId,
    pub staff: StaffId,
    pub session: StaffSessionId,
    pub role: Role,
}

/// What the second factor said at a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The account has none.
    Off,
    /// The code was right for this time step.
    Step(i64),
    /// The code was wrong.
    Wrong,
}

#[derive(Debug, Clone)]
pub enum StaffCommand {
    /// A new staff member with a temporary password (shown once).
    Create {
        staff: Box<StaffRecord>,
        temporary_password: ShownOnce,
    },
    /// An owner's change: role, disabled or not, a new temporary password (which also turns the
    /// second factor off: the way back in for someone who lost it).
    Change {
        id: StaffId,
        role: Option<Role>,
        disabled: Option<bool>,
        reset: Option<(String, ShownOnce)>,
    },
    /// Records a sign-in decided outside the job (the password and code checked): a session,
    /// or a failure counted toward the lockout.
    SignIn {
        id: StaffId,
        password_ok: bool,
        totp: TotpCheck,
        session: Box<StaffSessionRecord>,
        token_hash: Vec<u8>,
        token: ShownOnce,
    },
    /// A new password of one's own (the current one checked outside: a wrong one is counted);
    /// every other session of the staff member ends.
    SetPassword {
        id: StaffId,
        current_ok: bool,
        password_hash: String,
        keep: StaffSessionId,
    },
    /// Starts turning the second factor on: the secret is kept, not yet in use.
    BeginTotp {
        id: StaffId,
        sealed_secret: Vec<u8>,
        secret: ShownOnce,
        url: ShownOnce,
    },
    /// Turns the second factor on with a first code (checked outside, its step recorded here).
    ConfirmTotp {
        id: StaffId,
        step: i64,
    },
    SignOut {
        id: StaffId,
        session: StaffSessionId,
    },
    /// Records a session's use (at most once a minute).
    Touch {
        session: StaffSessionId,
    },
}

#[derive(Debug, Clone)]
pub enum StaffOutcome {
    Member(StaffMember),
    /// A staff member with a temporary password, shown once.
    WithTemporaryPassword {
        member: StaffMember,
        temporary_password: ShownOnce,
    },
    SignedIn {
        member: StaffMember,
        session: StaffSessionRecord,
        token: ShownOnce,
    },
    /// A sign-in or password check that failed, the failure kept.
    Refused(StaffRefusal),
    TotpEnrolment {
        secret: ShownOnce,
        url: ShownOnce,
    },
    /// The session ended.
    SignedOut(StaffSessionId),
    Touched,
}

#[async_trait]
impl Operation for StaffCommand {
    type Outcome = StaffOutcome;

    fn audit_objects(&self, outcome: &StaffOutcome) -> Vec<String> {
        match outcome {
            StaffOutcome::Member(member) | StaffOutcome::WithTemporaryPassword { member, .. } => {
                vec![member.id.to_string()]
            }
            StaffOutcome::SignedIn { member, session, .. } => {
                vec![member.id.to_string(), session.id.to_string()]
            }
            StaffOutcome::SignedOut(session) => vec![session.to_string()],
            StaffOutcome::Refused(_) | StaffOutcome::TotpEnrolment { .. } | StaffOutcome::Touched => {
                Vec::new()
            }
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<StaffOutcome, Failure> {
        match self {
            Self::Create {
                staff,
                temporary_password,
            } => match tx.insert_staff(staff).await {
                Ok(()) => Ok(StaffOutcome::WithTemporaryPassword {
                    member: StaffMember::of(staff, cx.now),
                    temporary_password: temporary_password.clone(),
                }),
                Err(StoreError::UniqueViolation(_)) => Err(email_taken()),
                Err(error) => Err(error.into()),
            },
            Self::Change {
                id,
                role,
                disabled,
                reset,
            } => change(tx, cx, id, *role, *disabled, reset.as_ref()).await,
            Self::SignIn {
                id,
                password_ok,
                totp,
                session,
                token_hash,
                token,
            } => {
                let mut staff = member(tx, cx, id).await?;
                if let Some(until) = staff.attempts.locked_until(cx.now) {
                    return Ok(StaffOutcome::Refused(StaffRefusal::Locked { until }));
                }
                let totp_ok = match (*totp, staff.totp_enabled_at) {
                    (TotpCheck::Off, None) => true,
                    // A code is accepted once: a later sign-in needs a later step.
                    (TotpCheck::Step(step), Some(_)) => staff.totp_last_step.is_none_or(|last| step > last),
                    // The factor was turned on or off since the check: try again.
                    (TotpCheck::Off, Some(_)) | (TotpCheck::Step(_), None) | (TotpCheck::Wrong, _) => false,
                };
                if !*password_ok || !totp_ok {
                    return Ok(StaffOutcome::Refused(count_failure(tx, cx, &mut staff).await?));
                }
                // The secret was right: saying why it does not open the account tells a
                // guesser nothing.
                if staff.disabled_at.is_some() {
                    return Ok(StaffOutcome::Refused(StaffRefusal::Disabled));
                }
                if staff.temporary_password_expires_at.is_some_and(|at| cx.now >= at) {
                    return Ok(StaffOutcome::Refused(StaffRefusal::TemporaryPasswordExpired));
                }
                staff.attempts = Attempts::default();
                staff.last_sign_in_at = Some(cx.now);
                if let TotpCheck::Step(step) = totp {
                    staff.totp_last_step = Some(*step);
                }
                tx.update_staff(&staff).await?;
                tx.insert_staff_session(session, token_hash).await?;
                Ok(StaffOutcome::SignedIn {
                    member: StaffMember::of(&staff, cx.now),
                    session: (**session).clone(),
                    token: token.clone(),
                })
            }
            Self::SetPassword {
                id,
                current_ok,
                password_hash,
                keep,
            } => {
                let mut staff = member(tx, cx, id).await?;
                if let Some(until) = staff.attempts.locked_until(cx.now) {
                    return Ok(StaffOutcome::Refused(StaffRefusal::Locked { until }));
                }
                if !*current_ok {
                    return Ok(StaffOutcome::Refused(count_failure(tx, cx, &mut staff).await?));
                }
                staff.password_hash.clone_from(password_hash);
                staff.temporary_password_expires_at = None;
                staff.attempts = Attempts::default();
                tx.update_staff(&staff).await?;
                // Whoever else holds a session of this account is signed out.
                tx.end_staff_sessions(id, None, Some(keep), cx.now).await?;
                Ok(StaffOutcome::Member(StaffMember::of(&staff, cx.now)))
            }
            Self::BeginTotp {
                id,
                sealed_secret,
                secret,
                url,
            } => {
                let mut staff = member(tx, cx, id).await?;
                if staff.totp_enabled_at.is_some() {
                    return Err(Refusal::Invalid {
                        param: "totp",
                        message: "a second factor is already on; an owner's password reset turns it off"
                            .into(),
                    }
                    .into());
                }
                staff.totp_secret = Some(sealed_secret.clone());
                staff.totp_last_step = None;
                tx.update_staff(&staff).await?;
                Ok(StaffOutcome::TotpEnrolment {
                    secret: secret.clone(),
                    url: url.clone(),
                })
            }
            Self::ConfirmTotp { id, step } => {
                let mut staff = member(tx, cx, id).await?;
                if staff.totp_enabled_at.is_some() || staff.totp_secret.is_none() {
                    return Err(Refusal::Invalid {
                        param: "code",
                        message: "no second factor is being set up: start with POST /v1/staff/me/totp".into(),
                    }
                    .into());
                }
                staff.totp_enabled_at = Some(cx.now);
                staff.totp_last_step = Some(*step);
                tx.update_staff(&staff).await?;
                Ok(StaffOutcome::Member(StaffMember::of(&staff, cx.now)))
            }
            Self::SignOut { id, session } => {
                tx.end_staff_sessions(id, Some(session), None, cx.now).await?;
                Ok(StaffOutcome::SignedOut(session.clone()))
            }
            Self::Touch { session } => {
                tx.touch_staff_session(session, cx.now).await?;
                Ok(StaffOutcome::Touched)
            }
        }
    }

    async fn events(
        &self,
        _: &mut dyn WriteTx,
        _: &Context<'_>,
        _: &StaffOutcome,
        _: Before,
    ) -> StoreResult<()> {
        Ok(())
    }
}

fn email_taken() -> Failure {
    Refusal::Invalid {
        param: "email",
        message: "a staff account with this email already exists".into(),
    }
    .into()
}

async fn member(tx: &mut dyn WriteTx, cx: &Context<'_>, id: &StaffId) -> Result<StaffRecord, Failure> {
    Ok(tx
        .staff(cx.merchant, id)
        .await?
        .ok_or(Refusal::NotFound("staff member"))?)
}

/// Counts a wrong password or code; the refusal to answer (locked if this failure locked it).
async fn count_failure(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    staff: &mut StaffRecord,
) -> Result<StaffRefusal, Failure> {
    staff.attempts = staff.attempts.after_failure(cx.now);
    tx.update_staff(staff).await?;
    Ok(match staff.attempts.locked_until(cx.now) {
        Some(until) => StaffRefusal::Locked { until },
        None => StaffRefusal::InvalidCredentials,
    })
}

async fn change(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    id: &StaffId,
    role: Option<Role>,
    disabled: Option<bool>,
    reset: Option<&(String, ShownOnce)>,
) -> Result<StaffOutcome, Failure> {
    let mut staff = member(tx, cx, id).await?;
    let was_active_owner = staff.role == Role::Owner && staff.disabled_at.is_none();
    let role_changed = role.is_some_and(|role| role != staff.role);
    if let Some(role) = role {
        staff.role = role;
    }
    let disabling = disabled == Some(true) && staff.disabled_at.is_none();
    match disabled {
        Some(true) => staff.disabled_at = staff.disabled_at.or(Some(cx.now)),
        Some(false) => staff.disabled_at = None,
        None => {}
    }
    let still_active_owner = staff.role == Role::Owner && staff.disabled_at.is_none();
    if was_active_owner && !still_active_owner && tx.active_owner_count(cx.merchant).await? <= 1 {
        return Err(Refusal::Invalid {
            param: if disabling { "disabled" } else { "role" },
            message: "a merchant keeps at least one owner who can sign in: make another owner first".into(),
        }
        .into());
    }
    if let Some((password_hash, _)) = reset {
        staff.password_hash.clone_from(password_hash);
        staff.temporary_password_expires_at = Some(cx.now.plus_seconds(TEMPORARY_PASSWORD_SECONDS));
        staff.totp_secret = None;
        staff.totp_enabled_at = None;
        staff.totp_last_step = None;
        staff.attempts = Attempts::default();
    }
    tx.update_staff(&staff).await?;
    if role_changed || disabling || reset.is_some() {
        // What a session was allowed when it began no longer holds: it ends.
        tx.end_staff_sessions(id, None, None, cx.now).await?;
    }
    let member = StaffMember::of(&staff, cx.now);
    Ok(match reset {
        Some((_, temporary_password)) => StaffOutcome::WithTemporaryPassword {
            member,
            temporary_password: temporary_password.clone(),
        },
        None => StaffOutcome::Member(member),
    })
}

/// What `POST /v1/staff` asks.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub email: String,
    pub role: Role,
}

/// What `PATCH /v1/staff/{id}` asks.
#[derive(Debug, Clone, Default)]
pub struct StaffChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new temporary password (shown once); the second factor is turned off.
    pub reset_password: bool,
}

/// What `POST /v1/sessions` presents.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub email: String,
    pub password: ShownOnce,
    pub totp_code: Option<String>,
}

impl SignIn {
    pub fn new(email: String, password: String, totp_code: Option<String>) -> Self {
        Self {
            email,
            password: ShownOnce(password),
            totp_code,
        }
    }
}

impl Service {
    /// Invites a staff member: an account with a temporary password, shown once in the answer.
    pub async fn create_staff(
        &self,
        merchant: MerchantId,
        new: NewStaff,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let email = email(&new.email)?;
        if self.inner.store.staff_by_email(&email).await?.is_some() {
            return Err(ServiceError::Invalid {
                param: "email",
                message: "a staff account with this email already exists".into(),
            });
        }
        if self.inner.store.staff_members(&merchant, MAX_STAFF).await?.len() >= MAX_STAFF as usize {
            return Err(ServiceError::Invalid {
                param: "email",
                message: format!("a merchant has at most {MAX_STAFF} staff accounts: disable one first"),
            });
        }
        let (temporary_password, password_hash) = temporary_password().await?;
        let now = self.now();
        let staff = StaffRecord {
            id: crate::ids::staff(),
            merchant_id: merchant.clone(),
            email,
            role: new.role,
            password_hash,
            temporary_password_expires_at: Some(now.plus_seconds(TEMPORARY_PASSWORD_SECONDS)),
            totp_secret: None,
            totp_enabled_at: None,
            totp_last_step: None,
            attempts: Attempts::default(),
            created_at: now,
            disabled_at: None,
            last_sign_in_at: None,
        };
        let command = StaffCommand::Create {
            staff: Box::new(staff),
            temporary_password,
        };
        self.execute(merchant, command, idempotency, render).await
    }

    /// An owner's change to a staff member.
    pub async fn change_staff(
        &self,
        merchant: MerchantId,
        id: StaffId,
        changes: StaffChanges,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let reset = if changes.reset_password {
            let (shown, hash) = temporary_password().await?;
            Some((hash, shown))
        } else {
            None
        };
        let command = StaffCommand::Change {
            id,
            role: changes.role,
            disabled: changes.disabled,
            reset,
        };
        self.execute(merchant, command, idempotency, render).await
    }

    /// The merchant's staff, oldest first.
    pub async fn staff_members(&self, merchant: &MerchantId) -> Result<Vec<StaffMember>, ServiceError> {
        let now = self.now();
        Ok(self
            .inner
            .store
            .staff_members(merchant, MAX_STAFF)
            .await?
            .iter()
            .map(|staff| StaffMember::of(staff, now))
            .collect())
    }

    pub async fn staff_member(
        &self,
        merchant: &MerchantId,
        id: &StaffId,
    ) -> Result<StaffMember, ServiceError> {
        let staff = self
            .inner
            .store
            .staff_member(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("staff member"))?;
        Ok(StaffMember::of(&staff, self.now()))
    }

    /// Signs a staff member in: a session and its token (shown once), or a refusal. A wrong
    /// password or code is counted toward the account's lockout; an unknown email costs the
    /// same time as a known one and says the same.
    pub async fn sign_in(
        &self,
        request: SignIn,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let email = request.email.trim().to_lowercase();
        let password = request.password;
        let found = if email.len() <= MAX_EMAIL_LENGTH {
            self.inner.store.staff_by_email(&email).await?
        } else {
            None
        };
        let Some(staff) = found else {
            // The time a real check takes, so that timing does not tell which emails exist.
            verify_password(DECOY_HASH.to_owned(), password).await;
            return Err(StaffRefusal::InvalidCredentials.into());
        };
        // A sign-in is its account's to answer for, whether it succeeds or not.
        crate::audit::identify(&staff.merchant_id, crate::audit::Actor::Staff(staff.id.clone()));
        if let Some(until) = staff.attempts.locked_until(self.now()) {
            return Err(StaffRefusal::Locked { until }.into());
        }
        let password_ok = verify_password(staff.password_hash.clone(), password).await;
        let totp = match (&staff.totp_secret, staff.totp_enabled_at) {
            (Some(sealed), Some(_)) => match request.totp_code.as_deref() {
                None if password_ok => return Err(StaffRefusal::TotpRequired.into()),
                None => TotpCheck::Wrong,
                Some(code) => self.check_totp(&staff, sealed, code),
            },
            _ => TotpCheck::Off,
        };
        let now = self.now();
        let token = ShownOnce(session_token());
        let session = StaffSessionRecord {
            id: crate::ids::staff_session(),
            staff_id: staff.id.clone(),
            merchant_id: staff.merchant_id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus_seconds(SESSION_LIFETIME_SECONDS),
            ended_at: None,
        };
        let command = StaffCommand::SignIn {
            id: staff.id.clone(),
            password_ok,
            totp,
            session: Box::new(session),
            token_hash: self.inner.keys.staff_session_hash(token.expose()),
            token,
        };
        self.execute(staff.merchant_id, command, None, render).await
    }

    /// The caller behind a session token, if the session still works and the staff member's
    /// role allows `access`.
    pub async fn authenticate_staff(&self, token: &str, access: Access) -> Result<StaffCaller, ServiceError> {
        if !token.starts_with(SESSION_TOKEN_PREFIX) || token.len() > 256 {
            return Err(ServiceError::Unauthorized);
        }
        let now = self.now();
        let session = self
            .inner
            .store
            .staff_session_by_hash(&self.inner.keys.staff_session_hash(token))
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        let idle_until = session.last_seen_at.plus_seconds(SESSION_IDLE_SECONDS);
        if session.ended_at.is_some() || now >= session.expires_at || now >= idle_until {
            return Err(ServiceError::Unauthorized);
        }
        let staff = self
            .inner
            .store
            .staff_member(&session.merchant_id, &session.staff_id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        if staff.disabled_at.is_some() {
            return Err(ServiceError::Unauthorized);
        }
        // Known from here on, a refusal for want of a role included.
        crate::audit::identify(&staff.merchant_id, crate::audit::Actor::Staff(staff.id.clone()));
        if staff.temporary_password_expires_at.is_some() && access != Access::Own {
            return Err(StaffRefusal::PasswordChangeRequired.into());
        }
        if !staff.role.allows(access) {
            return Err(StaffRefusal::InsufficientRole { role: staff.role }.into());
        }
        if now >= session.last_seen_at.plus_seconds(SESSION_TOUCH_SECONDS) {
            self.record_session_use(&session);
        }
        Ok(StaffCaller {
            merchant: session.merchant_id,
            staff: session.staff_id,
            session: session.id,
            role: staff.role,
        })
    }

    /// Records a session's use without making the request wait for it.
    fn record_session_use(&self, session: &StaffSessionRecord) {
        let command = StaffCommand::Touch {
            session: session.id.clone(),
        };
        self.execute_in_background(session.merchant_id.clone(), command, "a staff session's last use");
    }

    /// Ends the caller's session.
    pub async fn sign_out(
        &self,
        caller: &StaffCaller,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let command = StaffCommand::SignOut {
            id: caller.staff.clone(),
            session: caller.session.clone(),
        };
        self.execute(caller.merchant.clone(), command, None, render).await
    }

    /// The caller's sessions still open (not signed out, not idle too long, not past their
    /// lifetime), newest first.
    pub async fn own_sessions(&self, caller: &StaffCaller) -> Result<Vec<OwnSession>, ServiceError> {
        let now = self.now();
        Ok(self
            .inner
            .store
            .open_staff_sessions(&caller.staff, now, MAX_LISTED_SESSIONS)
            .await?
            .into_iter()
            .filter(|session| now < session.last_seen_at.plus_seconds(SESSION_IDLE_SECONDS))
            .map(|session| OwnSession {
                current: session.id == caller.session,
                session,
            })
            .collect())
    }

    /// Ends one of the caller's own open sessions (a browser left signed in elsewhere).
    pub async fn revoke_own_session(
        &self,
        caller: &StaffCaller,
        id: StaffSessionId,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        if !self
            .own_sessions(caller)
            .await?
            .iter()
            .any(|own| own.session.id == id)
        {
            return Err(ServiceError::NotFound("session"));
        }
        let command = StaffCommand::SignOut {
            id: caller.staff.clone(),
            session: id,
        };
        self.execute(caller.merchant.clone(), command, None, render).await
    }

    /// The caller's own account.
    pub async fn own_account(&self, caller: &StaffCaller) -> Result<StaffMember, ServiceError> {
        self.staff_member(&caller.merchant, &caller.staff).await
    }

    /// The caller's stored account (gone: the session no longer stands for anyone).
    async fn account_of(&self, caller: &StaffCaller) -> Result<StaffRecord, ServiceError> {
        self.inner
            .store
            .staff_member(&caller.merchant, &caller.staff)
            .await?
            .ok_or(ServiceError::Unauthorized)
    }

    /// A new password of the caller's own, the current one presented; the caller's other
    /// sessions end.
    pub async fn change_own_password(
        &self,
        caller: &StaffCaller,
        current: String,
        new: String,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let staff = self.account_of(caller).await?;
        check_new_password(&new, &staff.email)?;
        let current_ok = verify_password(staff.password_hash.clone(), ShownOnce(current)).await;
        let password_hash = if current_ok {
            hash_password(ShownOnce(new)).await?
        } else {
            String::new()
        };
        let command = StaffCommand::SetPassword {
            id: caller.staff.clone(),
            current_ok,
            password_hash,
            keep: caller.session.clone(),
        };
        self.execute(caller.merchant.clone(), command, None, render).await
    }

    /// Starts turning on the caller's second factor: a new secret, shown once with its
    /// `otpauth://` URL for an authenticator app; it is in use once confirmed with a code.
    pub async fn begin_totp(
        &self,
        caller: &StaffCaller,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let staff = self.account_of(caller).await?;
        let mut secret = [0u8; TOTP_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let totp = totp(secret.to_vec(), &staff.email);
        let url = totp
            .to_url()
            .map_err(|error| ServiceError::Internal(StoreError::Corrupt(format!("TOTP URL: {error}"))))?;
        let command = StaffCommand::BeginTotp {
            id: caller.staff.clone(),
            sealed_secret: self.inner.keys.encrypt(&secret, &totp_context(&staff.id)),
            secret: ShownOnce(totp.secret().to_base32()),
            url: ShownOnce(url),
        };
        self.execute(caller.merchant.clone(), command, None, render).await
    }

    /// Turns the caller's second factor on with a first code from the authenticator app.
    pub async fn confirm_totp(
        &self,
        caller: &StaffCaller,
        code: &str,
        render: Renderer<StaffOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let staff = self.account_of(caller).await?;
        let Some(sealed) = staff
            .totp_secret
            .as_ref()
            .filter(|_| staff.totp_enabled_at.is_none())
        else {
            return Err(ServiceError::Invalid {
                param: "code",
                message: "no second factor is being set up: start with POST /v1/staff/me/totp".into(),
            });
        };
        let TotpCheck::Step(step) = self.check_totp(&staff, sealed, code) else {
            return Err(ServiceError::Invalid {
                param: "code",
                message: "this code is not the authenticator's current one".into(),
            });
        };
        let command = StaffCommand::ConfirmTotp {
            id: caller.staff.clone(),
            step,
        };
        self.execute(caller.merchant.clone(), command, None, render).await
    }

    /// Checks a code against the staff member's TOTP secret at the service's time.
    fn check_totp(&self, staff: &StaffRecord, sealed: &[u8], code: &str) -> TotpCheck {
        let Some(secret) = self.inner.keys.decrypt(sealed, &totp_context(&staff.id)) else {
            tracing::error!(staff = %staff.id, "a staff member's TOTP secret does not decrypt");
            return TotpCheck::Wrong;
        };
        let seconds = u64::try_from(self.now().unix_millis() / 1000).unwrap_or(0);
        match totp(secret, &staff.email).check(code.trim(), seconds) {
            Some(step) => i64::try_from(step).map_or(TotpCheck::Wrong, TotpCheck::Step),
            None => TotpCheck::Wrong,
        }
    }
}

/// The TOTP of a secret: SHA-1, 6 digits, 30-second steps, one step of skew either way: what
/// every authenticator app does.
fn totp(secret: Vec<u8>, email: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(email.replace(':', ""))
        .with_issuer(Some(TOTP_ISSUER))
        .build_noncompliant()
}

/// What a TOTP secret's encryption is bound to: its staff member.
fn totp_context(id: &StaffId) -> Vec<u8> {
    format!("staff totp secret:{id}").into_bytes()
}

/// A valid argon2id hash of no password anyone has: checked against when the email is unknown.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Z2lmdGQgZGVjb3kgc2FsdA$YSBoYXNoIG5vYm9keSdzIHBhc3N3b3JkIG1hdGNoZXM";

/// Hashes a password with argon2id (OWASP's parameters, argon2's defaults) on the blocking pool.
pub async fn hash_password(password: ShownOnce) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|error| ServiceError::Internal(StoreError::Corrupt(format!("password hashing: {error}"))))?
    .map_err(|error| ServiceError::Internal(StoreError::Corrupt(format!("password hashing: {error}"))))
}

/// Whether a password matches its stored hash (on the blocking pool).
async fn verify_password(hash: String, password: ShownOnce) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A new temporary password and its hash.
async fn temporary_password() -> Result<(ShownOnce, String), ServiceError> {
    // The thread's generator is not `Send`: it is dropped before the hashing is awaited.
    let password: String = {
        let mut rng = rand::rng();
        (0..TEMPORARY_PASSWORD_LENGTH)
            .map(|_| {
                let index = rng.random_range(0..TEMPORARY_PASSWORD_ALPHABET.len());
                char::from(TEMPORARY_PASSWORD_ALPHABET[index])
            })
            .collect()
    };
    let shown = ShownOnce(password);
    let hash = hash_password(shown.clone()).await?;
    Ok((shown, hash))
}

/// Most of one's own open sessions a listing shows.
pub const MAX_LISTED_SESSIONS: u32 = 50;

/// A session of one's own, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnSession {
    pub session: StaffSessionRecord,
    /// The session the listing was asked from.
    pub current: bool,
}

/// A session token: `gs_` and 48 hex digits (192 random bits).
fn session_token() -> String {
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    format!("{SESSION_TOKEN_PREFIX}{}", hex::encode(secret))
}

/// An email address as kept: trimmed, lower case, one `@` with text on both sides, no spaces.
fn email(value: &str) -> Result<String, ServiceError> {
    let email = value.trim().to_lowercase();
    let well_formed = email.len() <= MAX_EMAIL_LENGTH
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if !well_formed {
        return Err(ServiceError::Invalid {
            param: "email",
            message: format!("email must be an email address of at most {MAX_EMAIL_LENGTH} characters"),
        });
    }
    Ok(email)
}

/// A password a person may choose.
fn check_new_password(password: &str, email: &str) -> Result<(), ServiceError> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        return Err(ServiceError::Invalid {
            param: "new_password",
            message: format!("a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"),
        });
    }
    if password.trim().eq_ignore_ascii_case(email) {
        return Err(ServiceError::Invalid {
            param: "new_password",
            message: "a password is not the account's email".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_matches_its_hash_and_nothing_else() {
        let hash = hash_password(ShownOnce("correct horse battery".into()))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(hash.clone(), ShownOnce("correct horse battery".into())).await);
        assert!(!verify_password(hash, ShownOnce("correct horse batterY".into())).await);
        assert!(!verify_password("not a hash".into(), ShownOnce("x".into())).await);
    }

    #[tokio::test]
    async fn the_decoy_hash_is_a_real_hash_that_no_password_matches() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_password(DECOY_HASH.into(), ShownOnce(String::new())).await);
    }

    #[test]
    fn a_code_of_the_current_step_passes_and_reports_its_step() {
        let totp = totp(vec![7; TOTP_SECRET_BYTES], "a@example.com");
        let at = 1_800_000_000u64;
        let code = totp.generate(at).to_string();
        assert_eq!(totp.check(&code, at), Some(at / 30));
        assert_eq!(totp.check(&code, at + 31), Some(at / 30), "one step of skew");
        assert_eq!(totp.check(&code, at + 120), None);
        assert!(
            totp.to_url()
                .unwrap()
                .starts_with("otpauth://totp/giftd:a%40example.com?")
        );
    }

    #[test]
    fn emails_are_kept_lower_case_and_malformed_ones_refused() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@localhost",
            "a nn@example.com",
            "a@b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_shown_once_never_show_in_debug_output() {
        let shown = ShownOnce(session_token());
        assert!(shown.expose().starts_with(SESSION_TOKEN_PREFIX) && shown.expose().len() == 51);
        assert!(!format!("{shown:?}").contains(shown.expose()));
    }
}
