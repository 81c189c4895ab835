//! Adyen's official Python library (`Adyen` on PyPI) driving giftd's Stored Value API v46
//! against the real `giftd` binary: the script in `adyen_python/` redirects the library's
//! Stored Value service (`storedValue.stored_value_api.baseUrl`) to a `giftd serve` started
//! here, runs every operation through it, and prints one JSON line per step; then
//! `giftd verify` must find the ledger sound.
//!
//! The interpreter is the one named by `GIFTD_TEST_PYTHON` (CI points it at a virtual
//! environment with `Adyen==16.0.0`). The test is ignored for that reason, saying so, so that
//! `cargo test` needs nothing but Rust; run with `--include-ignored` (as CI does) it fails
//! without the variable instead of passing unrun.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::served::*;

#[tokio::test]
#[ignore = "needs GIFTD_TEST_PYTHON, a Python with Adyen==16.0.0 installed"]
async fn adyens_python_library_runs_every_stored_value_operation_on_sqlite() {
    python_library_runs_every_stored_value_operation(Deployment::sqlite()).await;
}

#[tokio::test]
#[ignore = "needs GIFTD_TEST_PYTHON (Adyen==16.0.0) and GIFTD_TEST_PG_URL"]
async fn adyens_python_library_runs_every_stored_value_operation_on_postgres() {
    python_library_runs_every_stored_value_operation(Deployment::postgres().await).await;
}

async fn python_library_runs_every_stored_value_operation(deployment: Deployment) {
    let python = std::env::var_os("GIFTD_TEST_PYTHON")
        .filter(|p| !p.is_empty())
        .expect("GIFTD_TEST_PYTHON: a Python with Adyen installed (pip install Adyen==16.0.0)");

    let api_key = deployment.create_merchant("Python Shop");

    let server = deployment.serve().await;
    server
        .post(
            &api_key,
            "/v1/programs",
            json!({"name": "Python issue", "currency": "EUR", "promotion_code": "PY-1", "denominations": [1000]}),
        )
        .await;
    let stock = server
        .post(
            &api_key,
            "/v1/programs",
            json!({"name": "Python stock", "currency": "EUR"}),
        )
        .await;
    let stock_number = "6006491286999921374";
    server
        .post(
            &api_key,
            "/v1/cards",
            json!({"program_id": stock["id"], "kind": "physical", "number": stock_number, "security_code": "1111"}),
        )
        .await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adyen_python/stored_value_client.py");
    let output = run(
        Command::new(&python)
            .arg(&script)
            .env("GIFTD_BASE_URL", &server.base_url)
            .env("GIFTD_API_KEY", &api_key)
            .env("GIFTD_STOCK", stock_number)
            .stdin(Stdio::null()),
        SCRIPT_TIMEOUT,
    );
    let steps = script_steps(&output, &server, "the script");
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
            .clone()
    };
    for (name, balance) in [
        ("issue", 1000),
        ("checkBalance", 1000),
        ("changeStatus", 1000),
        ("load", 3500),
        ("load retried", 3500),
        ("load merchandiseReturn", 4000),
        ("voidTransaction", 3500),
        ("mergeBalance", 4500),
        ("checkBalance basic auth", 4500),
    ] {
        let step = step(name);
        assert_eq!(
            (
                step["status"].as_i64(),
                step["resultCode"].as_str(),
                step["balance"].as_i64()
            ),
            (Some(200), Some("Success"), Some(balance)),
            "{name}: {step}"
        );
    }
    assert_eq!(step("checkBalance wrong code")["resultCode"], "Refused");
    assert_eq!(step("validation error")["status"], 400);
    assert_eq!(step("authentication error")["status"], 401);
    // The library sent its key in a header, never in a log line.
    assert!(!server.log().contains(&api_key), "the API key is in the log");
    drop(server);

    deployment.assert_verified();
}
