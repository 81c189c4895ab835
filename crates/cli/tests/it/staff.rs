//! Staff accounts (docs/STAFF.md): invited with a temporary password that must be changed,
//! signed in to sessions that end (sign-out, idle time, lifetime, a change to the account),
//! locked after wrong passwords, with an optional TOTP second factor whose codes count once;
//! owners manage staff and the last owner stays; and every role against every route of the
//! OpenAPI document, beside every API key scope.

use std::collections::BTreeSet;

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const ROLES: [&str; 6] = ["owner", "admin", "support", "finance", "developer", "viewer"];
const SCOPES: [&str; 3] = ["full", "pos", "read_only"];
const NEW_PASSWORD: &str = "a long enough passphrase";

/// Invites a staff member with the merchant's key; their account with its temporary password.
async fn invite(app: &TestApp, email: &str, role: &str) -> Value {
    let created = app.post("/v1/staff", json!({"email": email, "role": role})).await;
    created.assert_status(201);
    created.body
}

async fn sign_in(app: &TestApp, body: Value) -> TestResponse {
    app.send(app.client.post(app.url("/v1/sessions")).json(&body))
        .await
}

async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> TestResponse {
    app.post_as(path, body, token, None).await
}

/// A signed-in session of a new staff member of `role` whose password is [`NEW_PASSWORD`]:
/// its token.
async fn staff_session(app: &TestApp, email: &str, role: &str) -> String {
    let invited = invite(app, email, role).await;
    let first = sign_in(
        app,
        json!({"email": email, "password": invited["temporary_password"]}),
    )
    .await;
    first.assert_status(201);
    let token = first.body["token"].as_str().unwrap().to_owned();
    post_as(
        app,
        &token,
        "/v1/staff/me/password",
        json!({"current_password": invited["temporary_password"], "new_password": NEW_PASSWORD}),
    )
    .await
    .assert_status(200);
    token
}

/// The code an authenticator app shows for `secret` (base32) at the server's time.
fn totp_code(app: &TestApp, secret: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("a base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build_noncompliant();
    let seconds = u64::try_from(app.service.now().unix_millis() / 1000).unwrap();
    totp.generate(seconds).to_string()
}

#[tokio::test]
async fn an_invited_member_must_change_the_temporary_password_before_anything_else() {
    let app = TestApp::spawn().await;
    let invited = invite(&app, "Ann@Example.com", "support").await;
    assert_eq!(invited["object"], "staff");
    assert_eq!(invited["email"], "ann@example.com");
    assert_eq!(invited["password_change_required"], true);
    let temporary = invited["temporary_password"].as_str().unwrap().to_owned();
    // Never shown again.
    let read = app
        .get(&format!("/v1/staff/{}", invited["id"].as_str().unwrap()))
        .await;
    read.assert_status(200);
    assert!(read.body.get("temporary_password").is_none());

    let first = sign_in(&app, json!({"email": "ANN@example.com", "password": temporary})).await;
    first.assert_status(201);
    assert_eq!(first.body["object"], "staff_session");
    assert_eq!(first.body["staff"]["password_change_required"], true);
    let token = first.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gs_"));
    app.get_as("/v1/cards", &token)
        .await
        .assert_error(403, "password_change_required");
    app.get_as("/v1/staff/me", &token).await.assert_status(200);

    let too_short = post_as(
        &app,
        &token,
        "/v1/staff/me/password",
        json!({"current_password": temporary, "new_password": "short"}),
    )
    .await;
    too_short.assert_error(400, "invalid_request");
    let wrong_current = post_as(
        &app,
        &token,
        "/v1/staff/me/password",
        json!({"current_password": "not it at all", "new_password": NEW_PASSWORD}),
    )
    .await;
    wrong_current.assert_error(401, "invalid_credentials");
    let changed = post_as(
        &app,
        &token,
        "/v1/staff/me/password",
        json!({"current_password": temporary, "new_password": NEW_PASSWORD}),
    )
    .await;
    changed.assert_status(200);
    assert_eq!(changed.body["password_change_required"], false);
    // The session that changed it goes on; the temporary password is gone.
    app.get_as("/v1/cards", &token).await.assert_status(200);
    sign_in(&app, json!({"email": "ann@example.com", "password": temporary}))
        .await
        .assert_error(401, "invalid_credentials");
    sign_in(
        &app,
        json!({"email": "ann@example.com", "password": NEW_PASSWORD}),
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn a_temporary_password_stops_working_after_seven_days_and_a_reset_gives_a_new_one() {
    let app = TestApp::spawn().await;
    let invited = invite(&app, "ivy@example.com", "viewer").await;
    let temporary = invited["temporary_password"].as_str().unwrap().to_owned();
    app.clock.advance_seconds(7 * 24 * 3600);
    sign_in(&app, json!({"email": "ivy@example.com", "password": temporary}))
        .await
        .assert_error(401, "password_expired");
    // A wrong password says nothing of the expiry.
    sign_in(
        &app,
        json!({"email": "ivy@example.com", "password": "not the password"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    let reset = app
        .send(
            app.client
                .patch(app.url(&format!("/v1/staff/{}", invited["id"].as_str().unwrap())))
                .bearer_auth(&app.api_key)
                .json(&json!({"reset_password": true})),
        )
        .await;
    reset.assert_status(200);
    sign_in(
        &app,
        json!({"email": "ivy@example.com", "password": reset.body["temporary_password"]}),
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_and_an_unknown_email_is_answered_alike() {
    let app = TestApp::spawn().await;
    let token = staff_session(&app, "bo@example.com", "viewer").await;
    let unknown = sign_in(
        &app,
        json!({"email": "nobody@example.com", "password": NEW_PASSWORD}),
    )
    .await;
    let wrong = sign_in(
        &app,
        json!({"email": "bo@example.com", "password": "wrong password"}),
    )
    .await;
    unknown.assert_error(401, "invalid_credentials");
    wrong.assert_error(401, "invalid_credentials");
    assert_eq!(unknown.text, wrong.text, "which of the two was wrong is not said");

    // Eight more at once: each is counted (none lost to another), the last making nine.
    let wrong_body = json!({"email": "bo@example.com", "password": "wrong password"});
    let at_once = futures::future::join_all((0..8).map(|_| sign_in(&app, wrong_body.clone()))).await;
    for answer in &at_once {
        answer.assert_error(401, "invalid_credentials");
    }
    // The tenth failure in 30 minutes locks the account, even for the right password.
    sign_in(&app, wrong_body.clone())
        .await
        .assert_error(429, "sign_in_locked");
    sign_in(&app, json!({"email": "bo@example.com", "password": NEW_PASSWORD}))
        .await
        .assert_error(429, "sign_in_locked");
    // A session already open is not a sign-in: it goes on.
    app.get_as("/v1/staff/me", &token).await.assert_status(200);
    let me = app.get("/v1/staff").await;
    let locked = me.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["email"] == "bo@example.com")
        .unwrap()
        .clone();
    assert!(locked["locked_until"].is_string());

    app.clock.advance_seconds(31 * 60);
    sign_in(&app, json!({"email": "bo@example.com", "password": NEW_PASSWORD}))
        .await
        .assert_status(201);
}

#[tokio::test]
async fn a_second_factor_once_on_is_asked_at_every_sign_in_and_each_code_counts_once() {
    let app = TestApp::spawn().await;
    let token = staff_session(&app, "cy@example.com", "finance").await;
    let enrolment = post_as(&app, &token, "/v1/staff/me/totp", json!({})).await;
    enrolment.assert_status(201);
    let secret = enrolment.body["secret"].as_str().unwrap().to_owned();
    let url = enrolment.body["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/giftd:cy%40example.com?"), "{url}");
    assert!(url.contains(&format!("secret={secret}")));
    // Not in use until confirmed.
    sign_in(&app, json!({"email": "cy@example.com", "password": NEW_PASSWORD}))
        .await
        .assert_status(201);
    post_as(
        &app,
        &token,
        "/v1/staff/me/totp/confirm",
        json!({"code": "000000"}),
    )
    .await
    .assert_error(400, "invalid_request");
    let confirmed = post_as(
        &app,
        &token,
        "/v1/staff/me/totp/confirm",
        json!({"code": totp_code(&app, &secret)}),
    )
    .await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["totp_enabled"], true);

    let password_only = sign_in(&app, json!({"email": "cy@example.com", "password": NEW_PASSWORD})).await;
    password_only.assert_error(401, "totp_required");
    // The code of the confirmation was used: the same step is refused.
    sign_in(
        &app,
        json!({"email": "cy@example.com", "password": NEW_PASSWORD, "totp_code": totp_code(&app, &secret)}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    app.clock.advance_seconds(30);
    let code = totp_code(&app, &secret);
    sign_in(
        &app,
        json!({"email": "cy@example.com", "password": NEW_PASSWORD, "totp_code": code}),
    )
    .await
    .assert_status(201);
    sign_in(
        &app,
        json!({"email": "cy@example.com", "password": NEW_PASSWORD, "totp_code": code}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    // A wrong password with a right code says nothing more than a wrong password.
    app.clock.advance_seconds(30);
    sign_in(
        &app,
        json!({"email": "cy@example.com", "password": "wrong password", "totp_code": totp_code(&app, &secret)}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    // Turning it on again needs an owner's reset first.
    post_as(&app, &token, "/v1/staff/me/totp", json!({}))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_session_ends_when_signed_out_idle_or_old() {
    let app = TestApp::spawn().await;
    let token = staff_session(&app, "di@example.com", "viewer").await;
    let signed_out = post_as(&app, &token, "/v1/staff/me/sign_out", json!({})).await;
    signed_out.assert_status(200);
    assert_eq!(signed_out.body["ended"], true);
    app.get_as("/v1/staff/me", &token)
        .await
        .assert_error(401, "unauthorized");

    // Idle: 15 minutes without a request.
    let idle = sign_in(&app, json!({"email": "di@example.com", "password": NEW_PASSWORD})).await;
    let idle = idle.body["token"].as_str().unwrap().to_owned();
    app.clock.advance_seconds(15 * 60);
    app.get_as("/v1/staff/me", &idle)
        .await
        .assert_error(401, "unauthorized");

    // Used every 10 minutes, a session lasts past 15, until its 8 hours are over.
    let busy = sign_in(&app, json!({"email": "di@example.com", "password": NEW_PASSWORD})).await;
    let busy = busy.body["token"].as_str().unwrap().to_owned();
    for _ in 0..47 {
        app.clock.advance_seconds(10 * 60);
        // The use is recorded off the request's path: the next request may need to wait for it.
        let mut answer = app.get_as("/v1/staff/me", &busy).await;
        for _ in 0..100 {
            if answer.status != 401 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            answer = app.get_as("/v1/staff/me", &busy).await;
        }
        answer.assert_status(200);
    }
    app.clock.advance_seconds(10 * 60);
    app.get_as("/v1/staff/me", &busy)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_member_lists_their_open_sessions_and_ends_one_left_elsewhere() {
    let app = TestApp::spawn().await;
    let here = staff_session(&app, "gus@example.com", "viewer").await;
    let elsewhere = sign_in(
        &app,
        json!({"email": "gus@example.com", "password": NEW_PASSWORD}),
    )
    .await;
    let elsewhere_id = elsewhere.body["id"].as_str().unwrap().to_owned();
    let elsewhere = elsewhere.body["token"].as_str().unwrap().to_owned();
    let listed = app.get_as("/v1/staff/me/sessions", &here).await;
    listed.assert_status(200);
    let sessions = listed.body["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(listed.text.find("gs_").is_none(), "never a token");

    let revoked = post_as(
        &app,
        &here,
        &format!("/v1/staff/me/sessions/{elsewhere_id}/revoke"),
        json!({}),
    )
    .await;
    revoked.assert_status(200);
    assert_eq!(revoked.body["ended"], true);
    app.get_as("/v1/staff/me", &elsewhere)
        .await
        .assert_error(401, "unauthorized");
    app.get_as("/v1/staff/me", &here).await.assert_status(200);
    // Ended already, or someone else's: not one's own open session.
    post_as(
        &app,
        &here,
        &format!("/v1/staff/me/sessions/{elsewhere_id}/revoke"),
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
    let other = staff_session(&app, "hal@example.com", "viewer").await;
    let theirs = app.get_as("/v1/staff/me/sessions", &other).await;
    let their_id = theirs.body["data"][0]["id"].as_str().unwrap().to_owned();
    post_as(
        &app,
        &here,
        &format!("/v1/staff/me/sessions/{their_id}/revoke"),
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
    app.get_as("/v1/staff/me", &other).await.assert_status(200);
}

#[tokio::test]
async fn owners_manage_staff_and_the_last_owner_who_can_sign_in_stays() {
    let app = TestApp::spawn().await;
    let owner = staff_session(&app, "owner@example.com", "owner").await;
    let support = staff_session(&app, "sam@example.com", "support").await;
    let listed = app.get_as("/v1/staff", &owner).await;
    listed.assert_status(200);
    let members = listed.body["data"].as_array().unwrap().clone();
    let id_of = |email: &str| {
        members.iter().find(|member| member["email"] == email).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (owner_id, sam_id) = (id_of("owner@example.com"), id_of("sam@example.com"));
    let patch = |id: &str, body: Value| {
        app.send(
            app.client
                .patch(app.url(&format!("/v1/staff/{id}")))
                .bearer_auth(&owner)
                .json(&body),
        )
    };

    // Support cannot manage staff.
    app.get_as("/v1/staff", &support)
        .await
        .assert_error(403, "insufficient_role");
    // A disabled member's sessions end and their sign-ins stop; enabled again, they sign in.
    patch(&sam_id, json!({"disabled": true})).await.assert_status(200);
    app.get_as("/v1/staff/me", &support)
        .await
        .assert_error(401, "unauthorized");
    sign_in(
        &app,
        json!({"email": "sam@example.com", "password": NEW_PASSWORD}),
    )
    .await
    .assert_error(403, "account_disabled");
    patch(&sam_id, json!({"disabled": false}))
        .await
        .assert_status(200);
    let support = sign_in(
        &app,
        json!({"email": "sam@example.com", "password": NEW_PASSWORD}),
    )
    .await;
    let support = support.body["token"].as_str().unwrap().to_owned();

    // A new role ends the sessions opened under the old one.
    let promoted = patch(&sam_id, json!({"role": "finance"})).await;
    promoted.assert_status(200);
    assert_eq!(promoted.body["role"], "finance");
    app.get_as("/v1/staff/me", &support)
        .await
        .assert_error(401, "unauthorized");

    // A reset gives a new temporary password and lifts a lockout.
    for _ in 0..10 {
        sign_in(
            &app,
            json!({"email": "sam@example.com", "password": "wrong password"}),
        )
        .await;
    }
    let reset = patch(&sam_id, json!({"reset_password": true})).await;
    reset.assert_status(200);
    let temporary = reset.body["temporary_password"].as_str().unwrap();
    assert_eq!(reset.body["locked_until"], Value::Null);
    let back = sign_in(&app, json!({"email": "sam@example.com", "password": temporary})).await;
    back.assert_status(201);
    assert_eq!(back.body["staff"]["password_change_required"], true);

    // The only owner can neither leave the role nor be disabled ...
    patch(&owner_id, json!({"role": "admin"}))
        .await
        .assert_error(400, "invalid_request");
    patch(&owner_id, json!({"disabled": true}))
        .await
        .assert_error(400, "invalid_request");
    // ... until there is another.
    patch(&sam_id, json!({"role": "owner"})).await.assert_status(200);
    let stepped_down = patch(&owner_id, json!({"role": "admin"})).await;
    stepped_down.assert_status(200);
    // Its own session ended with the change of role.
    app.get_as("/v1/staff/me", &owner)
        .await
        .assert_error(401, "unauthorized");

    // An email is one account across giftd.
    app.post("/v1/staff", json!({"email": "SAM@example.com", "role": "viewer"}))
        .await
        .assert_error(400, "invalid_request");
    app.post("/v1/staff", json!({"email": "not an email", "role": "viewer"}))
        .await
        .assert_error(400, "invalid_request");
    app.post("/v1/staff", json!({"email": "x@example.com", "role": "root"}))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_session_is_no_credential_on_a_vendor_front_end_and_a_key_has_no_account() {
    let app = TestApp::spawn().await;
    let token = staff_session(&app, "eve@example.com", "owner").await;
    let clover = app
        .send(
            app.client
                .get(app.url("/clover/v1/charges"))
                .header("apiKey", &token),
        )
        .await;
    clover.assert_status(401);
    let gr4vy = app
        .send(app.client.get(app.url("/gr4vy/transactions")).bearer_auth(&token))
        .await;
    gr4vy.assert_status(401);
    app.get("/v1/staff/me")
        .await
        .assert_error(403, "insufficient_scope");
}

/// Who may make a request: the roles and the API key scopes, as docs/STAFF.md states them.
fn allowed(method: &str, path: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const EVERY_ROLE: &[&str] = &ROLES;
    const MANAGERS: &[&str] = &["owner", "admin"];
    const EVERY_SCOPE: &[&str] = &SCOPES;
    const TILL: &[&str] = &["full", "pos"];
    const FULL: &[&str] = &["full"];
    const NO_KEY: &[&str] = &[];
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (_, ["v1", "staff", "me", ..]) => (EVERY_ROLE, NO_KEY),
        (_, ["v1", "staff", ..]) => (&["owner"], FULL),
        (_, ["v1", "api_keys", ..]) => (&["owner", "admin", "developer"], FULL),
        ("patch", ["v1", "settings"]) => (&["owner"], FULL),
        ("post", ["v1", "cards", _, "adjustments"]) => (&["owner", "admin", "support"], FULL),
        ("post", ["v1", "adjustments", _, "approve" | "reject"]) => (&["owner", "admin", "finance"], NO_KEY),
        // Card stock: even reading a batch is a manager's work (its file holds numbers).
        (_, ["v1", "card_batches", ..]) => (MANAGERS, FULL),
        ("get", ["v1", "reports" | "audit_events", ..]) => {
            (&["owner", "admin", "finance", "viewer"], EVERY_SCOPE)
        }
        ("get", _) => (EVERY_ROLE, EVERY_SCOPE),
        (_, ["v1", "webhook_endpoints" | "webhook_deliveries", ..]) => {
            (&["owner", "admin", "developer"], FULL)
        }
        ("post", ["v1", "cards", _, "freeze" | "unfreeze"]) => (&["owner", "admin", "support"], FULL),
        (_, ["v1", "cards", _, "cardholder_links", ..]) => (&["owner", "admin", "support"], FULL),
        (
            "post",
            ["v1", "cards", "lookup"]
            | ["v1", "cards", _, "activate" | "load" | "redeem" | "holds"]
            | ["v1", "holds", _, "capture" | "release"]
            | ["v1", "transactions", _, "void" | "refund"],
        ) => (MANAGERS, TILL),
        _ => (MANAGERS, FULL),
    }
}

/// The operations of the native OpenAPI document that need a credential: method and path.
async fn operations(app: &TestApp) -> Vec<(String, String)> {
    let document = app.get("/openapi.json").await.body;
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            // `security: [{}]` marks the one route that takes none: signing in.
            let open = operation["security"].as_array().is_some_and(|schemes| {
                schemes
                    .iter()
                    .all(|s| s.as_object().is_some_and(|o| o.is_empty()))
            });
            if open {
                assert_eq!((method.as_str(), path.as_str()), ("post", "/v1/sessions"));
                continue;
            }
            found.push((method.clone(), path.clone()));
        }
    }
    found
}

/// A request's refusal for want of power, if it was one.
fn refused_for_power(answer: &TestResponse) -> bool {
    answer.status == 403 && ["insufficient_role", "insufficient_scope"].contains(&answer.code())
}

#[tokio::test]
async fn every_role_and_every_key_scope_is_allowed_exactly_its_routes_of_the_openapi_document() {
    let app = TestApp::spawn().await;
    let operations = operations(&app).await;
    assert!(operations.len() > 50, "{} operations", operations.len());
    let mut callers: Vec<(&str, String)> = Vec::new();
    for role in ROLES {
        callers.push((
            role,
            staff_session(&app, &format!("{role}@example.com"), role).await,
        ));
    }
    for scope in SCOPES {
        let key = app
            .post("/v1/api_keys", json!({"name": scope, "scope": scope}))
            .await;
        callers.push((scope, key.body["key"].as_str().unwrap().to_owned()));
    }
    // Signing out ends the session: last.
    let mut ordered = operations.clone();
    ordered.sort_by_key(|(_, path)| path.ends_with("/sign_out"));
    let mut checked = BTreeSet::new();
    for (method, path) in &ordered {
        let (roles, scopes) = allowed(method, path);
        // Placeholder ids: an allowed request gets past the check of power (to a 404, a 400 or
        // an answer), a refused one is stopped by it.
        let concrete = path
            .replace("{id}", "card_0")
            .replace("{user_id}", "user_0")
            .replace("{card_id}", "card_0")
            .replace("{link_id}", "chl_0")
            .replace("{reference}", "ref_0");
        for (caller, credential) in &callers {
            let request = match method.as_str() {
                "get" => app.client.get(app.url(&concrete)),
                "post" => app.client.post(app.url(&concrete)).json(&json!({})),
                "put" => app.client.put(app.url(&concrete)).json(&json!({})),
                "patch" => app.client.patch(app.url(&concrete)).json(&json!({})),
                "delete" => app.client.delete(app.url(&concrete)),
                other => panic!("method {other}"),
            };
            let answer = app.send(request.bearer_auth(credential)).await;
            let expected = roles.contains(caller) || scopes.contains(caller);
            assert_eq!(
                !refused_for_power(&answer),
                expected,
                "{caller} {method} {path}: {} {}",
                answer.status,
                answer.text
            );
            if !expected {
                let code = if ROLES.contains(caller) {
                    "insufficient_role"
                } else {
                    "insufficient_scope"
                };
                answer.assert_error(403, code);
            }
        }
        checked.insert((method.clone(), path.clone()));
    }
    assert_eq!(checked.len(), operations.len());
}
