//! Card batches made by a running server (docs/OPERATIONS.md "Card stock"): new inactive cards
//! for a card printer (`POST /v1/card_batches`) or cards migrated from another processor
//! (`POST /v1/card_batches/import`, the import file as the body), listed and read; and the
//! printer's file of a generated batch, handed out (`GET .../file`) until its caller says it
//! has it (`DELETE .../file?sha256=`), after which only its digest is kept. Wire types and
//! handlers only; batches are prepared and written by the service (`giftd_service::stock`).

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use giftd_domain::ProgramId;
use giftd_service::Rendered;
use giftd_service::stock::{CardBatchRow, MAX_SERVED_IMPORT_BYTES, NewCardBatch, StockError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PageQuery, PathId, query};
use super::wire::{List, rfc3339};
use super::{Answer, answer, list, ok};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct CardBatchFile {
    /// SHA-256 of the file, 64 hex digits: the caller names it to say it has the file.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// Whether its caller said it has it; from then on only the digest is kept.
    pub collected: bool,
    pub collected_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardBatchResponse {
    pub object: &'static str,
    /// `stk_...`
    pub id: String,
    pub program_id: String,
    /// `generated` (new inactive cards for a printer) or `imported`.
    pub source: &'static str,
    /// Cards in the batch.
    pub cards: i64,
    /// Minor units of balance the batch's cards were issued with (imports only).
    pub value: i64,
    pub created_at: String,
    /// The printer's file of a generated batch made by a running server; null otherwise.
    pub file: Option<CardBatchFile>,
}

impl From<&CardBatchRow> for CardBatchResponse {
    fn from(row: &CardBatchRow) -> Self {
        let b = &row.batch;
        Self {
            object: "card_batch",
            id: b.id.clone(),
            program_id: b.program_id.to_string(),
            source: b.source.as_str(),
            cards: b.cards,
            value: b.value_minor,
            created_at: rfc3339(b.created_at),
            file: row.file.as_ref().map(|f| CardBatchFile {
                sha256: hex::encode(&f.sha256),
                size: f.size,
                collected: f.collected_at.is_some(),
                collected_at: f.collected_at.map(rfc3339),
            }),
        }
    }
}

fn rendered(row: &CardBatchRow, created: bool) -> Rendered {
    Rendered {
        status: if created { 201 } else { 200 },
        body: serde_json::to_vec(&CardBatchResponse::from(row)).expect("response types always serialize"),
    }
}

impl From<StockError> for ApiError {
    fn from(error: StockError) -> Self {
        match error {
            StockError::Service(error) => error.into(),
            StockError::Lines { lines, total } => {
                let listed: Vec<String> = lines.iter().map(ToString::to_string).collect();
                let more = total.saturating_sub(lines.len());
                let more = if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_import",
                    format!(
                        "{total} bad line(s) in the import file; nothing was imported. {}{more}.",
                        listed.join("; ")
                    ),
                )
                .with_param("file")
            }
            StockError::FileCollected => ApiError::new(
                StatusCode::GONE,
                "file_collected",
                super::super::edge::sentence(error.to_string()),
            ),
            StockError::DigestMismatch => ApiError::new(
                StatusCode::CONFLICT,
                "digest_mismatch",
                super::super::edge::sentence(error.to_string()),
            )
            .with_param("sha256"),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardBatchRequest {
    /// The program whose cards to make; it must be active.
    pub program_id: String,
    /// 1 to 10,000 new inactive physical cards.
    pub count: u64,
}

#[utoipa::path(post, path = "/v1/card_batches", tag = "card_batches",
    request_body = CreateCardBatchRequest,
    responses((status = 201, description = "Made: the cards exist (inactive), and their printer's file waits at `GET /v1/card_batches/{id}/file`.", body = CardBatchResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_card_batch(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateCardBatchRequest>,
) -> Answer {
    let r = body.value;
    let program = ProgramId::parse(&r.program_id)
        .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is not a program id."))?;
    let count = usize::try_from(r.count).unwrap_or(usize::MAX);
    let new = NewCardBatch::Generate { program, count };
    answer(
        app.service
            .create_card_batch(&merchant, new, body.idempotency, &rendered)
            .await?,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// The program the cards join; it must be active.
    program_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/card_batches/import", tag = "card_batches", params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The import file, as `giftd cards import` reads it (docs/OPERATIONS.md): a header naming the columns, one card per line. Up to 2 MiB and 10,000 cards."),
    responses((status = 201, description = "Imported: every card of the file, with its balance.", body = CardBatchResponse), (status = 200, description = "This very file was imported before: its batch, and nothing written.", body = CardBatchResponse), (status = "4XX", description = "Refused, nothing imported: `invalid_import` names every bad line (up to 20) in `error.message`.", body = ErrorBody)))]
pub(super) async fn import_card_batch(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    request: Request,
) -> Answer {
    let q: ImportQuery = query(request.uri().query())?;
    let program = q
        .program_id
        .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is required in the query."))?;
    let program = ProgramId::parse(&program)
        .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is not a program id."))?;
    // One byte over the limit tells "too large" from "exactly the limit".
    let file = axum::body::to_bytes(request.into_body(), MAX_SERVED_IMPORT_BYTES + 1)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("An import file is at most {MAX_SERVED_IMPORT_BYTES} bytes; split it."),
            )
        })?;
    let new = NewCardBatch::Import {
        program,
        file: file.to_vec(),
    };
    answer(
        app.service
            .create_card_batch(&merchant, new, None, &rendered)
            .await?,
    )
}

#[utoipa::path(get, path = "/v1/card_batches", tag = "card_batches", params(PageQuery),
    responses((status = 200, description = "A page of card batches, newest first.", body = List<CardBatchResponse>), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn list_card_batches(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let page: PageQuery = query(raw.as_deref())?;
    let page = page.page()?;
    let rows = app.service.card_batches(&merchant, &page).await?;
    ok(&list(
        rows,
        &page,
        |row| row.batch.id.clone(),
        |row| CardBatchResponse::from(row),
    ))
}

#[utoipa::path(get, path = "/v1/card_batches/{id}", tag = "card_batches", params(("id" = String, Path)),
    responses((status = 200, description = "The batch.", body = CardBatchResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_card_batch(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    ok(&CardBatchResponse::from(
        &app.service.card_batch(&merchant, &id).await?,
    ))
}

#[utoipa::path(get, path = "/v1/card_batches/{id}/file", tag = "card_batches", params(("id" = String, Path)),
    responses((status = 200, description = "The printer's file (CSV: card_id, number, security_code, program_id, expires_at, batch_id), until collected. Its SHA-256 is the batch's `file.sha256`.", content_type = "text/csv", body = String), (status = 410, description = "`file_collected`: only its digest is kept.", body = ErrorBody), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_card_batch_file(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let (row, file) = app.service.card_batch_file(&merchant, &id).await?;
    let mut response = (StatusCode::OK, file).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    // Card numbers and security codes: no cache anywhere may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}.csv\"", row.batch.id)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CollectQuery {
    /// The SHA-256 of the file as received, 64 hex digits: it must be the file's.
    sha256: Option<String>,
}

#[utoipa::path(delete, path = "/v1/card_batches/{id}/file", tag = "card_batches", params(("id" = String, Path), CollectQuery),
    responses((status = 200, description = "Collected: the file is gone, its digest kept. Saying it again answers the same.", body = CardBatchResponse), (status = 409, description = "`digest_mismatch`: not the file's digest; the file is kept.", body = ErrorBody), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn collect_card_batch_file(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: CollectQuery = query(raw.as_deref())?;
    let sha256 = q.sha256.ok_or_else(|| {
        ApiError::invalid(
            "sha256",
            "`sha256` is required: the SHA-256 of the file as received.",
        )
    })?;
    ok(&CardBatchResponse::from(
        &app.service
            .collect_card_batch_file(&merchant, &id, &sha256)
            .await?,
    ))
}
