//! Report routes of the native API (`/v1/reports/...`): outstanding liability as of a date,
//! daily activity, activity per channel, dormant cards. Each parses its query, asks the service (which reads the
//! ledger, scoped to the caller's merchant) and renders JSON. No SQL and no arithmetic here
//! beyond naming days.

use axum::extract::{RawQuery, State};
use giftd_domain::Date;
use giftd_service::views::{ActivityLine, ChannelLine, DormantCard, LiabilityLine};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{Merchant, query};
use super::wire::{List, rfc3339};
use super::{Answer, list, ok};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiabilityQuery {
    /// `YYYY-MM-DD` (UTC); the report includes all of that day. Default: today.
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// First day, `YYYY-MM-DD` (UTC), included.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), included; at most 366 days after `from`.
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DormantQuery {
    /// Months without a transaction, 1 to 600.
    pub months: Option<String>,
    /// `YYYY-MM-DD` (UTC); default today.
    pub as_of: Option<String>,
    /// 1 to 100; default 20.
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiabilityReportResponse {
    pub object: &'static str,
    /// The day the report is as of (its end, UTC).
    pub as_of: String,
    /// One line per program and currency with value outstanding.
    pub data: Vec<LiabilityLineResponse>,
    /// The lines summed per currency.
    pub totals: Vec<CurrencyTotal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiabilityLineResponse {
    pub program_id: String,
    pub currency: String,
    /// Cards with value outstanding.
    pub cards: i64,
    /// Minor units: the sum of the cards' ledger balances (available and held). May pass
    /// 64 bits (each card may hold up to 2^63 - 1); JSON carries it exactly.
    pub liability: i128,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyTotal {
    pub currency: String,
    pub liability: i128,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityReportResponse {
    pub object: &'static str,
    pub from: String,
    pub to: String,
    /// Oldest day first; days without transactions are left out.
    pub data: Vec<ActivityLineResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityLineResponse {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub program_id: String,
    pub currency: String,
    /// The transaction type, as on transactions.
    #[serde(rename = "type")]
    pub transaction_type: &'static str,
    pub count: i64,
    /// Sum of the transactions' amounts (positive magnitudes), minor units; for `adjustment`,
    /// net: what they put on less what they took off (may be negative). May pass 64 bits.
    pub amount: i128,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelReportResponse {
    pub object: &'static str,
    pub from: String,
    pub to: String,
    /// One line per program, currency, type and channel with transactions in the span.
    pub data: Vec<ChannelLineResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelLineResponse {
    pub program_id: String,
    pub currency: String,
    /// The transaction type, as on transactions.
    #[serde(rename = "type")]
    pub transaction_type: &'static str,
    /// The front-end the transactions came through: `native` (the native API and the
    /// console), `wallet` (the customer-wallet API), `clover`, `adyen` (Terminal and Stored
    /// Value APIs), `gr4vy`, or `system` (giftd itself: the sweeper's expiries, the checkout
    /// recovery loop, the command line). `null` for transactions written before giftd recorded
    /// it.
    pub channel: Option<&'static str>,
    pub count: i64,
    /// As in the activity report: positive magnitudes, an adjustment net. Minor units.
    pub amount: i128,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DormantCardResponse {
    pub card_id: String,
    pub program_id: String,
    pub currency: String,
    /// The card's state now.
    pub state: &'static str,
    /// Ledger balance at the end of `as_of`, minor units.
    pub balance: i64,
    /// The card's last transaction at or before `as_of`.
    pub last_activity_at: String,
}

fn date(value: Option<&str>, param: &str, default: Option<Date>) -> Result<Date, ApiError> {
    match value {
        Some(text) => Date::parse(text)
            .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a date, YYYY-MM-DD."))),
        None => {
            default.ok_or_else(|| ApiError::invalid(param, format!("The parameter `{param}` is required.")))
        }
    }
}

/// The first and last day of a report over a span (`from` and `to`, both required).
fn span(raw: Option<&str>) -> Result<(Date, Date), ApiError> {
    let params = query::<ActivityQuery>(raw)?;
    let from = date(params.from.as_deref(), "from", None)?;
    let to = date(params.to.as_deref(), "to", None)?;
    Ok((from, to))
}

fn liability_line(line: &LiabilityLine) -> LiabilityLineResponse {
    LiabilityLineResponse {
        program_id: line.program_id.to_string(),
        currency: line.currency.clone(),
        cards: line.cards,
        liability: line.liability_minor,
    }
}

fn activity_line(line: &ActivityLine) -> ActivityLineResponse {
    ActivityLineResponse {
        date: Date::from_days(line.day).to_string(),
        program_id: line.program_id.to_string(),
        currency: line.currency.clone(),
        transaction_type: line.transaction_type.as_str(),
        count: line.count,
        amount: line.amount_minor,
    }
}

fn channel_line(line: &ChannelLine) -> ChannelLineResponse {
    ChannelLineResponse {
        program_id: line.program_id.to_string(),
        currency: line.currency.clone(),
        transaction_type: line.transaction_type.as_str(),
        channel: line.channel.map(|channel| channel.as_str()),
        count: line.count,
        amount: line.amount_minor,
    }
}

fn dormant_card(card: &DormantCard) -> DormantCardResponse {
    DormantCardResponse {
        card_id: card.card_id.to_string(),
        program_id: card.program_id.to_string(),
        currency: card.currency.clone(),
        state: card.state.as_str(),
        balance: card.balance_minor,
        last_activity_at: rfc3339(card.last_activity_at),
    }
}

/// Outstanding liability per program and currency at the end of a day, computed from the
/// ledger's postings (not the cached card balances).
#[utoipa::path(get, path = "/v1/reports/liability", tag = "reports", params(LiabilityQuery),
    responses((status = 200, description = "The liability report.", body = LiabilityReportResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_liability_report(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let params = query::<LiabilityQuery>(raw.as_deref())?;
    let today = Date::of(app.service.now());
    let as_of = date(params.as_of.as_deref(), "as_of", Some(today))?;
    let lines = app.service.liability_report(Some(&merchant), as_of).await?;
    let mut totals: Vec<CurrencyTotal> = Vec::new();
    for line in &lines {
        match totals.iter_mut().find(|t| t.currency == line.currency) {
            Some(total) => total.liability += line.liability_minor,
            None => totals.push(CurrencyTotal {
                currency: line.currency.clone(),
                liability: line.liability_minor,
            }),
        }
    }
    totals.sort_by(|a, b| a.currency.cmp(&b.currency));
    ok(&LiabilityReportResponse {
        object: "liability_report",
        as_of: as_of.to_string(),
        data: lines.iter().map(liability_line).collect(),
        totals,
    })
}

/// Transactions counted and summed per UTC day, program, currency and type.
#[utoipa::path(get, path = "/v1/reports/activity", tag = "reports", params(ActivityQuery),
    responses((status = 200, description = "The activity report.", body = ActivityReportResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_activity_report(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let (from, to) = span(raw.as_deref())?;
    let lines = app.service.activity_report(Some(&merchant), from, to).await?;
    ok(&ActivityReportResponse {
        object: "activity_report",
        from: from.to_string(),
        to: to.to_string(),
        data: lines.iter().map(activity_line).collect(),
    })
}

/// Transactions counted and summed per program, currency, type and the front-end they came
/// through, over a span of days: the dashboard's redemptions by channel.
#[utoipa::path(get, path = "/v1/reports/channels", tag = "reports", params(ActivityQuery),
    responses((status = 200, description = "The channel report.", body = ChannelReportResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_channel_report(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let (from, to) = span(raw.as_deref())?;
    let lines = app.service.channel_report(Some(&merchant), from, to).await?;
    ok(&ChannelReportResponse {
        object: "channel_report",
        from: from.to_string(),
        to: to.to_string(),
        data: lines.iter().map(channel_line).collect(),
    })
}

/// Cards that still hold value but had no transaction in the last `months` months before
/// `as_of`: breakage and escheatment candidates, in card creation order.
#[utoipa::path(get, path = "/v1/reports/dormant", tag = "reports", params(DormantQuery),
    responses((status = 200, description = "A page of dormant cards.", body = List<DormantCardResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_dormant_report(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let params = query::<DormantQuery>(raw.as_deref())?;
    let months = match params.months.as_deref() {
        None => return Err(ApiError::invalid("months", "The parameter `months` is required.")),
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| ApiError::invalid("months", "`months` must be an integer from 1 to 600."))?,
    };
    let today = Date::of(app.service.now());
    let as_of = date(params.as_of.as_deref(), "as_of", Some(today))?;
    let page = super::extract::PageQuery {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    let cards = app
        .service
        .dormant_report(Some(&merchant), months, as_of, &page)
        .await?;
    ok(&list(cards, &page, |c| c.card_id.to_string(), dormant_card))
}
