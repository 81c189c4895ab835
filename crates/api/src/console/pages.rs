//! The console's pages and actions. Each page reads what it shows from the native API as the
//! signed-in staff member and renders a template; each action checks its form (same origin,
//! the session's form token), makes the native request, and redirects to the page that shows
//! the result (`?done=` naming one of [`NOTICES`]) or renders the refusal's sentence.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Answer, Console, Visit, field, form, minor_units, money, see_other};

/// What a redirect after an action may say, by its `?done=` word: fixed sentences only, so a
/// link from elsewhere cannot put words into a console page.
const NOTICES: [(&str, &str); 20] = [
    ("refunded", "Refunded: the value is back where it came from."),
    (
        "endpoint_disabled",
        "Endpoint disabled: nothing more is sent to it.",
    ),
    ("retried", "Delivery scheduled again now."),
    ("key_revoked", "Key revoked: it stops working now."),
    ("role_changed", "Role changed: their sessions have ended."),
    ("disabled", "Disabled: signed out everywhere, and cannot sign in."),
    ("enabled", "Enabled: they can sign in again."),
    ("program_created", "Program created."),
    ("program_updated", "Program changed."),
    (
        "program_unchanged",
        "Nothing to change: the program is as the form was.",
    ),
    ("card_issued", "Card issued: it is active with its amount."),
    ("frozen", "Card frozen: it cannot be used until unfrozen."),
    ("unfrozen", "Card unfrozen."),
    (
        "link_revoked",
        "Cardholder link revoked: its page no longer opens.",
    ),
    ("adjusted", "Adjustment applied."),
    (
        "adjustment_pending",
        "Adjustment requested: it waits for a second person's approval.",
    ),
    ("approved", "Adjustment approved and applied."),
    ("rejected", "Adjustment rejected: it moved nothing."),
    ("password_changed", "Password changed."),
    ("signed_out", "You are signed out."),
];

/// Transactions shown on a card's page.
const HISTORY_ROWS: u32 = 50;
/// Dormant cards on one page of the report (the API's largest page).
const DORMANT_ROWS: u32 = 100;
/// Most cards the dormant report's CSV holds; a larger report is for `giftd report dormant`.
const MAX_DORMANT_CSV_ROWS: usize = 10_000;
/// The dormant report's default and largest number of months without a transaction.
const DEFAULT_DORMANT_MONTHS: u32 = 12;
const MAX_DORMANT_MONTHS: u32 = 600;

pub(super) fn routes() -> axum::Router<Console> {
    axum::Router::new()
        .route("/console", get(home))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/sign_in", get(sign_in_page).post(sign_in))
        .route("/console/sign_out", post(sign_out))
        .route("/console/password", get(password_page).post(change_password))
        .route("/console/programs", get(programs).post(create_program))
        .route("/console/programs/{id}", get(program).post(update_program))
        .route("/console/cards", get(cards).post(issue_card))
        .route("/console/cards/lookup", post(lookup_card))
        .route("/console/cards/{id}", get(card))
        .route("/console/cards/{id}/{action}", post(card_action))
        .route("/console/adjustments", get(adjustments))
        .route("/console/adjustments/{id}/{decision}", post(decide))
        .route("/console/checkouts", get(checkouts))
        .route("/console/checkouts/{id}/refund", post(refund_checkout))
        .route("/console/reports/liability", get(liability))
        .route("/console/reports/liability.csv", get(liability_csv))
        .route("/console/reports/dormant", get(dormant))
        .route("/console/reports/dormant.csv", get(dormant_csv))
        .route("/console/reports/activity", get(activity))
        .route("/console/reports/activity.csv", get(activity_csv))
        .route("/console/reports/breakage", get(breakage))
        .route("/console/reports/breakage.csv", get(breakage_csv))
        .route(
            "/console/staff",
            get(super::admin::staff).post(super::admin::invite),
        )
        .route("/console/staff/{id}", post(super::admin::change_staff))
        .route("/console/audit", get(super::admin::audit))
        .route(
            "/console/api_keys",
            get(super::admin::api_keys).post(super::admin::create_api_key),
        )
        .route(
            "/console/api_keys/{id}/{verb}",
            post(super::admin::change_api_key),
        )
        .route(
            "/console/webhooks",
            get(super::admin::webhooks).post(super::admin::create_endpoint),
        )
        .route(
            "/console/webhooks/{id}/disable",
            post(super::admin::disable_endpoint),
        )
        .route("/console/webhooks/events/{id}", get(super::admin::event))
        .route(
            "/console/webhooks/deliveries/{id}/retry",
            post(super::admin::retry_delivery),
        )
}

/// The signed-in staff member, as the header shows them.
pub(super) struct Me {
    pub(super) email: String,
    pub(super) role: String,
}

/// What every page's frame needs.
pub(super) struct Frame {
    pub(super) me: Option<Me>,
    pub(super) form_token: String,
    pub(super) notice: Option<&'static str>,
}

fn notice(visit: &Visit) -> Option<&'static str> {
    let done = visit.query_field("done");
    NOTICES
        .iter()
        .find(|(word, _)| *word == done)
        .map(|(_, sentence)| *sentence)
}

pub(super) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/refused.html")]
struct Refused {
    frame: Frame,
    message: String,
    back: String,
}

/// A refusal's page: the native API's sentence, with its status.
pub(super) fn refused(frame: Frame, answer: &Answer, back: &str) -> Response {
    let mut response = render(&Refused {
        frame,
        message: answer.message(),
        back: back.to_owned(),
    });
    *response.status_mut() = if answer.status.is_client_error() || answer.status.is_server_error() {
        answer.status
    } else {
        StatusCode::BAD_REQUEST
    };
    response
}

/// A form that did not come from the console's own page.
pub(super) fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html("<!doctype html><html lang=\"en\"><title>Refused</title><h1>Refused</h1><p>This form did not come from this console (or the page was too old). Go back, reload the page and try again.</p></html>"),
    )
        .into_response()
}

/// The signed-in staff member of a visit and the frame of their page, or the redirect to where
/// they must go first (sign-in, or a new password).
pub(super) async fn signed_in(console: &Console, visit: &Visit) -> Result<Frame, Response> {
    if visit.token.is_none() {
        return Err(see_other("/console/sign_in"));
    }
    let answer = console.call(visit, Method::GET, "/v1/staff/me", None).await;
    if answer.status == StatusCode::UNAUTHORIZED {
        return Err(see_other("/console/sign_in"));
    }
    if !answer.ok() {
        return Err(refused(empty_frame(), &answer, "/console"));
    }
    if answer.json["password_change_required"] == true && visit.path != "/console/password" {
        return Err(see_other("/console/password"));
    }
    Ok(Frame {
        me: Some(Me {
            email: text(&answer.json["email"]),
            role: text(&answer.json["role"]),
        }),
        form_token: visit.form_token(),
        notice: notice(visit),
    })
}

/// A page's visit by a signed-in staff member: extracting it sends anyone else where they
/// must go first (sign-in, or a new password).
pub(crate) struct SignedIn {
    pub visit: Visit,
    pub frame: Frame,
}

impl axum::extract::FromRequestParts<Console> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        console: &Console,
    ) -> Result<Self, Response> {
        let visit = Visit::new(&parts.headers, &parts.uri, &parts.extensions, console.config);
        let frame = signed_in(console, &visit).await?;
        Ok(Self { visit, frame })
    }
}

/// An action's form, posted by a signed-in staff member from the console's own page (same
/// origin, the session's form token); anything else is refused before the handler runs.
pub(crate) struct Posted {
    pub visit: Visit,
    pub frame: Frame,
    pub fields: Vec<(String, String)>,
}

impl axum::extract::FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let visit = Visit::of(&request, console.config);
        let frame = signed_in(console, &visit).await?;
        let fields = form(request, &visit.form_token()).await.ok_or_else(forged)?;
        Ok(Self { visit, frame, fields })
    }
}

fn empty_frame() -> Frame {
    Frame {
        me: None,
        form_token: String::new(),
        notice: None,
    }
}

pub(super) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The date part of an RFC 3339 instant, for tables.
pub(super) fn day(value: &Value) -> String {
    let text = text(value);
    text.get(..16).map_or(text.clone(), |t| t.replace('T', " "))
}

async fn stylesheet() -> Response {
    stylesheet_response(include_str!("../../assets/console.css"))
}

/// A stylesheet embedded in the binary, cached for an hour.
pub(crate) fn stylesheet_response(css: &'static str) -> Response {
    let mut response = css.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

// ---- signing in and out ----

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn {
    frame: Frame,
    error: Option<String>,
    email: String,
}

/// The sign-in form, with a token of its own in a cookie (there is no session yet).
async fn sign_in_page(State(console): State<Console>, request: Request) -> Response {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut frame = empty_frame();
    frame.form_token = token.clone();
    frame.notice = notice(&Visit::of(&request, console.config));
    let mut response = render(&SignIn {
        frame,
        error: None,
        email: String::new(),
    });
    response.headers_mut().append(
        header::SET_COOKIE,
        console.config.cookie(&console.config.sign_in_cookie(), &token),
    );
    response
}

async fn sign_in(State(console): State<Console>, request: Request) -> Response {
    let visit = Visit::of(&request, console.config);
    let Some(expected) = super::cookie(request.headers(), &console.config.sign_in_cookie()) else {
        return forged();
    };
    let Some(fields) = form(request, &expected).await else {
        return forged();
    };
    let email = field(&fields, "email").to_owned();
    let totp = field(&fields, "totp_code");
    let mut body = json!({"email": email, "password": field(&fields, "password")});
    if !totp.is_empty() {
        body["totp_code"] = json!(totp);
    }
    let anonymous = Visit { token: None, ..visit };
    let answer = console
        .call(&anonymous, Method::POST, "/v1/sessions", Some(body))
        .await;
    if !answer.ok() {
        let mut frame = empty_frame();
        frame.form_token = expected;
        let mut response = render(&SignIn {
            frame,
            error: Some(answer.message()),
            email,
        });
        *response.status_mut() = answer.status;
        return response;
    }
    let token = text(&answer.json["token"]);
    let next = if answer.json["staff"]["password_change_required"] == true {
        "/console/password"
    } else {
        "/console"
    };
    let mut response = see_other(next);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        console.config.cookie(console.config.session_cookie(), &token),
    );
    headers.append(
        header::SET_COOKIE,
        console.config.cookie(&console.config.sign_in_cookie(), ""),
    );
    response
}

async fn sign_out(State(console): State<Console>, request: Request) -> Response {
    let visit = Visit::of(&request, console.config);
    if form(request, &visit.form_token()).await.is_none() {
        return forged();
    }
    console
        .call(&visit, Method::POST, "/v1/staff/me/sign_out", Some(json!({})))
        .await;
    let mut response = see_other("/console/sign_in?done=signed_out");
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        console.config.cookie(console.config.session_cookie(), ""),
    );
    headers.insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"storage\""),
    );
    response
}

#[derive(Template)]
#[template(path = "console/password.html")]
struct Password {
    frame: Frame,
    error: Option<String>,
}

async fn password_page(SignedIn { frame, .. }: SignedIn) -> Response {
    render(&Password { frame, error: None })
}

async fn change_password(
    State(console): State<Console>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let body = json!({
        "current_password": field(&fields, "current_password"),
        "new_password": field(&fields, "new_password"),
    });
    let answer = console
        .call(&visit, Method::POST, "/v1/staff/me/password", Some(body))
        .await;
    if answer.ok() {
        return see_other("/console?done=password_changed");
    }
    let mut response = render(&Password {
        frame,
        error: Some(answer.message()),
    });
    *response.status_mut() = answer.status;
    response
}

// ---- home ----

#[derive(Template)]
#[template(path = "console/home.html")]
struct Home {
    frame: Frame,
    reports_visible: bool,
    liability: Vec<String>,
    /// The activity's span: the last 30 days, or today only (`?days=1`), or 90 (`?days=90`),
    /// from `from` to `to`.
    days: i64,
    from: String,
    to: String,
    activity: Vec<(String, i64, String)>,
    /// Redemptions and captures of the span per channel: (channel, count, amount).
    channels: Vec<(String, i64, String)>,
    pending: usize,
}

/// How the dashboard names a channel of the channel report.
fn channel_label(channel: &Value) -> String {
    match channel.as_str() {
        Some("native") => "Native API and console",
        Some("wallet") => "Customer wallet API",
        Some("clover") => "Clover",
        Some("adyen") => "Adyen",
        Some("gr4vy") => "Gr4vy",
        Some("system") => "giftd itself",
        Some(other) => other,
        None => "Not recorded",
    }
    .to_owned()
}

/// Report lines counted and summed per `key` and currency, as (key, count, amount shown).
fn summed<'a>(
    lines: impl Iterator<Item = &'a Value>,
    key: impl Fn(&Value) -> String,
) -> Vec<(String, i64, String)> {
    let mut sums: Vec<(String, String, i64, i128)> = Vec::new();
    for line in lines {
        let name = key(line);
        let currency = text(&line["currency"]);
        let count = line["count"].as_i64().unwrap_or_default();
        let amount = line["amount"].as_i64().map_or(0, i128::from);
        match sums.iter_mut().find(|s| s.0 == name && s.1 == currency) {
            Some(sum) => {
                sum.2 += count;
                sum.3 += amount;
            }
            None => sums.push((name, currency, count, amount)),
        }
    }
    sums.into_iter()
        .map(|(name, currency, count, amount)| {
            let shown = i64::try_from(amount).map_or_else(
                |_| format!("{amount} (minor units) {currency}"),
                |a| money(a, &currency),
            );
            (name, count, shown)
        })
        .collect()
}

async fn home(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let today = console.today();
    let days: i64 = match visit.query_field("days").as_str() {
        "1" => 1,
        "90" => 90,
        _ => 30,
    };
    let from = giftd_domain::Date::from_days(today.days() - (days - 1));
    let liability = console
        .call(&visit, Method::GET, "/v1/reports/liability", None)
        .await;
    let activity = console
        .call(
            &visit,
            Method::GET,
            &format!("/v1/reports/activity?from={from}&to={today}"),
            None,
        )
        .await;
    let channels = console
        .call(
            &visit,
            Method::GET,
            &format!("/v1/reports/channels?from={from}&to={today}"),
            None,
        )
        .await;
    let pending = console
        .call(
            &visit,
            Method::GET,
            "/v1/adjustments?state=pending&limit=100",
            None,
        )
        .await;
    // A role that may not read reports (support) sees the rest of the page.
    let reports_visible = liability.ok();
    let liability = liability.json["totals"]
        .as_array()
        .map(|totals| {
            totals
                .iter()
                .map(|t| money_value(&t["liability"], &text(&t["currency"])))
                .collect()
        })
        .unwrap_or_default();
    let activity = summed(activity.rows(), |line| text(&line["type"]));
    let spent = |line: &&Value| matches!(line["type"].as_str(), Some("redemption" | "capture"));
    let channels = summed(channels.rows().filter(spent), |line| {
        channel_label(&line["channel"])
    });
    let pending = pending.rows().count();
    render(&Home {
        frame,
        reports_visible,
        liability,
        days,
        from: from.to_string(),
        to: today.to_string(),
        activity,
        channels,
        pending,
    })
}

/// A JSON amount (which may pass 64 bits, as liability may) as money.
fn money_value(value: &Value, currency: &str) -> String {
    match value.as_i64() {
        Some(minor) => money(minor, currency),
        None => format!("{value} (minor units) {currency}"),
    }
}

// ---- programs and issuing ----

pub(super) struct ProgramRow {
    id: String,
    name: String,
    currency: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/programs.html")]
struct Programs {
    frame: Frame,
    programs: Vec<ProgramRow>,
}

async fn programs(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let answer = console
        .call(&visit, Method::GET, "/v1/programs?limit=100", None)
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let programs = answer
        .rows()
        .map(|p| ProgramRow {
            id: text(&p["id"]),
            name: text(&p["name"]),
            currency: text(&p["currency"]),
            state: if p["active"] == false {
                "inactive"
            } else {
                "active"
            },
        })
        .collect();
    render(&Programs { frame, programs })
}

#[derive(Template)]
#[template(path = "console/program.html")]
struct ProgramPage {
    frame: Frame,
    id: String,
    name: String,
    currency: String,
    active: bool,
    reloadable: bool,
    /// Its limits and rules, as shown: label and value.
    facts: Vec<(&'static str, String)>,
    /// The changeable limits as typed in the form: major units, empty for none.
    min_load: String,
    max_load: String,
    max_balance: String,
    /// Months, empty for never.
    expiry_months: String,
    /// Major units separated by commas, empty for any amount.
    denominations: String,
}

/// The fields of a program's limits the console edits: each an amount, or none.
const PROGRAM_LIMITS: [&str; 3] = ["min_load", "max_load", "max_balance"];

/// Minor units as typed in a form: major units without the currency (`25.00`).
fn typed_major(value: &Value, currency: &str) -> String {
    value.as_i64().map_or_else(String::new, |minor| {
        let shown = money(minor, currency);
        shown
            .rsplit_once(' ')
            .map_or(shown.clone(), |(amount, _)| amount.to_owned())
    })
}

async fn program(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedIn { visit, frame }: SignedIn,
) -> Response {
    let id = path_segment(&id);
    let answer = console
        .call(&visit, Method::GET, &format!("/v1/programs/{id}"), None)
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/programs");
    }
    let p = &answer.json;
    let currency = text(&p["currency"]);
    let limit = |value: &Value| {
        if value.is_null() {
            "none".to_owned()
        } else {
            money_value(value, &currency)
        }
    };
    let denominations = p["denominations"].as_array().map_or_else(
        || "any amount".to_owned(),
        |list| {
            list.iter()
                .map(|d| money_value(d, &currency))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let facts = vec![
        ("Denominations", denominations),
        ("Smallest load", limit(&p["min_load"])),
        ("Largest load", limit(&p["max_load"])),
        ("Largest balance", limit(&p["max_balance"])),
        (
            "Cards expire",
            p["expiry_months"]
                .as_u64()
                .map_or("never".to_owned(), |m| format!("{m} months after issue")),
        ),
        (
            "Value left at expiry",
            if p["breakage_on_expiry"] == true {
                "becomes breakage".to_owned()
            } else {
                "stays the cardholder's".to_owned()
            },
        ),
        (
            "Promotion code",
            Some(text(&p["promotion_code"]))
                .filter(|code| !code.is_empty())
                .unwrap_or_else(|| "none".to_owned()),
        ),
        (
            "Card numbers",
            match text(&p["number_prefix"]) {
                prefix if prefix.is_empty() => format!("{} digits", p["number_length"]),
                prefix => format!("{} digits starting {prefix}", p["number_length"]),
            },
        ),
    ];
    render(&ProgramPage {
        frame,
        id: text(&p["id"]),
        name: text(&p["name"]),
        currency: currency.clone(),
        active: p["active"] != false,
        reloadable: p["reloadable"] == true,
        min_load: typed_major(&p["min_load"], &currency),
        max_load: typed_major(&p["max_load"], &currency),
        max_balance: typed_major(&p["max_balance"], &currency),
        expiry_months: p["expiry_months"]
            .as_u64()
            .map_or_else(String::new, |m| m.to_string()),
        denominations: p["denominations"].as_array().map_or_else(String::new, |list| {
            list.iter()
                .map(|d| typed_major(d, &currency))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        facts,
    })
}

/// Changes what the form changed (a field left as it was is not sent: the API checks each
/// change against the promises made to the cards already sold).
async fn update_program(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let id = path_segment(&id);
    let back = format!("/console/programs/{id}");
    let current = console
        .call(&visit, Method::GET, &format!("/v1/programs/{id}"), None)
        .await;
    if !current.ok() {
        return refused(frame, &current, "/console/programs");
    }
    let mut body = serde_json::Map::new();
    let name = field(&fields, "name").trim();
    if name != text(&current.json["name"]) {
        body.insert("name".into(), json!(name));
    }
    // A checkbox sends its field only when ticked.
    for flag in ["active", "reloadable"] {
        let ticked = field(&fields, flag) == "on";
        if current.json[flag].as_bool() != Some(ticked) {
            body.insert(flag.into(), json!(ticked));
        }
    }
    // An emptied field removes its limit.
    let currency = text(&current.json["currency"]);
    for limit in PROGRAM_LIMITS {
        let typed = field(&fields, limit).trim();
        let asked = if typed.is_empty() {
            Value::Null
        } else {
            match minor_units(typed, &currency, false) {
                Some(minor) => json!(minor),
                None => return invalid_amount(frame, &back),
            }
        };
        if current.json[limit] != asked {
            body.insert(limit.into(), asked);
        }
    }
    let typed = field(&fields, "denominations");
    let asked = if typed.trim().is_empty() {
        Value::Null
    } else {
        let mut amounts = Vec::new();
        for part in typed.split(',') {
            match minor_units(part, &currency, false) {
                Some(minor) => amounts.push(json!(minor)),
                None => return invalid_amount(frame, &back),
            }
        }
        Value::Array(amounts)
    };
    if current.json["denominations"] != asked {
        body.insert("denominations".into(), asked);
    }
    let typed = field(&fields, "expiry_months").trim();
    let asked = if typed.is_empty() {
        Value::Null
    } else {
        match typed.parse::<u32>() {
            Ok(months) => json!(months),
            Err(_) => {
                return refused(
                    frame,
                    &Answer {
                        status: StatusCode::BAD_REQUEST,
                        json: json!({"error": {"message": "Expiry is a whole number of months, or empty for cards that never expire."}}),
                    },
                    &back,
                );
            }
        }
    };
    if current.json["expiry_months"] != asked {
        body.insert("expiry_months".into(), asked);
    }
    if body.is_empty() {
        return see_other(&format!("{back}?done=program_unchanged"));
    }
    let answer = console
        .call(
            &visit,
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(Value::Object(body)),
        )
        .await;
    if answer.ok() {
        see_other(&format!("{back}?done=program_updated"))
    } else {
        refused(frame, &answer, &back)
    }
}

async fn create_program(State(console): State<Console>, Posted { visit, frame, fields }: Posted) -> Response {
    let body = json!({
        "name": field(&fields, "name"),
        "currency": field(&fields, "currency").to_ascii_uppercase(),
    });
    let answer = console
        .call(&visit, Method::POST, "/v1/programs", Some(body))
        .await;
    if answer.ok() {
        see_other("/console/programs?done=program_created")
    } else {
        refused(frame, &answer, "/console/programs")
    }
}

async fn issue_card(State(console): State<Console>, Posted { visit, frame, fields }: Posted) -> Response {
    let program_id = field(&fields, "program_id");
    let program = console
        .call(
            &visit,
            Method::GET,
            &format!("/v1/programs/{}", path_segment(program_id)),
            None,
        )
        .await;
    if !program.ok() {
        return refused(frame, &program, "/console/programs");
    }
    let Some(amount) = minor_units(field(&fields, "amount"), &text(&program.json["currency"]), false) else {
        return invalid_amount(frame, "/console/programs");
    };
    let body = json!({"program_id": program_id, "kind": "virtual", "amount": amount});
    let answer = console.call(&visit, Method::POST, "/v1/cards", Some(body)).await;
    if answer.ok() {
        see_other(&format!(
            "/console/cards/{}?done=card_issued",
            path_segment(&text(&answer.json["id"]))
        ))
    } else {
        refused(frame, &answer, "/console/programs")
    }
}

fn invalid_amount(frame: Frame, back: &str) -> Response {
    refused(
        frame,
        &Answer {
            status: StatusCode::BAD_REQUEST,
            json: json!({"error": {"message": "The amount must be a number in major units, such as 25 or 25.50, with no more decimal places than the currency has."}}),
        },
        back,
    )
}

/// An id as a path segment: only the characters ids are made of, so no id can reach another
/// route.
pub(super) fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

// ---- cards ----

#[derive(Template)]
#[template(path = "console/cards.html")]
struct Cards {
    frame: Frame,
    /// The programs, for the search's choice: id and name.
    programs: Vec<(String, String)>,
    searched: bool,
    last4: String,
    program_id: String,
    /// Whose wallet was searched, when it was a search by user.
    user_id: String,
    /// Id, last 4, program name, state, balance, issued day.
    results: Vec<(String, String, String, String, String, String)>,
}

/// Cards a search by last 4 shows at most.
const SEARCH_ROWS: u32 = 50;

async fn cards(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let wanted = path_segment(&visit.query_field("card_id"));
    if !wanted.is_empty() {
        return see_other(&format!("/console/cards/{wanted}"));
    }
    let programs = console
        .call(&visit, Method::GET, "/v1/programs?limit=100", None)
        .await;
    let programs: Vec<(String, String)> = programs
        .rows()
        .map(|p| (text(&p["id"]), text(&p["name"])))
        .collect();
    let last4: String = visit
        .query_field("last4")
        .chars()
        .filter(char::is_ascii_digit)
        .take(4)
        .collect();
    let program_id = path_segment(&visit.query_field("program_id"));
    let user_id = visit.query_field("user_id").trim().to_owned();
    let searched = !visit.query_field("last4").is_empty() || !user_id.is_empty();
    let mut results = Vec::new();
    if searched {
        let path = if user_id.is_empty() {
            let mut path = format!("/v1/cards?limit={SEARCH_ROWS}&last4={last4}");
            if !program_id.is_empty() {
                path.push_str(&format!("&program_id={program_id}"));
            }
            path
        } else {
            // A user id is the wallet API's: any text, so it travels percent-encoded.
            let user = percent_encoding::utf8_percent_encode(&user_id, percent_encoding::NON_ALPHANUMERIC);
            format!("/v1/users/{user}/cards")
        };
        let answer = console.call(&visit, Method::GET, &path, None).await;
        if !answer.ok() {
            return refused(frame, &answer, "/console/cards");
        }
        results = answer
            .rows()
            .map(|c| {
                let program = text(&c["program_id"]);
                let name = programs
                    .iter()
                    .find(|(id, _)| *id == program)
                    .map_or(program.clone(), |(_, name)| name.clone());
                (
                    text(&c["id"]),
                    text(&c["last4"]),
                    name,
                    text(&c["state"]),
                    money_value(&c["balance"], &text(&c["currency"])),
                    day(&c["created_at"]).chars().take(10).collect(),
                )
            })
            .collect();
    }
    render(&Cards {
        frame,
        programs,
        searched,
        last4,
        program_id,
        user_id,
        results,
    })
}

async fn lookup_card(State(console): State<Console>, Posted { visit, frame, fields }: Posted) -> Response {
    let body = json!({
        "number": field(&fields, "number").replace([' ', '-'], ""),
        "security_code": field(&fields, "security_code"),
    });
    let answer = console
        .call(&visit, Method::POST, "/v1/cards/lookup", Some(body))
        .await;
    if answer.ok() {
        see_other(&format!(
            "/console/cards/{}",
            path_segment(&text(&answer.json["id"]))
        ))
    } else {
        refused(frame, &answer, "/console/cards")
    }
}

pub(super) struct CardView {
    id: String,
    last4: String,
    balance: String,
    available: String,
    /// Reserved by pending holds.
    held: String,
    state: String,
    kind: String,
    currency: String,
    expires: String,
}

pub(super) struct HistoryRow {
    at: String,
    kind: String,
    amount: String,
    balance_after: String,
}

pub(super) struct AdjustmentRow {
    id: String,
    card_id: String,
    amount: String,
    reason: String,
    note: String,
    requested_at: String,
}

#[derive(Template)]
#[template(path = "console/card.html")]
struct CardPage {
    frame: Frame,
    card: CardView,
    history: Vec<HistoryRow>,
    /// The query of the history's next (older) page, if any.
    older: Option<String>,
    /// Whether the history shown is a later page (the newest is one link away).
    paged: bool,
    pending: Vec<AdjustmentRow>,
    links: Vec<LinkRow>,
    /// The address of a cardholder link just made: shown this once.
    new_link: Option<String>,
}

pub(super) struct LinkRow {
    id: String,
    created_at: String,
    shows_code: bool,
    revoked_at: Option<String>,
}

async fn card(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedIn { visit, frame }: SignedIn,
) -> Response {
    card_page(&console, &visit, frame, &id, None).await
}

async fn card_page(
    console: &Console,
    visit: &Visit,
    frame: Frame,
    id: &str,
    new_link: Option<String>,
) -> Response {
    let id = path_segment(id);
    let card = console
        .call(visit, Method::GET, &format!("/v1/cards/{id}"), None)
        .await;
    if !card.ok() {
        return refused(frame, &card, "/console/cards");
    }
    let c = &card.json;
    let currency = text(&c["currency"]);
    let cursor = path_segment(&visit.query_field("cursor"));
    let mut path = format!("/v1/cards/{id}/transactions?limit={HISTORY_ROWS}");
    if !cursor.is_empty() {
        path.push_str(&format!("&cursor={cursor}"));
    }
    let history = console.call(visit, Method::GET, &path, None).await;
    let older = history.json["next_cursor"]
        .as_str()
        .map(|next| format!("cursor={}", path_segment(next)));
    let history = history
        .rows()
        .map(|t| HistoryRow {
            at: day(&t["created_at"]),
            kind: text(&t["type"]),
            amount: money_value(&t["amount"], &currency),
            balance_after: money_value(&t["balance_after"], &currency),
        })
        .collect();
    let pending = console
        .call(
            visit,
            Method::GET,
            &format!("/v1/adjustments?state=pending&card_id={id}&limit=100"),
            None,
        )
        .await;
    let pending = adjustment_rows(&pending, &currency);
    let links = console
        .call(
            visit,
            Method::GET,
            &format!("/v1/cards/{id}/cardholder_links"),
            None,
        )
        .await;
    let links = links
        .rows()
        .map(|l| LinkRow {
            id: text(&l["id"]),
            created_at: day(&l["created_at"]),
            shows_code: l["shows_security_code"].as_bool().unwrap_or(false),
            revoked_at: l["revoked_at"].as_str().map(|_| day(&l["revoked_at"])),
        })
        .collect();
    let view = CardView {
        id: text(&c["id"]),
        last4: text(&c["last4"]),
        balance: money_value(&c["balance"], &currency),
        available: money_value(&c["available"], &currency),
        held: money_value(&c["held"], &currency),
        state: text(&c["state"]),
        kind: text(&c["kind"]),
        expires: if c["expires_at"].is_null() {
            "never".to_owned()
        } else {
            day(&c["expires_at"])
        },
        currency,
    };
    render(&CardPage {
        frame,
        card: view,
        history,
        older,
        paged: !cursor.is_empty(),
        pending,
        links,
        new_link,
    })
}

fn adjustment_rows(answer: &Answer, currency: &str) -> Vec<AdjustmentRow> {
    answer
        .rows()
        .map(|a| AdjustmentRow {
            id: text(&a["id"]),
            card_id: text(&a["card_id"]),
            amount: money_value(&a["amount"], currency),
            reason: text(&a["reason"]),
            note: text(&a["note"]),
            requested_at: day(&a["requested_at"]),
        })
        .collect()
}

async fn card_action(
    State(console): State<Console>,
    Path((id, verb)): Path<(String, String)>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let id = path_segment(&id);
    let back = format!("/console/cards/{id}");
    let answer = match verb.as_str() {
        "freeze" | "unfreeze" => {
            console
                .call(
                    &visit,
                    Method::POST,
                    &format!("/v1/cards/{id}/{verb}"),
                    Some(json!({})),
                )
                .await
        }
        "adjustments" => {
            let card = console
                .call(&visit, Method::GET, &format!("/v1/cards/{id}"), None)
                .await;
            if !card.ok() {
                return refused(frame, &card, &back);
            }
            let Some(amount) = minor_units(field(&fields, "amount"), &text(&card.json["currency"]), true)
            else {
                return invalid_amount(frame, &back);
            };
            let note = field(&fields, "note");
            let mut body = json!({"amount": amount, "reason": field(&fields, "reason")});
            if !note.is_empty() {
                body["note"] = json!(note);
            }
            console
                .call(
                    &visit,
                    Method::POST,
                    &format!("/v1/cards/{id}/adjustments"),
                    Some(body),
                )
                .await
        }
        "links" => {
            let answer = console
                .call(
                    &visit,
                    Method::POST,
                    &format!("/v1/cards/{id}/cardholder_links"),
                    Some(json!({})),
                )
                .await;
            if !answer.ok() {
                return refused(frame, &answer, &back);
            }
            // Rendered, not redirected to: the address is shown this once.
            let url = answer.json["url"].as_str().map(str::to_owned);
            return card_page(&console, &visit, frame, &id, url).await;
        }
        "revoke_link" => {
            let link = path_segment(field(&fields, "link_id"));
            console
                .call(
                    &visit,
                    Method::DELETE,
                    &format!("/v1/cards/{id}/cardholder_links/{link}"),
                    None,
                )
                .await
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if !answer.ok() {
        return refused(frame, &answer, &back);
    }
    let done = match verb.as_str() {
        "revoke_link" => "link_revoked",
        "freeze" => "frozen",
        "unfreeze" => "unfrozen",
        _ if answer.status == StatusCode::ACCEPTED => "adjustment_pending",
        _ => "adjusted",
    };
    see_other(&format!("{back}?done={done}"))
}

// ---- approvals ----

#[derive(Template)]
#[template(path = "console/adjustments.html")]
struct Adjustments {
    frame: Frame,
    pending: Vec<AdjustmentRow>,
}

async fn adjustments(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let answer = console
        .call(
            &visit,
            Method::GET,
            "/v1/adjustments?state=pending&limit=100",
            None,
        )
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    // Each row in its card's currency.
    let mut pending = Vec::new();
    for a in answer.rows() {
        let card_id = path_segment(&text(&a["card_id"]));
        let card = console
            .call(&visit, Method::GET, &format!("/v1/cards/{card_id}"), None)
            .await;
        let currency = text(&card.json["currency"]);
        let one = Answer {
            status: StatusCode::OK,
            json: json!({"data": [a]}),
        };
        pending.extend(adjustment_rows(&one, &currency));
    }
    render(&Adjustments { frame, pending })
}

async fn decide(
    State(console): State<Console>,
    Path((id, decision)): Path<(String, String)>,
    Posted { visit, frame, .. }: Posted,
) -> Response {
    if !matches!(decision.as_str(), "approve" | "reject") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let id = path_segment(&id);
    let answer = console
        .call(
            &visit,
            Method::POST,
            &format!("/v1/adjustments/{id}/{decision}"),
            Some(json!({})),
        )
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/adjustments");
    }
    let done = if decision == "approve" {
        "approved"
    } else {
        "rejected"
    };
    see_other(&format!("/console/adjustments?done={done}"))
}

// ---- reports ----

#[derive(Template)]
#[template(path = "console/liability.html")]
struct Liability {
    frame: Frame,
    as_of: String,
    lines: Vec<(String, i64, String)>,
    totals: Vec<String>,
    /// Liability at each month's end for a year, in the first currency.
    chart: Option<Chart>,
}

/// The `as_of` of a report's query, when it is a plain date (the API checks it is a real one).
fn as_of(console: &Console, visit: &Visit) -> String {
    Some(visit.query_field("as_of").trim().to_owned())
        .filter(|value| value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .unwrap_or_else(|| console.today().to_string())
}

async fn liability_answer(console: &Console, visit: &Visit, as_of: &str) -> Answer {
    console
        .call(
            visit,
            Method::GET,
            &format!("/v1/reports/liability?as_of={as_of}"),
            None,
        )
        .await
}

async fn liability(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let as_of = as_of(&console, &visit);
    let answer = liability_answer(&console, &visit, &as_of).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let lines = answer
        .rows()
        .map(|l| {
            (
                text(&l["program_id"]),
                l["cards"].as_i64().unwrap_or_default(),
                money_value(&l["liability"], &text(&l["currency"])),
            )
        })
        .collect();
    let totals = answer.json["totals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| money_value(&t["liability"], &text(&t["currency"])))
        .collect();
    let currency = answer.json["totals"][0]["currency"].as_str().map(str::to_owned);
    let chart = match currency {
        Some(currency) => liability_chart(&console, &visit, &as_of, &currency).await,
        None => None,
    };
    render(&Liability {
        frame,
        as_of,
        lines,
        totals,
        chart,
    })
}

/// Months the liability chart goes back: a year of month-ends.
const LIABILITY_MONTHS: usize = 12;
/// Width of a month's bar and the gap after it, in the chart's units.
const MONTH_BAR: usize = 24;
const MONTH_GAP: usize = 8;

/// The last day of each of the [`LIABILITY_MONTHS`] months up to `as_of`'s, oldest first, the
/// last being `as_of` itself.
fn month_ends(as_of: &str) -> Vec<String> {
    let Some(day) = giftd_domain::Date::parse(as_of) else {
        return Vec::new();
    };
    let mut ends = vec![day.to_string()];
    // The first of `as_of`'s month, then back a month at a time: the day before each first is
    // the previous month's last.
    let mut first = giftd_domain::Date::parse(&format!("{}-01", &as_of[..7]));
    while ends.len() < LIABILITY_MONTHS {
        let Some(month_start) = first else { break };
        let end = giftd_domain::Date::from_days(month_start.days() - 1);
        ends.push(end.to_string());
        first = giftd_domain::Date::parse(&format!("{}-01", &end.to_string()[..7]));
    }
    ends.reverse();
    ends
}

/// Outstanding liability in `currency` at each month's end for a year up to `as_of`, as bars
/// scaled to the highest; `None` when no month has any.
async fn liability_chart(console: &Console, visit: &Visit, as_of: &str, currency: &str) -> Option<Chart> {
    let mut points: Vec<(String, i64)> = Vec::new();
    for day in month_ends(as_of) {
        let answer = liability_answer(console, visit, &day).await;
        if !answer.ok() {
            return None;
        }
        let value = answer.json["totals"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["currency"] == currency)
            .map_or(Some(0), |t| t["liability"].as_i64())?;
        points.push((day, value));
    }
    let highest = points.iter().map(|(_, v)| *v).max().unwrap_or(0);
    if highest <= 0 {
        return None;
    }
    let bars = points
        .iter()
        .enumerate()
        .map(|(index, (day, value))| {
            let height =
                i64::try_from(i128::from((*value).max(0)) * i128::from(CHART_HEIGHT) / i128::from(highest))
                    .unwrap_or(CHART_HEIGHT);
            (
                index * (MONTH_BAR + MONTH_GAP),
                110 - height,
                height,
                format!("{day}: {}", money(*value, currency)),
            )
        })
        .collect();
    let (first, last) = (points.first()?, points.last()?);
    Some(Chart {
        summary: format!(
            "{} on {}, {} on {}",
            money(first.1, currency),
            first.0,
            money(last.1, currency),
            last.0
        ),
        width: points.len() * (MONTH_BAR + MONTH_GAP),
        bar_width: MONTH_BAR,
        currency: currency.to_owned(),
        bars,
    })
}

/// The liability report as CSV, exactly the API's figures in minor units. Every cell is giftd's
/// own (ids, codes, integers), but one starting with a formula character is defused all the
/// same, as every CSV giftd writes.
async fn liability_csv(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let as_of = as_of(&console, &visit);
    let answer = liability_answer(&console, &visit, &as_of).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/reports/liability");
    }
    let mut rows = vec![vec![
        "as_of".to_owned(),
        "program_id".to_owned(),
        "currency".to_owned(),
        "cards".to_owned(),
        "liability_minor".to_owned(),
    ]];
    for l in answer.rows() {
        rows.push(vec![
            as_of.clone(),
            text(&l["program_id"]),
            text(&l["currency"]),
            text(&l["cards"]),
            text(&l["liability"]),
        ]);
    }
    csv_download(rows, &format!("liability-{as_of}.csv"))
}

#[derive(Template)]
#[template(path = "console/dormant.html")]
struct Dormant {
    frame: Frame,
    months: u32,
    as_of: String,
    cards: Vec<DormantRow>,
    /// The query of the next page, when there is one.
    next: Option<String>,
}

pub(super) struct DormantRow {
    card_id: String,
    program_id: String,
    state: String,
    balance: String,
    last_activity: String,
}

/// The `months` of the dormant report's query: 1 to 600, 12 by default.
fn dormant_months(visit: &Visit) -> u32 {
    visit
        .query_field("months")
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=MAX_DORMANT_MONTHS).contains(m))
        .unwrap_or(DEFAULT_DORMANT_MONTHS)
}

async fn dormant_page(console: &Console, visit: &Visit, months: u32, as_of: &str, cursor: &str) -> Answer {
    let mut path = format!("/v1/reports/dormant?months={months}&as_of={as_of}&limit={DORMANT_ROWS}");
    if !cursor.is_empty() {
        path.push_str(&format!("&cursor={cursor}"));
    }
    console.call(visit, Method::GET, &path, None).await
}

async fn dormant(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let months = dormant_months(&visit);
    let as_of = as_of(&console, &visit);
    let cursor = path_segment(&visit.query_field("cursor"));
    let answer = dormant_page(&console, &visit, months, &as_of, &cursor).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let cards = answer
        .rows()
        .map(|c| DormantRow {
            card_id: text(&c["card_id"]),
            program_id: text(&c["program_id"]),
            state: text(&c["state"]),
            balance: money_value(&c["balance"], &text(&c["currency"])),
            last_activity: day(&c["last_activity_at"]),
        })
        .collect();
    let next = answer.json["next_cursor"]
        .as_str()
        .map(|cursor| format!("months={months}&as_of={as_of}&cursor={}", path_segment(cursor)));
    render(&Dormant {
        frame,
        months,
        as_of,
        cards,
        next,
    })
}

/// The whole dormant report as CSV (at most [`MAX_DORMANT_CSV_ROWS`] cards, read a page at a
/// time), the API's figures in minor units.
async fn dormant_csv(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let months = dormant_months(&visit);
    let as_of = as_of(&console, &visit);
    let mut rows = vec![
        [
            "as_of",
            "months",
            "card_id",
            "program_id",
            "currency",
            "state",
            "balance_minor",
            "last_activity_at",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut cursor = String::new();
    while rows.len() <= MAX_DORMANT_CSV_ROWS {
        let answer = dormant_page(&console, &visit, months, &as_of, &cursor).await;
        if !answer.ok() {
            return refused(frame, &answer, "/console/reports/dormant");
        }
        for c in answer.rows() {
            rows.push(vec![
                as_of.clone(),
                months.to_string(),
                text(&c["card_id"]),
                text(&c["program_id"]),
                text(&c["currency"]),
                text(&c["state"]),
                text(&c["balance"]),
                text(&c["last_activity_at"]),
            ]);
        }
        match answer.json["next_cursor"].as_str() {
            Some(next) => cursor = path_segment(next),
            None => break,
        }
    }
    csv_download(rows, &format!("dormant-{months}m-{as_of}.csv"))
}

/// Rows as a CSV download named `name`, every cell defused.
fn csv_download(rows: Vec<Vec<String>>, name: &str) -> Response {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        let row: Vec<String> = row.into_iter().map(defused).collect();
        if writer.write_record(&row).is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let body = writer.into_inner().unwrap_or_default();
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A report's date range from the query (`from`, `to`, plain dates; the API checks the rest),
/// by default the last 30 days.
fn date_range(console: &Console, visit: &Visit) -> (String, String) {
    let date = |name: &str| {
        Some(visit.query_field(name))
            .filter(|value| value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
    };
    let today = console.today();
    (
        date("from").unwrap_or_else(|| giftd_domain::Date::from_days(today.days() - 29).to_string()),
        date("to").unwrap_or_else(|| today.to_string()),
    )
}

async fn activity_answer(console: &Console, visit: &Visit, from: &str, to: &str) -> Answer {
    console
        .call(
            visit,
            Method::GET,
            &format!("/v1/reports/activity?from={from}&to={to}"),
            None,
        )
        .await
}

/// Bars of a day chart, as the template draws them: x, y, height, and the day's label.
pub(super) struct Chart {
    currency: String,
    summary: String,
    width: usize,
    bar_width: usize,
    bars: Vec<(usize, i64, i64, String)>,
}

/// Width of a day's bar and the gap after it, in the chart's units.
const BAR: usize = 8;
const GAP: usize = 2;
/// Height of the tallest bar.
const CHART_HEIGHT: i64 = 100;

/// Whether a transaction type takes value off a card for a sale: a redemption, or the capture
/// of a hold.
fn redeemed(line: &Value) -> bool {
    line["type"] == "redemption" || line["type"] == "capture"
}

/// The value redeemed each day (redemptions and captures) in the first currency that has any,
/// as bars scaled to the tallest day; `None` without a redemption.
fn redemption_chart(lines: &[Value], from: &str, to: &str) -> Option<Chart> {
    let first = giftd_domain::Date::parse(from)?.days();
    let span = usize::try_from(giftd_domain::Date::parse(to)?.days() - first + 1).ok()?;
    let currency = lines.iter().find(|l| redeemed(l)).map(|l| text(&l["currency"]))?;
    let mut days: Vec<(String, i64)> = Vec::new();
    for l in lines
        .iter()
        .filter(|l| redeemed(l) && text(&l["currency"]) == currency)
    {
        let day = text(&l["date"]);
        let amount = l["amount"].as_i64().unwrap_or(i64::MAX).saturating_abs();
        match days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, sum)) => *sum = sum.saturating_add(amount),
            None => days.push((day, amount)),
        }
    }
    let tallest = days.iter().map(|(_, amount)| *amount).max().unwrap_or(1).max(1);
    let total = days
        .iter()
        .fold(0i64, |sum, (_, amount)| sum.saturating_add(*amount));
    // Each day at its place in the range, so that quiet days show as gaps.
    let bars = days
        .iter()
        .filter_map(|(day, amount)| {
            let index = usize::try_from(giftd_domain::Date::parse(day)?.days() - first).ok()?;
            let height = i64::try_from(i128::from(*amount) * i128::from(CHART_HEIGHT) / i128::from(tallest))
                .unwrap_or(CHART_HEIGHT)
                .max(1);
            Some((
                index * (BAR + GAP),
                110 - height,
                height,
                format!("{day}: {}", money(*amount, &currency)),
            ))
        })
        .collect::<Vec<_>>();
    Some(Chart {
        summary: format!(
            "{} over {} day(s) with redemptions",
            money(total, &currency),
            days.len()
        ),
        width: span * (BAR + GAP),
        bar_width: BAR,
        currency,
        bars,
    })
}

#[derive(Template)]
#[template(path = "console/activity.html")]
struct Activity {
    frame: Frame,
    from: String,
    to: String,
    chart: Option<Chart>,
    lines: Vec<(String, String, String, i64, String)>,
}

async fn activity(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let (from, to) = date_range(&console, &visit);
    let answer = activity_answer(&console, &visit, &from, &to).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/reports/activity");
    }
    let data = answer.json["data"].as_array().cloned().unwrap_or_default();
    let lines = data
        .iter()
        .map(|l| {
            (
                text(&l["date"]),
                text(&l["program_id"]),
                text(&l["type"]),
                l["count"].as_i64().unwrap_or_default(),
                money_value(&l["amount"], &text(&l["currency"])),
            )
        })
        .collect();
    render(&Activity {
        frame,
        chart: redemption_chart(&data, &from, &to),
        from,
        to,
        lines,
    })
}

#[derive(Template)]
#[template(path = "console/breakage.html")]
struct Breakage {
    frame: Frame,
    from: String,
    to: String,
    /// Program, currency, cards expired, value moved to breakage.
    lines: Vec<(String, String, i64, String)>,
    totals: Vec<String>,
}

/// The activity report's `expiry` lines summed per program and currency: how much value left
/// on expired cards moved to each program's breakage account in the range, and how many cards.
fn breakage_lines(answer: &Answer) -> Vec<(String, String, i64, i128)> {
    let mut sums: Vec<(String, String, i64, i128)> = Vec::new();
    for l in answer.rows().filter(|l| l["type"] == "expiry") {
        let (program, currency) = (text(&l["program_id"]), text(&l["currency"]));
        let count = l["count"].as_i64().unwrap_or_default();
        let amount = l["amount"].as_i64().map_or(0, i128::from);
        match sums.iter_mut().find(|s| s.0 == program && s.1 == currency) {
            Some(sum) => {
                sum.2 += count;
                sum.3 += amount;
            }
            None => sums.push((program, currency, count, amount)),
        }
    }
    sums
}

/// Minor units summed past 64 bits, shown as money while they fit.
fn wide_money(amount: i128, currency: &str) -> String {
    i64::try_from(amount).map_or_else(
        |_| format!("{amount} (minor units) {currency}"),
        |a| money(a, currency),
    )
}

async fn breakage(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let (from, to) = date_range(&console, &visit);
    let answer = activity_answer(&console, &visit, &from, &to).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/reports/breakage");
    }
    let sums = breakage_lines(&answer);
    let mut totals: Vec<(String, i128)> = Vec::new();
    for (_, currency, _, amount) in &sums {
        match totals.iter_mut().find(|(c, _)| c == currency) {
            Some(total) => total.1 += amount,
            None => totals.push((currency.clone(), *amount)),
        }
    }
    render(&Breakage {
        frame,
        from,
        to,
        lines: sums
            .iter()
            .map(|(program, currency, count, amount)| {
                (
                    program.clone(),
                    currency.clone(),
                    *count,
                    wide_money(*amount, currency),
                )
            })
            .collect(),
        totals: totals
            .iter()
            .map(|(currency, amount)| wide_money(*amount, currency))
            .collect(),
    })
}

/// The breakage report as CSV, in minor units.
async fn breakage_csv(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let (from, to) = date_range(&console, &visit);
    let answer = activity_answer(&console, &visit, &from, &to).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/reports/breakage");
    }
    let mut rows = vec![
        ["from", "to", "program_id", "currency", "cards", "breakage_minor"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (program, currency, count, amount) in breakage_lines(&answer) {
        rows.push(vec![
            from.clone(),
            to.clone(),
            program,
            currency,
            count.to_string(),
            amount.to_string(),
        ]);
    }
    csv_download(rows, &format!("breakage-{from}-{to}.csv"))
}

async fn activity_csv(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let (from, to) = date_range(&console, &visit);
    let answer = activity_answer(&console, &visit, &from, &to).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/reports/activity");
    }
    let mut rows = vec![
        ["date", "program_id", "currency", "type", "count", "amount_minor"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for l in answer.rows() {
        rows.push(
            ["date", "program_id", "currency", "type", "count", "amount"]
                .map(|name| text(&l[name]))
                .to_vec(),
        );
    }
    csv_download(rows, &format!("activity-{from}-{to}.csv"))
}

/// A cell a spreadsheet would take for a formula, quoted as text (`'=...`). A negative number
/// is left as it is: it is a number, not a formula.
fn defused(cell: String) -> String {
    let number = cell.parse::<i128>().is_ok();
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0') if !number => format!("'{cell}"),
        _ => cell,
    }
}

// ---- checkouts ----

pub(super) struct CheckoutView {
    id: String,
    amount: String,
    currency: String,
    status: String,
    review: String,
    reference: String,
    refundable: String,
    created: String,
    can_refund: bool,
    /// Kind, card id (empty for the payment card), amount, refunded, status.
    tenders: Vec<(String, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/checkouts.html")]
struct Checkouts {
    frame: Frame,
    checkout_id: String,
    checkout: Option<CheckoutView>,
    /// The newest checkouts, when none is opened: id, created, amount, status, refundable.
    recent: Vec<(String, String, String, String, String)>,
    /// The query of the next page of them.
    next: Option<String>,
}

/// Checkouts the list shows on one page.
const CHECKOUT_ROWS: u32 = 25;

async fn checkouts(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let checkout_id = path_segment(&visit.query_field("checkout_id"));
    if checkout_id.is_empty() {
        let cursor = path_segment(&visit.query_field("cursor"));
        let mut path = format!("/v1/checkouts?limit={CHECKOUT_ROWS}");
        if !cursor.is_empty() {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let answer = console.call(&visit, Method::GET, &path, None).await;
        if !answer.ok() {
            return refused(frame, &answer, "/console");
        }
        let recent = answer
            .rows()
            .map(|c| {
                let currency = text(&c["currency"]);
                (
                    path_segment(&text(&c["id"])),
                    day(&c["created_at"]),
                    money_value(&c["amount"], &currency),
                    text(&c["status"]),
                    money_value(&c["refundable_amount"], &currency),
                )
            })
            .collect();
        let next = answer.json["next_cursor"]
            .as_str()
            .map(|cursor| format!("cursor={}", path_segment(cursor)));
        return render(&Checkouts {
            frame,
            checkout_id,
            checkout: None,
            recent,
            next,
        });
    }
    let answer = console
        .call(&visit, Method::GET, &format!("/v1/checkouts/{checkout_id}"), None)
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/checkouts");
    }
    let c = &answer.json;
    let currency = text(&c["currency"]);
    let refundable = c["refundable_amount"].as_i64().unwrap_or_default();
    let view = CheckoutView {
        id: path_segment(&text(&c["id"])),
        amount: money_value(&c["amount"], &currency),
        status: text(&c["status"]),
        review: text(&c["review"]),
        reference: text(&c["reference"]),
        refundable: money(refundable, &currency),
        created: day(&c["created_at"]),
        can_refund: refundable > 0,
        tenders: c["tenders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    text(&t["type"]),
                    path_segment(&text(&t["card_id"])),
                    money_value(&t["amount"], &currency),
                    money_value(&t["refunded_amount"], &currency),
                    text(&t["status"]),
                )
            })
            .collect(),
        currency,
    };
    render(&Checkouts {
        frame,
        checkout_id,
        checkout: Some(view),
        recent: Vec::new(),
        next: None,
    })
}

async fn refund_checkout(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let id = path_segment(&id);
    let back = format!("/console/checkouts?checkout_id={id}");
    let typed = field(&fields, "amount");
    let mut body = json!({});
    if !typed.is_empty() {
        let checkout = console
            .call(&visit, Method::GET, &format!("/v1/checkouts/{id}"), None)
            .await;
        if !checkout.ok() {
            return refused(frame, &checkout, &back);
        }
        let Some(amount) = minor_units(typed, &text(&checkout.json["currency"]), false) else {
            return invalid_amount(frame, &back);
        };
        body["amount"] = json!(amount);
    }
    let answer = console
        .call(
            &visit,
            Method::POST,
            &format!("/v1/checkouts/{id}/refund"),
            Some(body),
        )
        .await;
    if answer.ok() {
        see_other(&format!("{back}&done=refunded"))
    } else {
        refused(frame, &answer, &back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_liability_chart_takes_a_year_of_month_ends_ending_on_the_day_asked() {
        let ends = month_ends("2026-03-15");
        assert_eq!(ends.len(), LIABILITY_MONTHS);
        assert_eq!(ends.first().map(String::as_str), Some("2025-04-30"));
        assert_eq!(&ends[9..], ["2026-01-31", "2026-02-28", "2026-03-15"]);
        assert!(month_ends("not a day").is_empty());
    }
}
