//! The native API's staff accounts: signing in (`POST /v1/sessions`, the one route that takes no
//! credential), one's own account under `/v1/staff/me` (password, second factor, sign-out), and
//! the owner's management of staff under `/v1/staff`. A session token is sent like an API key
//! (`Authorization: Bearer gs_...`) and works on the native API only; what it may do is its
//! staff member's role's (`giftd_domain::Role`, decided per request by `crate::access`). Wire
//! types and handlers only; the accounts are the service's (`giftd_service::staff`).

use axum::extract::State;
use axum::http::StatusCode;
use giftd_domain::{Role, StaffId, StaffSessionId};
use giftd_service::Renderer;
use giftd_service::staff::{NewStaff, SESSION_IDLE_SECONDS, SignIn, StaffChanges, StaffMember, StaffOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PathId, Staff, path_id};
use super::wire::{List, rfc3339};
use super::{Answer, NativeBody, answer, ok, render};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffResponse {
    pub object: &'static str,
    pub id: String,
    pub email: String,
    /// `owner`, `admin`, `support`, `finance`, `developer` or `viewer`.
    pub role: &'static str,
    pub totp_enabled: bool,
    /// The password is a temporary one: until it is changed, only `/v1/staff/me` answers.
    pub password_change_required: bool,
    pub created_at: String,
    pub disabled_at: Option<String>,
    pub last_sign_in_at: Option<String>,
    /// Set while failed sign-ins lock the account.
    pub locked_until: Option<String>,
    /// A temporary password: only in the answer that made it, never again. It must be changed
    /// at the first sign-in and stops working after 7 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

impl StaffResponse {
    fn new(member: &StaffMember, temporary_password: Option<&str>) -> Self {
        Self {
            object: "staff",
            id: member.id.to_string(),
            email: member.email.clone(),
            role: member.role.as_str(),
            totp_enabled: member.totp_enabled,
            password_change_required: member.password_change_required,
            created_at: rfc3339(member.created_at),
            disabled_at: member.disabled_at.map(rfc3339),
            last_sign_in_at: member.last_sign_in_at.map(rfc3339),
            locked_until: member.locked_until.map(rfc3339),
            temporary_password: temporary_password.map(str::to_owned),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub object: &'static str,
    pub id: String,
    /// The session token: send it as `Authorization: Bearer <token>`. Shown only now.
    pub token: String,
    pub created_at: String,
    /// The session ends then, however active it is.
    pub expires_at: String,
    /// The session ends after this many seconds without a request.
    pub idle_timeout_seconds: i64,
    pub staff: StaffResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedOutResponse {
    pub object: &'static str,
    pub id: String,
    /// Always true: the session's token no longer works.
    pub ended: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentResponse {
    pub object: &'static str,
    /// The secret in base32, for typing into an authenticator app. Shown only now.
    pub secret: String,
    /// The same as an `otpauth://totp/...` URL (for a QR code). Shown only now.
    pub otpauth_url: String,
}

impl NativeBody for StaffOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            StaffOutcome::Member(member) => serde_json::to_vec(&StaffResponse::new(member, None)),
            StaffOutcome::WithTemporaryPassword {
                member,
                temporary_password,
            } => serde_json::to_vec(&StaffResponse::new(member, Some(temporary_password.expose()))),
            StaffOutcome::SignedIn {
                member,
                session,
                token,
            } => serde_json::to_vec(&SessionResponse {
                object: "staff_session",
                id: session.id.to_string(),
                token: token.expose().to_owned(),
                created_at: rfc3339(session.created_at),
                expires_at: rfc3339(session.expires_at),
                idle_timeout_seconds: SESSION_IDLE_SECONDS,
                staff: StaffResponse::new(member, None),
            }),
            StaffOutcome::TotpEnrolment { secret, url } => serde_json::to_vec(&TotpEnrolmentResponse {
                object: "totp_enrolment",
                secret: secret.expose().to_owned(),
                otpauth_url: url.expose().to_owned(),
            }),
            StaffOutcome::SignedOut(session) => serde_json::to_vec(&SignedOutResponse {
                object: "staff_session",
                id: session.to_string(),
                ended: true,
            }),
            // Rendered as errors by `renderer`; the use of a session no route asks for.
            StaffOutcome::Refused(_) | StaffOutcome::Touched => return None,
        })
    }
}

/// Renders a staff outcome: a refused sign-in or password check (its failure counted) as the
/// error it is.
fn renderer(success: StatusCode) -> Renderer<StaffOutcome> {
    Box::new(move |result| match result {
        Ok(StaffOutcome::Refused(refusal)) => ApiError::from(refusal).rendered(),
        _ => render(result, success),
    })
}

fn role(value: &str) -> Result<Role, ApiError> {
    Role::parse(value).ok_or_else(|| {
        ApiError::invalid(
            "role",
            "`role` must be `owner`, `admin`, `support`, `finance`, `developer` or `viewer`.",
        )
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
    /// The authenticator's current 6-digit code, for an account with a second factor.
    pub totp_code: Option<String>,
}

#[utoipa::path(post, path = "/v1/sessions", tag = "staff", request_body = SignInRequest, security(()),
    responses((status = 201, description = "Signed in: the session and its token, shown this once.", body = SessionResponse), (status = "4XX", description = "Refused: `invalid_credentials` (which of email, password or code was wrong is not said), `totp_required`, `sign_in_locked` (429, after 10 failures in 30 minutes, for 30 minutes), `account_disabled`, `password_expired`.", body = ErrorBody)))]
pub(super) async fn sign_in(State(app): State<AppState>, body: Body<SignInRequest>) -> Answer {
    let r = body.value;
    let rendered = app
        .service
        .sign_in(
            SignIn::new(r.email, r.password, r.totp_code),
            renderer(StatusCode::CREATED),
        )
        .await?;
    answer(rendered)
}

#[utoipa::path(get, path = "/v1/staff/me", tag = "staff",
    responses((status = 200, description = "The signed-in staff member's own account.", body = StaffResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_own_account(State(app): State<AppState>, Staff(caller): Staff) -> Answer {
    let member = app.service.own_account(&caller).await?;
    ok(&StaffResponse::new(&member, None))
}

/// A request that takes no fields (an empty body, or `{}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[utoipa::path(post, path = "/v1/staff/me/sign_out", tag = "staff",
    responses((status = 200, description = "The session, ended: its token no longer works.", body = SignedOutResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn sign_out(
    State(app): State<AppState>,
    Staff(caller): Staff,
    _body: Body<NoFields>,
) -> Answer {
    answer(app.service.sign_out(&caller, renderer(StatusCode::OK)).await?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnSessionResponse {
    pub object: &'static str,
    pub id: String,
    pub created_at: String,
    /// Within a minute (uses are recorded at most once a minute).
    pub last_seen_at: String,
    pub expires_at: String,
    /// The session this listing was asked from.
    pub current: bool,
}

#[utoipa::path(get, path = "/v1/staff/me/sessions", tag = "staff",
    responses((status = 200, description = "One's own sessions still open, newest first (at most 50; never their tokens).", body = List<OwnSessionResponse>), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn list_own_sessions(State(app): State<AppState>, Staff(caller): Staff) -> Answer {
    let sessions = app.service.own_sessions(&caller).await?;
    ok(&List {
        object: "list",
        data: sessions
            .iter()
            .map(|own| OwnSessionResponse {
                object: "staff_session",
                id: own.session.id.to_string(),
                created_at: rfc3339(own.session.created_at),
                last_seen_at: rfc3339(own.session.last_seen_at),
                expires_at: rfc3339(own.session.expires_at),
                current: own.current,
            })
            .collect(),
        next_cursor: None,
    })
}

#[utoipa::path(post, path = "/v1/staff/me/sessions/{id}/revoke", tag = "staff", params(("id" = String, Path)),
    responses((status = 200, description = "The session, ended: its token no longer works.", body = SignedOutResponse), (status = "4XX", description = "Refused: `not_found` for a session that is not one's own open one.", body = ErrorBody)))]
pub(super) async fn revoke_own_session(
    State(app): State<AppState>,
    Staff(caller): Staff,
    PathId(id): PathId,
    _body: Body<NoFields>,
) -> Answer {
    let id = path_id(&id, StaffSessionId::parse, "session")?;
    answer(
        app.service
            .revoke_own_session(&caller, id, renderer(StatusCode::OK))
            .await?,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 12 to 128 characters.
    pub new_password: String,
}

#[utoipa::path(post, path = "/v1/staff/me/password", tag = "staff", request_body = ChangePasswordRequest,
    responses((status = 200, description = "The account with its new password; every other session of it has ended.", body = StaffResponse), (status = "4XX", description = "Refused: `invalid_credentials` for a wrong current password (counted toward the lockout), `invalid_request` for a new one too short or too long.", body = ErrorBody)))]
pub(super) async fn change_own_password(
    State(app): State<AppState>,
    Staff(caller): Staff,
    body: Body<ChangePasswordRequest>,
) -> Answer {
    let r = body.value;
    let rendered = app
        .service
        .change_own_password(
            &caller,
            r.current_password,
            r.new_password,
            renderer(StatusCode::OK),
        )
        .await?;
    answer(rendered)
}

#[utoipa::path(post, path = "/v1/staff/me/totp", tag = "staff",
    responses((status = 201, description = "A new TOTP secret (SHA-1, 6 digits, 30 s), shown this once; it is in use once confirmed.", body = TotpEnrolmentResponse), (status = "4XX", description = "Refused: a second factor is already on.", body = ErrorBody)))]
pub(super) async fn begin_totp(
    State(app): State<AppState>,
    Staff(caller): Staff,
    _body: Body<NoFields>,
) -> Answer {
    answer(
        app.service
            .begin_totp(&caller, renderer(StatusCode::CREATED))
            .await?,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    /// The authenticator's current 6-digit code.
    pub code: String,
}

#[utoipa::path(post, path = "/v1/staff/me/totp/confirm", tag = "staff", request_body = ConfirmTotpRequest,
    responses((status = 200, description = "The account, its second factor on: every sign-in now asks for a code.", body = StaffResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn confirm_totp(
    State(app): State<AppState>,
    Staff(caller): Staff,
    body: Body<ConfirmTotpRequest>,
) -> Answer {
    let rendered = app
        .service
        .confirm_totp(&caller, &body.value.code, renderer(StatusCode::OK))
        .await?;
    answer(rendered)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStaffRequest {
    pub email: String,
    /// `owner`, `admin`, `support`, `finance`, `developer` or `viewer`.
    pub role: String,
}

#[utoipa::path(post, path = "/v1/staff", tag = "staff", request_body = CreateStaffRequest,
    responses((status = 201, description = "Created: the account, with its temporary password shown this once.", body = StaffResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_staff(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateStaffRequest>,
) -> Answer {
    let new = NewStaff {
        email: body.value.email,
        role: role(&body.value.role)?,
    };
    let rendered = app
        .service
        .create_staff(merchant, new, body.idempotency, renderer(StatusCode::CREATED))
        .await?;
    answer(rendered)
}

#[utoipa::path(get, path = "/v1/staff", tag = "staff",
    responses((status = 200, description = "The merchant's staff, oldest first (at most 500).", body = List<StaffResponse>), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn list_staff(State(app): State<AppState>, Merchant(merchant): Merchant) -> Answer {
    let members = app.service.staff_members(&merchant).await?;
    ok(&List {
        object: "list",
        data: members
            .iter()
            .map(|member| StaffResponse::new(member, None))
            .collect(),
        next_cursor: None,
    })
}

#[utoipa::path(get, path = "/v1/staff/{id}", tag = "staff", params(("id" = String, Path)),
    responses((status = 200, description = "The staff member.", body = StaffResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_staff(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, StaffId::parse, "staff member")?;
    let member = app.service.staff_member(&merchant, &id).await?;
    ok(&StaffResponse::new(&member, None))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStaffRequest {
    pub role: Option<String>,
    /// `true` signs the member out everywhere and stops their sign-ins; `false` lets them back.
    pub disabled: Option<bool>,
    /// `true`: a new temporary password (in the answer, shown once), the second factor turned
    /// off and the lockout lifted: the way back in for someone who forgot or lost either.
    pub reset_password: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/staff/{id}", tag = "staff", params(("id" = String, Path)),
    request_body = UpdateStaffRequest,
    responses((status = 200, description = "The staff member as changed; a change of role, a disabling or a reset ends their sessions.", body = StaffResponse), (status = "4XX", description = "Refused: `error.code` says why (the last owner who can sign in cannot be demoted or disabled).", body = ErrorBody)))]
pub(super) async fn update_staff(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<UpdateStaffRequest>,
) -> Answer {
    let id = path_id(&id, StaffId::parse, "staff member")?;
    let r = body.value;
    let changes = StaffChanges {
        role: r.role.as_deref().map(role).transpose()?,
        disabled: r.disabled,
        reset_password: r.reset_password.unwrap_or(false),
    };
    let rendered = app
        .service
        .change_staff(merchant, id, changes, body.idempotency, renderer(StatusCode::OK))
        .await?;
    answer(rendered)
}
