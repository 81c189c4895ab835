//! Adyen's official Node library (`@adyen/api-library`, TerminalCloudAPI) driving giftd's
//! Terminal API against the real `giftd` binary: the script in `adyen_node/` pays with a card
//! and loads it, then recovers both answers with TransactionStatus as a point of sale that lost
//! them would, asks about a message that never came (NotFound), aborts the payment (200, no
//! body), and checks that the balance moved once per message; then `giftd verify` must find the
//! ledger sound.
//!
//! The library is installed by `.ci/run` into `target/adyen-node` (from `package-lock.json`);
//! `GIFTD_TEST_NODE_PATH` may name another `node_modules`. The test is ignored for that reason,
//! saying so; run with `--include-ignored` without the library, the script exits 2 and the
//! test fails instead of passing unrun.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::served::*;

/// Where `.ci/run` installs the library, from the workspace root.
const DEFAULT_NODE_MODULES: &str = "target/adyen-node/node_modules";

#[tokio::test]
#[ignore = "needs Node.js and @adyen/api-library installed in target/adyen-node (as .ci/run does)"]
async fn adyens_node_library_recovers_lost_answers_with_transaction_status_on_sqlite() {
    node_library_recovers_lost_answers(Deployment::sqlite()).await;
}

#[tokio::test]
#[ignore = "needs @adyen/api-library in target/adyen-node (as .ci/run installs it) and GIFTD_TEST_PG_URL"]
async fn adyens_node_library_recovers_lost_answers_with_transaction_status_on_postgres() {
    node_library_recovers_lost_answers(Deployment::postgres().await).await;
}

async fn node_library_recovers_lost_answers(deployment: Deployment) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node_modules = std::env::var_os("GIFTD_TEST_NODE_PATH")
        .filter(|p| !p.is_empty())
        .map_or_else(|| workspace.join(DEFAULT_NODE_MODULES), Into::into);
    let api_key = deployment.create_merchant("Node Shop");

    let server = deployment.serve().await;
    let program = server
        .post(
            &api_key,
            "/v1/programs",
            json!({"name": "Node", "currency": "EUR"}),
        )
        .await;
    let card = server
        .post(
            &api_key,
            "/v1/cards",
            json!({"program_id": program["id"], "kind": "virtual", "amount": 5000}),
        )
        .await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adyen_node/transaction_status.cjs");
    let output = run(
        Command::new("node")
            .arg(&script)
            .env("NODE_PATH", &node_modules)
            .env("GIFTD_BASE_URL", &server.base_url)
            .env("GIFTD_API_KEY", &api_key)
            .env("GIFTD_CARD", card["number"].as_str().expect("a number"))
            .env("GIFTD_CARD_CODE", card["security_code"].as_str().expect("a code"))
            .stdin(Stdio::null()),
        SCRIPT_TIMEOUT,
    );
    let steps = script_steps(&output, &server, "the Node script");
    for name in [
        "a_payment",
        "b_status_of_payment",
        "c_load",
        "c_status_of_load",
        "d_status_of_unknown",
        "e_abort",
        "e_status_after_abort",
        "f_balance_after",
    ] {
        let step = steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {steps:?}"));
        assert_eq!(step["ok"], true, "{name}: {step}");
    }
    // 50.00 - 7.25 paid + 3.10 loaded, read back through the native API as well.
    let card_now = giftd_testkit::http_client()
        .get(format!(
            "{}/v1/cards/{}",
            server.base_url,
            card["id"].as_str().unwrap()
        ))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("the card")
        .json::<serde_json::Value>()
        .await
        .expect("JSON");
    assert_eq!(card_now["balance"], 4585, "{card_now}");
    assert!(!server.log().contains(&api_key), "the API key is in the log");
    drop(server);
    deployment.assert_verified();
}
