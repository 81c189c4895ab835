//! Clover's reads: `GET /v1/charges/{chargeId}`, `GET /v1/charges`, `GET /v1/refunds/{refundId}`
//! and `GET /v1/refunds`. A charge or refund read back renders through the same code as its
//! creation's answer (`super::clover_object`), with what changed since; lists come in Clover's
//! envelope, paged by Clover's inclusive cursors.
//!
//! Here: the query parameters, parsed strictly where a misread would silently show the wrong
//! objects (a bad `limit`, cursor or `created` filter, a repeated parameter, a filter giftd
//! cannot apply is 400), leniently elsewhere (other parameters are ignored, as Clover ignores
//! unknown fields). Which transactions are charges and refunds, and their state, is the
//! service's and the store's. docs/CLOVER.md ("Reads") records every choice.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use giftd_domain::TransactionId;
use giftd_service::ServiceError;
use giftd_service::clover::{CloverCursor, CloverListRequest, CloverPage, MAX_LIST_LIMIT};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime};

use super::error::CloverError;
use super::extract::{CloverMerchant, CloverPathId};
use super::wire::CloverListResponse;
use super::{Answer, Shown, View, clover_object, to_json};
use crate::{AppState, json_response};

/// How many objects a page holds when the request names no `limit` (Clover's default).
pub const DEFAULT_LIST_LIMIT: u32 = 10;
/// The latest instant a `created` filter may name in milliseconds: the last of year 9999, past
/// which no date can be written.
const MAX_CREATED_MILLIS: i64 = 253_402_300_799_999;
/// The most digits a `created` filter in milliseconds may have (9999-12-31 has 15).
const MAX_CREATED_DIGITS: usize = 15;

/// Which list a request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Charges,
    Refunds,
}

/// `GET /clover/v1/charges/{chargeId}`: a charge (a redemption or a lock) as its creation
/// answered, with its state of now.
pub(super) async fn get_charge(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    CloverPathId(id): CloverPathId,
    RawQuery(raw): RawQuery,
) -> Answer {
    refuse_expand(&pairs(raw.as_deref())?)?;
    let missing = || CloverError::missing("chargeId", format!("No such charge: {id}"));
    let charge = TransactionId::parse(&id).ok_or_else(missing)?;
    let record = app
        .service
        .clover_charge(&merchant, &charge)
        .await
        .map_err(|error| not_found_as(error, missing))?;
    Ok(one(&Shown::of_record(&record)))
}

/// `GET /clover/v1/refunds/{refundId}`: a refund as its creation answered, with its status of
/// now.
pub(super) async fn get_refund(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    CloverPathId(id): CloverPathId,
    RawQuery(raw): RawQuery,
) -> Answer {
    refuse_expand(&pairs(raw.as_deref())?)?;
    let missing = || CloverError::missing("refundId", format!("No such refund: {id}"));
    let refund = TransactionId::parse(&id).ok_or_else(missing)?;
    let record = app
        .service
        .clover_refund(&merchant, &refund)
        .await
        .map_err(|error| not_found_as(error, missing))?;
    Ok(one(&Shown::of_record(&record)))
}

/// `GET /clover/v1/charges`: the merchant's charges, newest first, in pages.
pub(super) async fn list_charges(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let request = list_request(raw.as_deref(), List::Charges)?;
    let page = app.service.clover_charges(&merchant, &request).await?;
    Ok(list("/v1/charges", &page))
}

/// `GET /clover/v1/refunds`: the merchant's refunds (of one `charge`, if asked), newest first,
/// in pages.
pub(super) async fn list_refunds(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let request = list_request(raw.as_deref(), List::Refunds)?;
    let page = app.service.clover_refunds(&merchant, &request).await?;
    Ok(list("/v1/refunds", &page))
}

fn not_found_as(error: ServiceError, missing: impl Fn() -> CloverError) -> CloverError {
    match error {
        ServiceError::NotFound(_) => missing(),
        other => other.into(),
    }
}

fn one(shown: &Shown<'_>) -> axum::response::Response {
    json_response(StatusCode::OK, to_json(&clover_object(shown, &View::default())))
}

fn list(url: &'static str, page: &CloverPage) -> axum::response::Response {
    let body = CloverListResponse {
        object: "list",
        url,
        has_more: page.has_more,
        data: page
            .items
            .iter()
            .map(|record| clover_object(&Shown::of_record(record), &View::default()))
            .collect(),
    };
    json_response(StatusCode::OK, to_json(&body))
}

/// The query's parameters, percent-decoded, in order.
fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, CloverError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| CloverError::invalid("query", "The query string is malformed."))
}

/// giftd expands nothing (a refund's `charge` stays an id; giftd has no customers nor orders):
/// a client asking for an expansion is told so rather than handed ids it does not expect.
fn refuse_expand(pairs: &[(String, String)]) -> Result<(), CloverError> {
    match pairs
        .iter()
        .find(|(name, _)| name == "expand" || name.starts_with("expand["))
    {
        Some((name, _)) => Err(CloverError::invalid(
            name,
            "giftd does not expand objects: leave out `expand` (ids stay ids).",
        )),
        None => Ok(()),
    }
}

/// A list request's parameters: `limit`, one cursor, `created.gt|gte|lt|lte`, and for refunds
/// `charge`.
fn list_request(raw: Option<&str>, list: List) -> Result<CloverListRequest, CloverError> {
    let pairs = pairs(raw)?;
    refuse_expand(&pairs)?;
    let mut seen: Vec<&str> = Vec::new();
    let mut request = CloverListRequest {
        created_from: None,
        created_until: None,
        cursor: None,
        charge: None,
        limit: DEFAULT_LIST_LIMIT,
    };
    for (name, value) in &pairs {
        let name = name.as_str();
        let known = matches!(
            name,
            "limit"
                | "starting_after"
                | "ending_before"
                | "created.gt"
                | "created.gte"
                | "created.lt"
                | "created.lte"
        ) || (name == "charge" && list == List::Refunds);
        if known {
            if seen.contains(&name) {
                return Err(CloverError::invalid(
                    name,
                    format!("`{name}` is given more than once."),
                ));
            }
            seen.push(name);
        }
        match name {
            "limit" => request.limit = limit(value)?,
            "starting_after" | "ending_before" => {
                if request.cursor.is_some() {
                    return Err(CloverError::invalid(
                        name,
                        "Give `starting_after` or `ending_before`, not both.",
                    ));
                }
                let what = match list {
                    List::Charges => "charge",
                    List::Refunds => "refund",
                };
                let id = TransactionId::parse(value).ok_or_else(|| {
                    CloverError::invalid(name, format!("`{name}` names no {what} of yours: {value}"))
                })?;
                request.cursor = Some(if name == "starting_after" {
                    CloverCursor::StartingAfter(id)
                } else {
                    CloverCursor::EndingBefore(id)
                });
            }
            "created.gt" => {
                let after = instant(name, value)?.saturating_add(1);
                request.created_from = Some(request.created_from.map_or(after, |from| from.max(after)));
            }
            "created.gte" => {
                let from = instant(name, value)?;
                request.created_from = Some(request.created_from.map_or(from, |f| f.max(from)));
            }
            "created.lt" => {
                let before = instant(name, value)?.saturating_sub(1);
                request.created_until = Some(request.created_until.map_or(before, |until| until.min(before)));
            }
            "created.lte" => {
                let until = instant(name, value)?;
                request.created_until = Some(request.created_until.map_or(until, |u| u.min(until)));
            }
            "charge" if list == List::Refunds => {
                let id = TransactionId::parse(value).ok_or_else(|| {
                    CloverError::invalid("charge", format!("`charge` names nothing of yours: {value}"))
                })?;
                request.charge = Some(id);
            }
            // A filter giftd cannot apply would silently show what was not asked for.
            "customer" => {
                return Err(CloverError::invalid(
                    "customer",
                    "giftd has no customers: leave out `customer`.",
                ));
            }
            other if other.starts_with("created") => {
                return Err(CloverError::invalid(
                    other,
                    format!(
                        "`{other}` is not a filter giftd knows: filter on creation time with created.gt, created.gte, created.lt or created.lte."
                    ),
                ));
            }
            // Clover ignores what it does not know; so does giftd.
            _ => {}
        }
    }
    Ok(request)
}

/// `limit`: a whole number from 1 to [`MAX_LIST_LIMIT`].
fn limit(value: &str) -> Result<u32, CloverError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_LIST_LIMIT).contains(limit) && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            CloverError::invalid(
                "limit",
                format!("`limit` must be a whole number from 1 to {MAX_LIST_LIMIT}."),
            )
        })
}

/// An instant of a `created` filter, in milliseconds since 1970: milliseconds as digits, a date
/// (`2021-01-12`, its midnight) or a date and time (`2021-01-15 15:00:00`, or with a `T`), UTC.
fn instant(param: &str, value: &str) -> Result<i64, CloverError> {
    let refused = || {
        CloverError::invalid(
            param,
            format!(
                "`{param}` must be milliseconds since 1970, a date (yyyy-MM-dd) or a date and time (yyyy-MM-dd HH:mm:ss), UTC."
            ),
        )
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        if value.len() > MAX_CREATED_DIGITS {
            return Err(refused());
        }
        return value
            .parse::<i64>()
            .ok()
            .filter(|millis| *millis <= MAX_CREATED_MILLIS)
            .ok_or_else(refused);
    }
    let date = format_description!("[year]-[month]-[day]");
    let with_space = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let with_t = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let at = if let Ok(day) = Date::parse(value, date) {
        day.midnight()
    } else if let Ok(at) = PrimitiveDateTime::parse(value, with_space) {
        at
    } else {
        PrimitiveDateTime::parse(value, with_t).map_err(|_| refused())?
    };
    Ok(at.assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_filters_take_milliseconds_dates_and_date_times_in_utc() {
        assert_eq!(
            instant("created.gt", "1681705896145").ok(),
            Some(1_681_705_896_145)
        );
        assert_eq!(instant("created.gt", "2021-01-12").ok(), Some(1_610_409_600_000));
        assert_eq!(
            instant("created.gt", "2021-01-15 15:00:00").ok(),
            Some(1_610_722_800_000)
        );
        assert_eq!(
            instant("created.gt", "2021-01-15T15:00:00").ok(),
            Some(1_610_722_800_000)
        );
        for bad in [
            "",
            "yesterday",
            "2021-13-01",
            "2021-01-15 25:00:00",
            "-5",
            "1e3",
            "9999999999999999",
        ] {
            assert!(instant("created.gt", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limit_is_a_whole_number_from_one_to_a_hundred() {
        assert_eq!(limit("1").ok(), Some(1));
        assert_eq!(limit("100").ok(), Some(100));
        for bad in ["0", "101", "-1", "+5", "ten", "", "1.0"] {
            assert!(limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn created_bounds_combine_into_one_inclusive_range() {
        let request = list_request(
            Some("created.gt=1000&created.gte=500&created.lt=2000&created.lte=2500"),
            List::Charges,
        )
        .expect("valid");
        assert_eq!(request.created_from, Some(1001));
        assert_eq!(request.created_until, Some(1999));
    }

    #[test]
    fn list_parameters_that_would_misfilter_are_refused() {
        for query in [
            "limit=5&limit=6",
            "starting_after=txn_a&ending_before=txn_b",
            "created=2021-01-12",
            "created[gt]=2021-01-12",
            "customer=NAYQEY34V6H24",
            "expand[]=charge",
            "starting_after=",
        ] {
            assert!(list_request(Some(query), List::Refunds).is_err(), "{query}");
        }
        // Parameters giftd does not know are ignored; `charge` filters only refunds.
        assert!(list_request(Some("shipping=x&charge=nothing%20like%20an%20id"), List::Charges).is_ok());
        assert!(list_request(Some("charge=nothing%20like%20an%20id"), List::Refunds).is_err());
    }
}
