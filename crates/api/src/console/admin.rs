//! The console's pages for owners and developers: staff (invite with a role, the temporary
//! password shown once; change a role, disable, reset a password), API keys (made and rotated
//! with the key shown once, revoked), webhooks (endpoints made with the secret shown once and
//! disabled; events, their deliveries, a retry) and the audit trail. As every console page,
//! each is the native API's answer rendered (`/v1/staff`, `/v1/api_keys`, `/v1/webhook_endpoints`, `/v1/events`, `/v1/audit_events`), so only the
//! roles the API lets through see them.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::json;

use super::pages::{Frame, Posted, SignedIn, day, forged, path_segment, refused, render, text};
use super::{Answer, Console, Visit, field, see_other};

// ---- staff ----

/// The roles, as the API names them, in the order the page offers them.
const ROLES: [&str; 6] = ["owner", "admin", "support", "finance", "developer", "viewer"];

pub(super) struct MemberRow {
    id: String,
    email: String,
    role: String,
    status: &'static str,
    disabled: bool,
    last_sign_in: String,
}

#[derive(Template)]
#[template(path = "console/staff.html")]
struct Staff {
    frame: Frame,
    members: Vec<MemberRow>,
    roles: [&'static str; 6],
    /// A temporary password just made: whose, and the password, shown this once.
    temporary: Option<(String, String)>,
}

/// The staff page, with a temporary password to show once if one was just made.
async fn staff_page(
    console: &Console,
    visit: &Visit,
    frame: Frame,
    temporary: Option<(String, String)>,
) -> Response {
    let answer = console.call(visit, Method::GET, "/v1/staff", None).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let members = answer
        .rows()
        .map(|m| {
            let disabled = !m["disabled_at"].is_null();
            MemberRow {
                id: path_segment(&text(&m["id"])),
                email: text(&m["email"]),
                role: text(&m["role"]),
                status: if disabled {
                    "disabled"
                } else if !m["locked_until"].is_null() {
                    "locked (failed sign-ins)"
                } else if m["password_change_required"] == true {
                    "invited: must choose a password"
                } else {
                    "active"
                },
                disabled,
                last_sign_in: if m["last_sign_in_at"].is_null() {
                    "never".to_owned()
                } else {
                    day(&m["last_sign_in_at"])
                },
            }
        })
        .collect();
    render(&Staff {
        frame,
        members,
        roles: ROLES,
        temporary,
    })
}

pub(super) async fn staff(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    staff_page(&console, &visit, frame, None).await
}

/// The temporary password of an answer that made one, with whose it is.
fn temporary_password(answer: &Answer) -> Option<(String, String)> {
    answer.json["temporary_password"]
        .as_str()
        .map(|password| (text(&answer.json["email"]), password.to_owned()))
}

pub(super) async fn invite(
    State(console): State<Console>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let body = json!({"email": field(&fields, "email"), "role": field(&fields, "role")});
    let answer = console.call(&visit, Method::POST, "/v1/staff", Some(body)).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/staff");
    }
    // Rendered, not redirected to: the password is shown this once and kept nowhere.
    staff_page(&console, &visit, frame, temporary_password(&answer)).await
}

pub(super) async fn change_staff(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let change = field(&fields, "change");
    let body = match change {
        "role" => json!({"role": field(&fields, "role")}),
        "disable" => json!({"disabled": true}),
        "enable" => json!({"disabled": false}),
        "reset_password" => json!({"reset_password": true}),
        _ => return forged(),
    };
    let id = path_segment(&id);
    let answer = console
        .call(&visit, Method::PATCH, &format!("/v1/staff/{id}"), Some(body))
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/staff");
    }
    match change {
        "reset_password" => staff_page(&console, &visit, frame, temporary_password(&answer)).await,
        "role" => see_other("/console/staff?done=role_changed"),
        "disable" => see_other("/console/staff?done=disabled"),
        _ => see_other("/console/staff?done=enabled"),
    }
}

// ---- the audit trail ----

/// The outcomes the audit trail records, for its filter.
const OUTCOMES: [&str; 4] = ["succeeded", "refused", "failed", "replayed"];

pub(super) struct EventRow {
    at: String,
    actor: String,
    address: String,
    request: String,
    operation: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct Audit {
    frame: Frame,
    outcomes: [&'static str; 4],
    outcome: String,
    object_id: String,
    events: Vec<EventRow>,
}

pub(super) async fn audit(State(console): State<Console>, SignedIn { visit, frame }: SignedIn) -> Response {
    let outcome = visit.query_field("outcome");
    let outcome = if OUTCOMES.contains(&outcome.as_str()) {
        outcome
    } else {
        String::new()
    };
    let object_id = path_segment(&visit.query_field("object_id"));
    let mut path = "/v1/audit_events?limit=100".to_owned();
    if !outcome.is_empty() {
        path.push_str(&format!("&outcome={outcome}"));
    }
    if !object_id.is_empty() {
        path.push_str(&format!("&object_id={object_id}"));
    }
    let answer = console.call(&visit, Method::GET, &path, None).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let events = answer
        .rows()
        .map(|e| EventRow {
            at: text(&e["occurred_at"])
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_owned(),
            actor: match e["actor"]["id"].as_str() {
                Some(id) => format!("{} {id}", text(&e["actor"]["type"])),
                None => text(&e["actor"]["type"]),
            },
            address: text(&e["client_address"]),
            request: format!("{} {}", text(&e["method"]), text(&e["path"])),
            operation: text(&e["operation"]),
            outcome: format!("{} ({})", text(&e["outcome"]), text(&e["status"])),
        })
        .collect();
    render(&Audit {
        frame,
        outcomes: OUTCOMES,
        outcome,
        object_id,
        events,
    })
}

// ---- API keys ----

pub(super) struct KeyRow {
    id: String,
    name: String,
    scope: String,
    prefix: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/api_keys.html")]
struct ApiKeys {
    frame: Frame,
    keys: Vec<KeyRow>,
    /// A key just made: its name and the key, shown this once.
    new_key: Option<(String, String)>,
}

async fn api_keys_page(
    console: &Console,
    visit: &Visit,
    frame: Frame,
    new_key: Option<(String, String)>,
) -> Response {
    let answer = console.call(visit, Method::GET, "/v1/api_keys", None).await;
    if !answer.ok() {
        return refused(frame, &answer, "/console");
    }
    let now = crate::edge::rfc3339(console.service.now());
    let keys = answer
        .rows()
        .map(|k| {
            let expires = text(&k["expires_at"]);
            KeyRow {
                id: path_segment(&text(&k["id"])),
                name: text(&k["name"]),
                scope: text(&k["scope"]),
                prefix: text(&k["prefix"]),
                created: day(&k["created_at"]),
                expires: if expires.is_empty() {
                    "never".to_owned()
                } else {
                    day(&k["expires_at"])
                },
                last_used: if k["last_used_at"].is_null() {
                    "never".to_owned()
                } else {
                    day(&k["last_used_at"])
                },
                // RFC 3339 instants in UTC with milliseconds compare as text.
                state: if !k["revoked_at"].is_null() {
                    "revoked"
                } else if !expires.is_empty() && expires <= now {
                    "expired"
                } else {
                    "working"
                },
            }
        })
        .collect();
    render(&ApiKeys { frame, keys, new_key })
}

pub(super) async fn api_keys(
    State(console): State<Console>,
    SignedIn { visit, frame }: SignedIn,
) -> Response {
    api_keys_page(&console, &visit, frame, None).await
}

/// The key of an answer that made one, with its name.
fn new_key(answer: &Answer) -> Option<(String, String)> {
    answer.json["key"]
        .as_str()
        .map(|key| (text(&answer.json["name"]), key.to_owned()))
}

pub(super) async fn create_api_key(
    State(console): State<Console>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let body = json!({"name": field(&fields, "name"), "scope": field(&fields, "scope")});
    let answer = console
        .call(&visit, Method::POST, "/v1/api_keys", Some(body))
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/api_keys");
    }
    // Rendered, not redirected to: the key is shown this once and kept nowhere.
    api_keys_page(&console, &visit, frame, new_key(&answer)).await
}

pub(super) async fn change_api_key(
    State(console): State<Console>,
    Path((id, verb)): Path<(String, String)>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let id = path_segment(&id);
    let body = match verb.as_str() {
        "rotate" => match field(&fields, "grace_seconds").parse::<u32>() {
            Ok(grace) => json!({"grace_seconds": grace}),
            Err(_) => return forged(),
        },
        "revoke" => json!({}),
        _ => return forged(),
    };
    let answer = console
        .call(
            &visit,
            Method::POST,
            &format!("/v1/api_keys/{id}/{verb}"),
            Some(body),
        )
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/api_keys");
    }
    if verb == "rotate" {
        api_keys_page(&console, &visit, frame, new_key(&answer)).await
    } else {
        see_other("/console/api_keys?done=key_revoked")
    }
}

// ---- webhooks ----

pub(super) struct EndpointRow {
    id: String,
    url: String,
    events: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct Webhooks {
    frame: Frame,
    endpoints: Vec<EndpointRow>,
    event_types: Vec<&'static str>,
    /// Time, type and id of the latest events.
    events: Vec<(String, String, String)>,
    /// An endpoint just made: its URL and signing secret, shown this once.
    new_secret: Option<(String, String)>,
}

/// Events the webhooks page lists.
const EVENT_ROWS: u32 = 20;

async fn webhooks_page(
    console: &Console,
    visit: &Visit,
    frame: Frame,
    new_secret: Option<(String, String)>,
) -> Response {
    let endpoints = console
        .call(visit, Method::GET, "/v1/webhook_endpoints?limit=100", None)
        .await;
    if !endpoints.ok() {
        return refused(frame, &endpoints, "/console");
    }
    let events = console
        .call(
            visit,
            Method::GET,
            &format!("/v1/events?limit={EVENT_ROWS}"),
            None,
        )
        .await;
    let endpoints = endpoints
        .rows()
        .map(|e| EndpointRow {
            id: path_segment(&text(&e["id"])),
            url: text(&e["url"]),
            events: e["event_types"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect::<Vec<_>>()
                .join(", "),
            enabled: e["enabled"] == true,
        })
        .collect();
    let events = events
        .rows()
        .map(|e| {
            (
                day(&e["created_at"]),
                text(&e["type"]),
                path_segment(&text(&e["id"])),
            )
        })
        .collect();
    render(&Webhooks {
        frame,
        endpoints,
        event_types: giftd_service::webhooks::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect(),
        events,
        new_secret,
    })
}

pub(super) async fn webhooks(
    State(console): State<Console>,
    SignedIn { visit, frame }: SignedIn,
) -> Response {
    webhooks_page(&console, &visit, frame, None).await
}

pub(super) async fn create_endpoint(
    State(console): State<Console>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let event_types: Vec<&str> = fields
        .iter()
        .filter(|(name, _)| name == "event_types")
        .map(|(_, value)| value.as_str())
        .collect();
    let mut body = json!({"url": field(&fields, "url"), "event_types": event_types});
    let threshold = field(&fields, "low_balance_threshold");
    if !threshold.is_empty() {
        // A number, or the text as typed for the API to name what is wrong with it.
        body["low_balance_threshold"] = threshold
            .parse::<i64>()
            .map_or_else(|_| json!(threshold), |n| json!(n));
    }
    let answer = console
        .call(&visit, Method::POST, "/v1/webhook_endpoints", Some(body))
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/webhooks");
    }
    let secret = answer.json["secret"]
        .as_str()
        .map(|secret| (text(&answer.json["url"]), secret.to_owned()));
    // Rendered, not redirected to: the secret is shown this once.
    webhooks_page(&console, &visit, frame, secret).await
}

pub(super) async fn disable_endpoint(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { visit, frame, .. }: Posted,
) -> Response {
    let id = path_segment(&id);
    let answer = console
        .call(
            &visit,
            Method::DELETE,
            &format!("/v1/webhook_endpoints/{id}"),
            None,
        )
        .await;
    if answer.ok() {
        see_other("/console/webhooks?done=endpoint_disabled")
    } else {
        refused(frame, &answer, "/console/webhooks")
    }
}

pub(super) struct DeliveryRow {
    id: String,
    endpoint: String,
    state: String,
    attempts: i64,
    last: String,
    next: String,
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct EventPage {
    frame: Frame,
    id: String,
    event_type: String,
    at: String,
    deliveries: Vec<DeliveryRow>,
}

pub(super) async fn event(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedIn { visit, frame }: SignedIn,
) -> Response {
    let id = path_segment(&id);
    let answer = console
        .call(&visit, Method::GET, &format!("/v1/events/{id}"), None)
        .await;
    if !answer.ok() {
        return refused(frame, &answer, "/console/webhooks");
    }
    let deliveries = answer.json["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| DeliveryRow {
            id: path_segment(&text(&d["id"])),
            endpoint: text(&d["endpoint_id"]),
            state: text(&d["state"]),
            attempts: d["attempts"].as_i64().unwrap_or_default(),
            last: match (d["last_status"].as_i64(), d["last_error"].as_str()) {
                (Some(status), _) => format!("HTTP {status}"),
                (None, Some(error)) => error.to_owned(),
                (None, None) => "none yet".to_owned(),
            },
            next: if d["next_attempt_at"].is_null() {
                String::new()
            } else {
                day(&d["next_attempt_at"])
            },
        })
        .collect();
    render(&EventPage {
        frame,
        event_type: text(&answer.json["type"]),
        at: day(&answer.json["created_at"]),
        id,
        deliveries,
    })
}

pub(super) async fn retry_delivery(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { visit, frame, fields }: Posted,
) -> Response {
    let id = path_segment(&id);
    let event = path_segment(field(&fields, "event_id"));
    let back = format!("/console/webhooks/events/{event}");
    let answer = console
        .call(
            &visit,
            Method::POST,
            &format!("/v1/webhook_deliveries/{id}/retry"),
            Some(json!({})),
        )
        .await;
    if answer.ok() {
        see_other(&format!("{back}?done=retried"))
    } else {
        refused(frame, &answer, &back)
    }
}
