//! The native API v1 (`/v1/...`): handlers that turn requests into service commands and
//! service results into the contract's JSON. No SQL and no business rules here: a handler
//! parses, calls the service, renders.

pub mod adjustments;
pub mod api_keys;
pub mod audit;
pub mod card_batches;
pub mod cardholder_links;
pub mod checkouts;
pub mod error;
pub mod extract;
pub mod reports;
pub mod staff;
pub mod wallet;
pub mod webhooks;
pub mod wire;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use giftd_domain::operations::{DEFAULT_HOLD_SECONDS, MAX_HOLD_SECONDS};
use giftd_domain::{CardId, CardKind, CardNumber, CardState, HoldId, ProgramId, SecurityCode, TransactionId};
use giftd_domain::{MerchantId, NewProgram, ProgramChanges};
use giftd_service::transfers::{TransferCommand, TransferOutcome};
use giftd_service::views::{CardFilter, Page};
use giftd_service::webhooks::WebhookOutcome;
use giftd_service::{Command, IdempotencyKey, Operation, Outcome, Refusal, Rendered};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, json_response};
use error::{ApiError, ErrorBody};
use extract::{
    Body, Merchant, PageQuery, PathId, amount, currency, optional_amount, optional_currency, path_id, query,
    reference,
};
use wire::*;

/// How the edge guards the native API (`guard.rs`): its lookups and saves by number and
/// security code count toward the rate limits, and a checkout's body is read for a
/// `security_code`; card imports (`POST /v1/cards`) carry codes but check none.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/v1/"),
    code_fields: &["security_code"],
    counts: lookups_and_saves,
    inspects_body: |method, path| *method == axum::http::Method::POST && path.starts_with("/v1/checkouts"),
    refusal: |status, code, message| {
        axum::response::IntoResponse::into_response(ApiError::new(status, code, message))
    },
    query_refusal: Some(|param, message| {
        axum::response::IntoResponse::into_response(ApiError::invalid(param, message))
    }),
    channel: giftd_domain::Channel::Native,
};

/// Whether a native request is a lookup or a save by number and security code, or a staff
/// sign-in (which tries a password).
fn lookups_and_saves(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        (method, segments.as_slice()),
        (
            &Method::POST,
            ["", "v1", "cards", "lookup"] | ["", "v1", "sessions"]
        ) | (&Method::PUT, ["", "v1", "users", _, "cards", _])
    )
}

type Answer = Result<Response, ApiError>;

#[derive(OpenApi)]
#[openapi(
    info(title = "giftd native API", version = "1", description = "Gift cards over a double-entry ledger. Amounts are integers in minor units."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
pub struct NativeDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Completes the generated document with what holds for every operation: each `POST` takes
/// an `Idempotency-Key` header.
pub fn complete_document(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    for item in openapi.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            let header = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .description(Some(
                    "1 to 255 printable ASCII characters. A retry with the same key and request gets the \
                     first answer byte for byte and has no second effect; with another request, 409.",
                ))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
                ))
                .build();
            post.parameters.get_or_insert_with(Vec::new).push(header.into());
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(NativeDoc::openapi())
        .routes(routes!(create_program, list_programs))
        .routes(routes!(get_program, update_program))
        .routes(routes!(create_card, list_cards))
        .routes(routes!(get_card))
        .routes(routes!(lookup_card))
        .routes(routes!(activate_card))
        .routes(routes!(load_card))
        .routes(routes!(redeem_card))
        .routes(routes!(cashout_card))
        .routes(routes!(freeze_card))
        .routes(routes!(unfreeze_card))
        .routes(routes!(deactivate_card))
        .routes(routes!(list_card_transactions))
        .routes(routes!(transfer_card))
        .routes(routes!(merge_cards))
        .routes(routes!(create_hold))
        .routes(routes!(get_hold))
        .routes(routes!(capture_hold))
        .routes(routes!(release_hold))
        .routes(routes!(get_transaction))
        .routes(routes!(refund_transaction))
        .routes(routes!(void_transaction))
        .routes(routes!(wallet::list_user_cards))
        .routes(routes!(
            wallet::save_user_card,
            wallet::update_user_card,
            wallet::delete_user_card
        ))
        .routes(routes!(wallet::share_user_card))
        .routes(routes!(wallet::create_gift))
        .routes(routes!(checkouts::create_checkout, checkouts::list_checkouts))
        .routes(routes!(checkouts::get_checkout))
        .routes(routes!(checkouts::capture_checkout))
        .routes(routes!(checkouts::void_checkout))
        .routes(routes!(checkouts::refund_checkout))
        .routes(routes!(checkouts::review_checkout))
        .routes(routes!(checkouts::get_simulated_payment))
        .routes(routes!(
            webhooks::create_webhook_endpoint,
            webhooks::list_webhook_endpoints
        ))
        .routes(routes!(
            webhooks::get_webhook_endpoint,
            webhooks::delete_webhook_endpoint
        ))
        .routes(routes!(webhooks::list_events))
        .routes(routes!(webhooks::get_event))
        .routes(routes!(webhooks::retry_webhook_delivery))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::rotate_api_key))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(staff::sign_in))
        .routes(routes!(staff::get_own_account))
        .routes(routes!(staff::sign_out))
        .routes(routes!(staff::list_own_sessions))
        .routes(routes!(staff::revoke_own_session))
        .routes(routes!(staff::change_own_password))
        .routes(routes!(staff::begin_totp))
        .routes(routes!(staff::confirm_totp))
        .routes(routes!(staff::create_staff, staff::list_staff))
        .routes(routes!(staff::get_staff, staff::update_staff))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(adjustments::create_adjustment))
        .routes(routes!(adjustments::list_adjustments))
        .routes(routes!(adjustments::get_adjustment))
        .routes(routes!(adjustments::approve_adjustment))
        .routes(routes!(adjustments::reject_adjustment))
        .routes(routes!(adjustments::get_settings, adjustments::update_settings))
        .routes(routes!(
            card_batches::create_card_batch,
            card_batches::list_card_batches
        ))
        .routes(routes!(
            cardholder_links::create_cardholder_link,
            cardholder_links::list_cardholder_links
        ))
        .routes(routes!(cardholder_links::revoke_cardholder_link))
        .routes(routes!(card_batches::import_card_batch))
        .routes(routes!(card_batches::get_card_batch))
        .routes(routes!(
            card_batches::get_card_batch_file,
            card_batches::collect_card_batch_file
        ))
        .routes(routes!(reports::get_liability_report))
        .routes(routes!(reports::get_activity_report))
        .routes(routes!(reports::get_channel_report))
        .routes(routes!(reports::get_dormant_report))
}

/// The native JSON of a family's outcome (its refusals are rendered alike, by [`ApiError`]).
pub(crate) trait NativeBody {
    /// The body, or `None` for an outcome the native API never asks its family for.
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>>;
}

impl NativeBody for Outcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            Outcome::Program(program) => serde_json::to_vec(&ProgramResponse::from(program)),
            Outcome::IssuedCard(issued) => serde_json::to_vec(&CardResponse::issued(
                &issued.card,
                &issued.number,
                &issued.security_code,
            )),
            Outcome::Card(card) => serde_json::to_vec(&CardResponse::new(card)),
            Outcome::Transaction(transaction) => serde_json::to_vec(&TransactionResponse::from(transaction)),
            Outcome::Hold(hold) => serde_json::to_vec(&HoldResponse::from(hold)),
            // The CLI's and the sweeper's: no native route runs them.
            Outcome::Merchant(_) | Outcome::Nothing => return None,
        })
    }
}

impl NativeBody for TransferOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            TransferOutcome::Transfer {
                source,
                target,
                issued,
                transfer_out,
                transfer_in,
            } => serde_json::to_vec(&TransferResponse {
                object: "transfer",
                source: CardResponse::new(source),
                target: match issued {
                    Some((number, security_code)) => CardResponse::issued(target, number, security_code),
                    None => CardResponse::new(target),
                },
                transfer_out: transfer_out.into(),
                transfer_in: transfer_in.into(),
            }),
            TransferOutcome::Merge {
                target,
                sources,
                transactions,
            } => serde_json::to_vec(&MergeResponse {
                object: "merge",
                card: CardResponse::new(target),
                sources: sources.iter().map(CardResponse::new).collect(),
                transactions: transactions.iter().map(TransactionResponse::from).collect(),
            }),
        })
    }
}

impl NativeBody for WebhookOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            WebhookOutcome::Endpoint { endpoint, secret } => serde_json::to_vec(
                &webhooks::WebhookEndpointResponse::new(endpoint, Some(secret.expose().to_owned())),
            ),
            WebhookOutcome::DeliveryRetried { id } => serde_json::to_vec(&webhooks::RetryResponse {
                object: "webhook_delivery",
                id: id.to_string(),
                state: "pending",
            }),
            // The service answers the endpoint read back after it, not this.
            WebhookOutcome::Disabled => return None,
        })
    }
}

/// Renders a command's result the native way; `success` is the status of a success.
fn render<T: NativeBody>(result: &Result<T, Refusal>, success: StatusCode) -> Rendered {
    let body = match result {
        Err(refusal) => return ApiError::from(refusal).rendered(),
        Ok(outcome) => match outcome.native_body() {
            Some(body) => body.expect("response types always serialize"),
            None => {
                tracing::error!("a native command produced an outcome the native API does not render");
                return ApiError::from(giftd_service::ServiceError::unexpected_outcome()).rendered();
            }
        },
    };
    Rendered {
        status: success.as_u16(),
        body,
    }
}

/// Runs a command of any family whose outcome the native API renders.
async fn run<O>(
    app: &AppState,
    merchant: MerchantId,
    command: O,
    idempotency: Option<IdempotencyKey>,
    success: StatusCode,
) -> Answer
where
    O: Operation,
    O::Outcome: NativeBody,
{
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            idempotency,
            Box::new(move |result| render(result, success)),
        )
        .await?;
    answer(rendered)
}

/// A command's rendered answer as the HTTP response, with its status.
fn answer(rendered: Rendered) -> Answer {
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(json_response(status, rendered.body))
}

fn ok<T: serde::Serialize>(value: &T) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(value).expect("response types always serialize"),
    ))
}

/// Trims the extra item a page query fetched and names the cursor of the next page.
fn list<R, T>(
    mut records: Vec<R>,
    page: &Page,
    id: impl Fn(&R) -> String,
    to_wire: impl Fn(&R) -> T,
) -> List<T> {
    let limit = page.limit as usize - 1;
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records.last().map(&id)
    } else {
        None
    };
    List {
        object: "list",
        data: records.iter().map(to_wire).collect(),
        next_cursor,
    }
}

// ---- programs ----

#[utoipa::path(post, path = "/v1/programs", tag = "programs", request_body = CreateProgramRequest,
    responses((status = 201, description = "Created: the program.", body = ProgramResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn create_program(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateProgramRequest>,
) -> Answer {
    let r = body.value;
    let denominations = r
        .denominations
        .map(|list| {
            list.into_iter()
                .map(|d| amount(d, "denominations"))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let program = NewProgram {
        name: r.name,
        currency: currency(&r.currency)?,
        denominations,
        min_load: optional_amount(r.min_load, "min_load")?,
        max_load: optional_amount(r.max_load, "max_load")?,
        max_balance: optional_amount(r.max_balance, "max_balance")?,
        reloadable: r.reloadable.unwrap_or(true),
        expiry_months: r.expiry_months,
        promotional: r.promotional.unwrap_or(false),
        number_prefix: r.number_prefix.unwrap_or_default(),
        number_length: r.number_length.unwrap_or(16),
        security_code_length: r.security_code_length.unwrap_or(8),
        promotion_code: r.promotion_code,
        active: r.active.unwrap_or(true),
        breakage_on_expiry: r.breakage_on_expiry.unwrap_or(false),
    };
    run(
        &app,
        merchant,
        Command::CreateProgram(program),
        body.idempotency,
        StatusCode::CREATED,
    )
    .await
}

#[utoipa::path(get, path = "/v1/programs", tag = "programs", params(PageQuery),
    responses((status = 200, description = "A page of programs.", body = List<ProgramResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn list_programs(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let page = query::<PageQuery>(raw.as_deref())?.page()?;
    let programs = app.service.programs(&merchant, &page).await?;
    ok(&list(
        programs,
        &page,
        |p| p.id.to_string(),
        |p| ProgramResponse::from(p),
    ))
}

#[utoipa::path(get, path = "/v1/programs/{id}", tag = "programs", params(("id" = String, Path)),
    responses((status = 200, description = "The program.", body = ProgramResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn get_program(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, ProgramId::parse, "program")?;
    ok(&ProgramResponse::from(
        &app.service.program(&merchant, &id).await?,
    ))
}

/// Changes a program: its name, limits, reloadability, expiry (lengthened or cleared only),
/// promotion code and whether it is active (issues new cards). What cards already hold never
/// changes; the new limits govern what comes after.
#[utoipa::path(patch, path = "/v1/programs/{id}", tag = "programs", params(("id" = String, Path)),
    request_body = UpdateProgramRequest,
    responses((status = 200, description = "The program as changed.", body = ProgramResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn update_program(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<UpdateProgramRequest>,
) -> Answer {
    let program_id = path_id(&id, ProgramId::parse, "program")?;
    let r = body.value;
    for (param, sent) in [
        ("currency", r.currency.is_some()),
        ("promotional", r.promotional.is_some()),
        ("number_prefix", r.number_prefix.is_some()),
        ("number_length", r.number_length.is_some()),
        ("security_code_length", r.security_code_length.is_some()),
    ] {
        if sent {
            return Err(ApiError::invalid(
                param,
                format!("`{param}` never changes: the program's cards were issued under it."),
            ));
        }
    }
    let amounts =
        |value: Option<Option<i64>>, param: &str| value.map(|v| optional_amount(v, param)).transpose();
    let denominations = r
        .denominations
        .map(|list| {
            list.map(|list| {
                list.into_iter()
                    .map(|d| amount(d, "denominations"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
        })
        .transpose()?;
    let changes = ProgramChanges {
        name: r.name,
        denominations,
        min_load: amounts(r.min_load, "min_load")?,
        max_load: amounts(r.max_load, "max_load")?,
        max_balance: amounts(r.max_balance, "max_balance")?,
        reloadable: r.reloadable,
        expiry_months: r.expiry_months,
        promotion_code: r.promotion_code,
        active: r.active,
        breakage_on_expiry: r.breakage_on_expiry,
    };
    run(
        &app,
        merchant,
        Command::UpdateProgram { program_id, changes },
        body.idempotency,
        StatusCode::OK,
    )
    .await
}

// ---- cards ----

#[utoipa::path(post, path = "/v1/cards", tag = "cards", request_body = CreateCardRequest,
    responses((status = 201, description = "Created: the card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn create_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateCardRequest>,
) -> Answer {
    let r = body.value;
    let program_id = ProgramId::parse(&r.program_id)
        .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is not a program id."))?;
    let kind = CardKind::parse(&r.kind)
        .ok_or_else(|| ApiError::invalid("kind", "`kind` must be `virtual` or `physical`."))?;
    let import = match (r.number, r.security_code) {
        (None, None) => None,
        (Some(number), Some(code)) => Some((
            CardNumber::parse(&number)
                .ok_or_else(|| ApiError::invalid("number", "`number` must be 6 to 21 digits."))?,
            SecurityCode::parse(&code).ok_or_else(|| {
                ApiError::invalid(
                    "security_code",
                    "`security_code` must be 3 to 16 letters or digits.",
                )
            })?,
        )),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "security_code",
                "Importing a card takes its `security_code` too.",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "number",
                "Importing a card takes its `number` too.",
            ));
        }
    };
    if kind == CardKind::Physical && r.amount.is_some() {
        return Err(ApiError::invalid(
            "amount",
            "Physical cards are issued inactive without value; give the amount when activating.",
        ));
    }
    let command = Command::IssueCard {
        program_id,
        kind,
        amount: optional_amount(r.amount, "amount")?,
        import,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::CREATED).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CardListQuery {
    /// `inactive`, `active`, `frozen` or `closed`.
    state: Option<String>,
    program_id: Option<String>,
    /// Only cards whose number ends with these 4 digits.
    last4: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/cards", tag = "cards", params(CardListQuery),
    responses((status = 200, description = "A page of cards.", body = List<CardResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn list_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: CardListQuery = query(raw.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = CardFilter {
        state: q
            .state
            .map(|s| {
                CardState::parse(&s).ok_or_else(|| {
                    ApiError::invalid("state", "`state` must be inactive, active, frozen or closed.")
                })
            })
            .transpose()?,
        program_id: q
            .program_id
            .map(|p| {
                ProgramId::parse(&p)
                    .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is not a program id."))
            })
            .transpose()?,
        last4: q
            .last4
            .map(|digits| {
                Some(digits)
                    .filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| ApiError::invalid("last4", "`last4` must be 4 digits."))
            })
            .transpose()?,
    };
    let cards = app.service.cards(&merchant, &filter, &page).await?;
    ok(&list(
        cards,
        &page,
        |c| c.snapshot.id.to_string(),
        CardResponse::new,
    ))
}

#[utoipa::path(get, path = "/v1/cards/{id}", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, description = "The card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn get_card(State(app): State<AppState>, Merchant(merchant): Merchant, PathId(id): PathId) -> Answer {
    let id = path_id(&id, CardId::parse, "card")?;
    ok(&CardResponse::new(&app.service.card(&merchant, &id).await?))
}

/// Unknown number and wrong security code answer alike (404 `invalid_card`); 10 wrong codes
/// for one number within 30 minutes lock it for 30 minutes (422 `card_locked`).
#[utoipa::path(post, path = "/v1/cards/lookup", tag = "cards", request_body = LookupRequest,
    responses((status = 200, description = "The card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn lookup_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<LookupRequest>,
) -> Answer {
    let r = body.value;
    // A malformed number cannot match a card: the same answer as a wrong one. A malformed code
    // is checked like a wrong one, and counts toward the number's lockout.
    let invalid = || ApiError::from(&Refusal::Domain(giftd_domain::DomainError::InvalidCard));
    let number = CardNumber::parse(&r.number).ok_or_else(invalid)?;
    let security_code = SecurityCode::presented(&r.security_code);
    run(
        &app,
        merchant,
        Command::LookupCard {
            number,
            security_code,
        },
        body.idempotency,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(post, path = "/v1/cards/{id}/activate", tag = "cards", params(("id" = String, Path)),
    request_body = ActivateRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn activate_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<ActivateRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let command = Command::Activate {
        card_id,
        amount: optional_amount(r.amount, "amount")?,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(post, path = "/v1/cards/{id}/load", tag = "cards", params(("id" = String, Path)),
    request_body = LoadRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn load_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<LoadRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let command = Command::Load {
        card_id,
        amount: amount(r.amount, "amount")?,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(post, path = "/v1/cards/{id}/redeem", tag = "cards", params(("id" = String, Path)),
    request_body = RedeemRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn redeem_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<RedeemRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let command = Command::Redeem {
        card_id,
        amount: amount(r.amount, "amount")?,
        allow_partial: r.allow_partial.unwrap_or(false),
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(post, path = "/v1/cards/{id}/cashout", tag = "cards", params(("id" = String, Path)),
    request_body = CashoutRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn cashout_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<CashoutRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let command = Command::Cashout {
        card_id,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(post, path = "/v1/cards/{id}/freeze", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, description = "The card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn freeze_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<StateChangeRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    run(
        &app,
        merchant,
        Command::Freeze { card_id },
        body.idempotency,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(post, path = "/v1/cards/{id}/unfreeze", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, description = "The card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn unfreeze_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<StateChangeRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    run(
        &app,
        merchant,
        Command::Unfreeze { card_id },
        body.idempotency,
        StatusCode::OK,
    )
    .await
}

/// Closes the card for good. Refused (409 `card_not_empty`) while value or pending holds
/// remain, unless `cashout` is true.
#[utoipa::path(post, path = "/v1/cards/{id}/deactivate", tag = "cards", params(("id" = String, Path)),
    request_body = DeactivateRequest,
    responses((status = 200, description = "The card.", body = CardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn deactivate_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<DeactivateRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let command = Command::Deactivate {
        card_id,
        cashout: body.value.cashout.unwrap_or(false),
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(get, path = "/v1/cards/{id}/transactions", tag = "cards", params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "A page of transactions, newest first.", body = List<TransactionResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn list_card_transactions(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    RawQuery(raw): RawQuery,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let page = query::<PageQuery>(raw.as_deref())?.page()?;
    let transactions = app.service.card_transactions(&merchant, &card_id, &page).await?;
    ok(&list(
        transactions,
        &page,
        |t| t.id.to_string(),
        |t| TransactionResponse::from(t),
    ))
}

// ---- transfers and merges ----

/// Moves value to another card of the same currency, or to a new card, in one journal entry:
/// both cards change or neither does.
#[utoipa::path(post, path = "/v1/cards/{id}/transfer", tag = "cards", params(("id" = String, Path)),
    request_body = TransferRequest,
    responses((status = 200, description = "The transfer, with both cards and both transactions.", body = TransferResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn transfer_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<TransferRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let to_card_id = r
        .to_card_id
        .map(|to| {
            CardId::parse(&to)
                .ok_or_else(|| ApiError::invalid("to_card_id", "`to_card_id` is not a card id."))
        })
        .transpose()?;
    let command = TransferCommand::Transfer {
        card_id,
        to_card_id,
        amount: optional_amount(r.amount, "amount")?,
        close_source: r.close_source.unwrap_or(false),
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// Moves the whole available balance of 1 to 10 source cards into this card, in one journal
/// entry; the sources end closed with reason `combined`.
#[utoipa::path(post, path = "/v1/cards/{id}/merge", tag = "cards", params(("id" = String, Path)),
    request_body = MergeRequest,
    responses((status = 200, description = "The merge, with every card and transaction.", body = MergeResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn merge_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<MergeRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    if r.source_card_ids.is_empty() || r.source_card_ids.len() > giftd_domain::linked::MAX_MERGE_SOURCES {
        return Err(ApiError::invalid(
            "source_card_ids",
            "`source_card_ids` must list 1 to 10 cards.",
        ));
    }
    let source_card_ids = r
        .source_card_ids
        .iter()
        .map(|id| {
            CardId::parse(id)
                .ok_or_else(|| ApiError::invalid("source_card_ids", format!("`{id}` is not a card id.")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let command = TransferCommand::Merge {
        card_id,
        source_card_ids,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

// ---- holds ----

#[utoipa::path(post, path = "/v1/cards/{id}/holds", tag = "holds", params(("id" = String, Path)),
    request_body = CreateHoldRequest,
    responses((status = 201, description = "Created: the hold.", body = HoldResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn create_hold(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<CreateHoldRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    let expires_in_seconds = r.expires_in_seconds.unwrap_or(DEFAULT_HOLD_SECONDS);
    if !(1..=MAX_HOLD_SECONDS).contains(&expires_in_seconds) {
        return Err(ApiError::invalid(
            "expires_in_seconds",
            "`expires_in_seconds` must be 1 to 604800.",
        ));
    }
    let command = Command::PlaceHold {
        card_id,
        amount: amount(r.amount, "amount")?,
        allow_partial: r.allow_partial.unwrap_or(false),
        currency: optional_currency(r.currency.as_deref())?,
        expires_in_seconds,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds", params(("id" = String, Path)),
    responses((status = 200, description = "The hold.", body = HoldResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn get_hold(State(app): State<AppState>, Merchant(merchant): Merchant, PathId(id): PathId) -> Answer {
    let id = path_id(&id, HoldId::parse, "hold")?;
    ok(&HoldResponse::from(&app.service.hold(&merchant, &id).await?))
}

/// Captures up to the hold's amount (default all of it); the rest is released. 0 releases all.
#[utoipa::path(post, path = "/v1/holds/{id}/capture", tag = "holds", params(("id" = String, Path)),
    request_body = CaptureRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn capture_hold(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<CaptureRequest>,
) -> Answer {
    let hold_id = path_id(&id, HoldId::parse, "hold")?;
    let r = body.value;
    if r.amount.is_some_and(|a| a < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            "`amount` must be 0 or more.",
        )
        .with_param("amount"));
    }
    let command = Command::CaptureHold {
        hold_id,
        amount: r.amount,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

#[utoipa::path(post, path = "/v1/holds/{id}/release", tag = "holds", params(("id" = String, Path)),
    responses((status = 200, description = "The hold.", body = HoldResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn release_hold(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<StateChangeRequest>,
) -> Answer {
    let hold_id = path_id(&id, HoldId::parse, "hold")?;
    run(
        &app,
        merchant,
        Command::ReleaseHold { hold_id },
        body.idempotency,
        StatusCode::OK,
    )
    .await
}

// ---- transactions ----

#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "transactions", params(("id" = String, Path)),
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn get_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, TransactionId::parse, "transaction")?;
    ok(&TransactionResponse::from(
        &app.service.transaction(&merchant, &id).await?,
    ))
}

/// Refunds a redemption or capture, in part or in whole; refunds never sum past the original.
#[utoipa::path(post, path = "/v1/transactions/{id}/refund", tag = "transactions", params(("id" = String, Path)),
    request_body = RefundRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn refund_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<RefundRequest>,
) -> Answer {
    let transaction_id = path_id(&id, TransactionId::parse, "transaction")?;
    let r = body.value;
    let command = Command::Refund {
        transaction_id,
        amount: optional_amount(r.amount, "amount")?,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// Reverses an issue, activation, load, redemption, capture, refund or cash-out exactly once.
#[utoipa::path(post, path = "/v1/transactions/{id}/void", tag = "transactions", params(("id" = String, Path)),
    request_body = VoidRequest,
    responses((status = 200, description = "The transaction.", body = TransactionResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
async fn void_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<VoidRequest>,
) -> Answer {
    let transaction_id = path_id(&id, TransactionId::parse, "transaction")?;
    let r = body.value;
    let command = Command::Void {
        transaction_id,
        currency: optional_currency(r.currency.as_deref())?,
        reference: reference(r.reference)?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}
