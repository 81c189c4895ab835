//! The cardholder page, `GET /g/{token}` (docs/CARDHOLDER.md): what the person who was given a
//! card sees of it at the link they were sent. The card's program, its first value and what
//! remains, its expiry and state, its number in groups of four, the security code when the
//! link keeps one, a Code128 barcode for a laser scanner and a QR code for a camera till (both
//! hold the number and are drawn here as inline SVG), and its recent uses (date, amount,
//! balance after; nothing of who paid or what).
//!
//! The page is public: it presents no key and sets no cookie. An unknown, malformed or revoked
//! token is the same 404 page; every token tried counts toward the address's rate limit
//! (`guard.rs`, through [`EDGE`]). Every answer says `Cache-Control: no-store`,
//! `Referrer-Policy: no-referrer` (the token is in the address), `X-Robots-Tag: noindex` and a
//! policy that allows its own stylesheet and nothing else.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use giftd_domain::{CardState, TransactionType};
use giftd_service::cardholder::CardholderPage;

use crate::AppState;
use crate::console::money;

/// The page's policy: its stylesheet, the symbols inline, nothing else, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
/// Where the page's stylesheet is served.
pub const STYLESHEET_PATH: &str = "/g/assets/cardholder.css";
/// Height of the barcode's bars, in its own units (the page scales it).
const BARCODE_HEIGHT: u32 = 60;

/// The guard's view of this front-end: every page asked for counts toward the address's rate
/// limit (a token guessed is a lookup); a refusal is a plain page.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/g/"),
    code_fields: &[],
    counts: |method, path| *method == Method::GET && path != STYLESHEET_PATH,
    inspects_body: crate::guard::none,
    refusal: |status, _code, message| page_response(status, Plain { message }.render()),
    query_refusal: None,
    // Never recorded: the page only reads.
    channel: giftd_domain::Channel::Native,
};

/// Where cardholders reach this server: the configured `public_url`, else the scheme giftd
/// serves and the Host the request came to.
#[derive(Debug, Clone, Default)]
pub struct PublicOrigin {
    pub url: Option<Arc<str>>,
    /// Served over TLS (so `https` when no `public_url` is set).
    pub tls: bool,
}

/// The base a request's cardholder links are built on (no trailing slash).
pub struct PublicBase(pub String);

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(url) = &state.public.url {
            return Ok(Self(url.to_string()));
        }
        let scheme = if state.public.tls { "https" } else { "http" };
        // A Host made of what a host and port are made of; anything else is not echoed back.
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
            })
            .unwrap_or("localhost");
        Ok(Self(format!("{scheme}://{host}")))
    }
}

/// The address of a link's page.
pub fn link_url(base: &PublicBase, token: &str) -> String {
    format!("{}/g/{token}", base.0)
}

/// The page's routes, served beside the API with all its layers.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(STYLESHEET_PATH, get(stylesheet))
        .route("/g/{token}", get(page))
}

#[derive(Template)]
#[template(path = "cardholder/card.html")]
struct CardPage {
    program: String,
    balance: String,
    initial_value: Option<String>,
    /// "Expires on …" or that it does not.
    expiry: String,
    /// Why the card cannot be used now, when it cannot.
    badge: Option<&'static str>,
    number_groups: String,
    security_code: Option<String>,
    barcode_svg: String,
    qr_svg: String,
    recent: Vec<Use>,
}

struct Use {
    date: String,
    what: &'static str,
    amount: String,
    balance_after: String,
}

#[derive(Template)]
#[template(path = "cardholder/plain.html")]
struct Plain {
    message: String,
}

fn page_response(status: StatusCode, rendered: askama::Result<String>) -> Response {
    let mut response = match rendered {
        Ok(html) => (status, html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a cardholder page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown.").into_response()
        }
    };
    let headers = response.headers_mut();
    if status.is_success() || status.is_client_error() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-robots-tag", "noindex, nofollow"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn not_found() -> Response {
    page_response(
        StatusCode::NOT_FOUND,
        Plain {
            message: "This gift card link does not work. It may have been replaced by a newer one: ask whoever sent it.".into(),
        }
        .render(),
    )
}

async fn page(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match app.service.cardholder_page(&token).await {
        Ok(Some(page)) => page_response(StatusCode::OK, card_page(&page, app.service.now()).render()),
        Ok(None) => not_found(),
        Err(error) => {
            tracing::warn!(%error, "a cardholder page could not be read");
            page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Plain {
                    message: "The card cannot be shown right now. Please try again in a minute.".into(),
                }
                .render(),
            )
        }
    }
}

fn card_page(page: &CardholderPage, now: giftd_domain::Timestamp) -> CardPage {
    let card = &page.card.snapshot;
    let currency = card.currency.code();
    let show = |minor: i64| money(minor, currency);
    let badge = match card.state {
        CardState::Active if card.expires_at.is_some_and(|at| at <= now) => Some("Expired"),
        CardState::Active => None,
        CardState::Inactive => Some("Not activated yet"),
        CardState::Frozen => Some("Blocked: contact the shop"),
        CardState::Closed => Some("Closed"),
    };
    CardPage {
        program: page.program.name.clone(),
        balance: show(card.balance - card.held),
        initial_value: page.initial_value.map(show),
        expiry: card.expires_at.map_or_else(
            || "Does not expire".to_owned(),
            |at| {
                format!(
                    "Expires on {}",
                    crate::edge::rfc3339(at).get(..10).unwrap_or_default()
                )
            },
        ),
        badge,
        number_groups: groups_of_four(&page.number),
        security_code: page.security_code.clone(),
        barcode_svg: barcode(&page.number),
        qr_svg: qr(&page.number),
        recent: page
            .recent
            .iter()
            .map(|t| Use {
                date: crate::edge::rfc3339(t.created_at)
                    .get(..10)
                    .unwrap_or_default()
                    .to_owned(),
                what: what(t.transaction_type),
                amount: show(t.amount),
                balance_after: show(t.balance_after),
            })
            .collect(),
    }
}

/// A transaction as a cardholder would name it.
fn what(kind: TransactionType) -> &'static str {
    match kind {
        TransactionType::Issue | TransactionType::Activation => "Card issued",
        TransactionType::Load => "Value added",
        TransactionType::Redemption | TransactionType::Capture => "Spent",
        TransactionType::Hold => "Reserved",
        TransactionType::Release => "Reservation ended",
        TransactionType::Refund => "Refunded to card",
        TransactionType::Void => "Cancelled",
        TransactionType::Cashout => "Paid out",
        TransactionType::TransferOut | TransactionType::MergeOut => "Moved to another card",
        TransactionType::TransferIn | TransactionType::MergeIn => "Moved from another card",
        TransactionType::Adjustment => "Corrected by the shop",
        TransactionType::Expiry => "Expired",
    }
}

/// `1234567890123456` as `1234 5678 9012 3456`.
fn groups_of_four(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    chars
        .chunks(4)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The number as a Code128 barcode (character set B: any printable ASCII), inline SVG.
fn barcode(number: &str) -> String {
    use barcoders::generators::svg::SVG;
    use barcoders::sym::code128::Code128;
    // `Ɓ` selects character set B, which every card number's characters belong to.
    match Code128::new(format!("Ɓ{number}")) {
        Ok(code) => SVG::new(BARCODE_HEIGHT)
            .generate(code.encode())
            .map(|svg| {
                svg.replacen(
                    "<svg ",
                    "<svg aria-hidden=\"true\" preserveAspectRatio=\"none\" ",
                    1,
                )
            })
            .unwrap_or_default(),
        Err(error) => {
            tracing::error!(%error, "a card number has no Code128 barcode");
            String::new()
        }
    }
}

/// The number as a QR code, inline SVG (its XML prolog dropped: it sits inside HTML).
fn qr(number: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::new(number.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(160, 160)
                .quiet_zone(true)
                .build();
            let svg = match svg.find("<svg") {
                Some(start) => &svg[start..],
                None => svg.as_str(),
            };
            svg.replacen("<svg ", "<svg aria-hidden=\"true\" ", 1)
        }
        Err(error) => {
            tracing::error!(%error, "a card number has no QR code");
            String::new()
        }
    }
}

async fn stylesheet() -> Response {
    crate::console::stylesheet_response(include_str!("../assets/cardholder.css"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_shown_in_groups_of_four() {
        assert_eq!(groups_of_four("6000123412341234"), "6000 1234 1234 1234");
        assert_eq!(groups_of_four("600012341234123"), "6000 1234 1234 123");
    }

    #[test]
    fn the_symbols_are_inline_svg_coloured_by_attributes_not_styles() {
        for svg in [barcode("6000123412341234"), qr("6000123412341234")] {
            assert!(svg.starts_with("<svg "), "{svg:.40}");
            assert!(svg.ends_with("</svg>"));
            assert!(!svg.contains("<?xml"));
            // A strict CSP refuses inline styles: the shapes must be filled by attributes.
            assert!(!svg.contains("style="));
        }
    }

    #[test]
    fn a_barcode_encodes_every_digit_of_the_number() {
        // Two numbers one digit apart draw different bars.
        assert_ne!(barcode("6000123412341234"), barcode("6000123412341235"));
    }
}
