//! Card stock with the real binary: `giftd cards generate` writes a printer's file that agrees
//! with the database (every number there finds its card with its security code, and nothing
//! else was created), `giftd cards import` brings balances over as ledger entries that
//! `giftd verify` accepts, refuses a file with a bad row as a whole naming the line, and does
//! not import the same file twice; `giftd report liability --csv` sees the imported value.
//! The same through a running server (`/v1/card_batches`, `--server`): batches made while
//! redemptions go on, the printer's file handed out until collected and then only its digest
//! kept, each request idempotent and audited. Runs on SQLite, or PostgreSQL with
//! GIFTD_TEST_BACKEND=postgres.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use giftd_domain::card::luhn_valid;
use giftd_service::{MasterKey, Service, SystemClock};
use giftd_store::Store;
use giftd_store::postgres::{PgOptions, PgStore};
use giftd_store::sqlite::{Durability, SqliteStore};
use giftd_testkit::{PgTestDatabase, test_pg_url, testing_postgres};
use serde_json::{Value, json};
use tempfile::TempDir;

const MASTER_KEY: &str = "4f6c1d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100";

/// A data folder (or PostgreSQL database), a merchant and a program, with the API served
/// in-process on the same database and key to check what the binary did.
struct Setup {
    dir: TempDir,
    database_url: Option<String>,
    _postgres: Option<PgTestDatabase>,
    service: Service,
    client: reqwest::Client,
    address: String,
    api_key: String,
    program_id: String,
    server: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn new(program: Value) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let (store, database_url, postgres): (Arc<dyn Store>, _, _) = if testing_postgres() {
            let admin = test_pg_url().expect("GIFTD_TEST_BACKEND=postgres needs GIFTD_TEST_PG_URL");
            let database = PgTestDatabase::create(&admin).await;
            let store = PgStore::open(&database.url, &PgOptions::default())
                .await
                .expect("open");
            (store, Some(database.url.clone()), Some(database))
        } else {
            let store = SqliteStore::open(&dir.path().join("giftd.db"), Durability::Full)
                .await
                .expect("open");
            (store, None, None)
        };
        let key = MasterKey::from_hex(MASTER_KEY).expect("a key");
        let service = Service::new(store, &key, Arc::new(SystemClock));
        let merchant = service.create_merchant("Stock").await.expect("merchant");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let app =
            giftd_api::app(service.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut setup = Self {
            dir,
            database_url,
            _postgres: postgres,
            service,
            client: giftd_testkit::http_client(),
            address,
            api_key: merchant.api_key,
            program_id: String::new(),
            server,
        };
        let created = setup.post("/v1/programs", program).await;
        setup.program_id = created["id"].as_str().expect("program id").to_owned();
        setup
    }

    fn giftd(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
        for variable in [
            "GIFTD_DATABASE_URL",
            "GIFTD_CONFIG",
            "GIFTD_DURABILITY",
            "RUST_LOG",
        ] {
            command.env_remove(variable);
        }
        command
            .env("GIFTD_DATA_DIR", self.dir.path())
            .env("GIFTD_MASTER_KEY", MASTER_KEY)
            .stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            command.env("GIFTD_DATABASE_URL", url);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.giftd().args(args).output().expect("run giftd")
    }

    /// `giftd cards import FILE --program` the setup's program.
    fn import(&self, file: &Path) -> Output {
        let file = file.to_str().expect("a UTF-8 path");
        self.run(&["cards", "import", file, "--program", &self.program_id])
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.expect("json")
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    async fn lookup(&self, number: &str, code: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/cards/lookup", self.address))
            .bearer_auth(&self.api_key)
            .json(&json!({"number": number, "security_code": code}))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn card_count(&self) -> usize {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/cards?limit=100&cursor={c}"),
                None => "/v1/cards?limit=100".to_owned(),
            };
            let page = self.get(&path).await;
            count += page["data"].as_array().expect("cards").len();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return count,
            }
        }
    }

    /// Runs `giftd ARGS --server` this setup's server, with its API key, off the runtime's
    /// threads (the server answers it meanwhile).
    async fn run_through_server(&self, args: &[&str]) -> Output {
        let mut command = self.giftd();
        command
            .args(args)
            .args(["--server", &self.address])
            .env("GIFTD_API_KEY", &self.api_key);
        tokio::task::spawn_blocking(move || command.output().expect("run giftd"))
            .await
            .expect("the command ran")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.bearer_auth(&self.api_key).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    async fn close(self) {
        self.server.abort();
        self.service.store().close().await;
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write the file");
}

#[tokio::test]
async fn generated_file_and_database_agree() {
    let setup = Setup::new(json!({"name": "Stock", "currency": "USD", "number_prefix": "6035", "number_length": 16, "security_code_length": 6})).await;
    let out = setup.path("cards.csv");
    let count = 1_500;
    let output = setup.run(&[
        "cards",
        "generate",
        "--program",
        &setup.program_id,
        "--count",
        &count.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(!setup.path("cards.csv.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the printer's file holds secrets");
    }
    let contents = std::fs::read_to_string(&out).unwrap();
    let mut lines = contents.lines();
    assert_eq!(
        lines.next(),
        Some("card_id,number,security_code,program_id,expires_at,batch_id")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), count);
    let numbers: HashSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(numbers.len(), count, "numbers are unique");
    for row in &rows {
        assert!(
            row[1].starts_with("6035") && row[1].len() == 16 && luhn_valid(row[1]),
            "{}",
            row[1]
        );
        assert_eq!(row[2].len(), 6);
        assert_eq!(row[3], setup.program_id);
    }
    // The database has exactly these cards, and the file's secrets open them.
    assert_eq!(setup.card_count().await, count);
    for row in rows.iter().step_by(150) {
        let (status, card) = setup.lookup(row[1], row[2]).await;
        assert_eq!(status, 200, "{card}");
        assert_eq!(card["id"], row[0]);
        assert_eq!(card["state"], "inactive");
        assert_eq!(card["kind"], "physical");
        assert_eq!(card["last4"], row[1][12..]);
    }
    // Activation works on generated stock like on any card.
    let activated = setup
        .post(
            &format!("/v1/cards/{}/activate", rows[0][0]),
            json!({"amount": 2_500}),
        )
        .await;
    assert_eq!(activated["balance_after"], 2_500);
    let verify = setup.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    // A second generation never overwrites the file, and creates nothing.
    let again = setup.run(&[
        "cards",
        "generate",
        "--program",
        &setup.program_id,
        "--count",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        text(&again)
    );
    assert_eq!(setup.card_count().await, count);
    setup.close().await;
}

#[tokio::test]
async fn imported_balances_are_ledger_entries_and_the_same_file_is_not_imported_twice() {
    let setup = Setup::new(json!({"name": "Migrated", "currency": "EUR"})).await;
    let file = setup.path("migrated.csv");
    write(
        &file,
        "number,security_code,balance,currency,state,expires_at\n\
         7000000000000001,1234,2500,EUR,active,2031-06-30\n\
         7000000000000002,abcd,0,,inactive,\n\
         7000000000000003,9999,125,EUR,frozen,\n",
    );
    let output = setup.import(&file);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("imported 3 cards"),
        "{}",
        text(&output)
    );

    let (status, card) = setup.lookup("7000000000000001", "1234").await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["balance"], 2_500);
    assert_eq!(card["state"], "active");
    assert!(
        card["expires_at"].as_str().unwrap().starts_with("2031-06-30"),
        "{card}"
    );
    let transactions = setup
        .get(&format!(
            "/v1/cards/{}/transactions",
            card["id"].as_str().unwrap()
        ))
        .await;
    let transactions = transactions["data"].as_array().unwrap();
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0]["type"], "issue");
    assert_eq!(transactions[0]["amount"], 2_500);
    let (_, frozen) = setup.lookup("7000000000000003", "9999").await;
    assert_eq!(frozen["state"], "frozen");
    assert_eq!(frozen["balance"], 125);
    let (_, inactive) = setup.lookup("7000000000000002", "abcd").await;
    assert_eq!(inactive["balance"], 0);
    // The imported card can be spent like any other.
    setup
        .post(
            &format!("/v1/cards/{}/redeem", card["id"].as_str().unwrap()),
            json!({"amount": 500}),
        )
        .await;

    let verify = setup.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("outstanding EUR: 2125"),
        "{}",
        text(&verify)
    );
    let report = setup.run(&["report", "liability", "--csv"]);
    assert!(report.status.success(), "{}", text(&report));
    let csv = String::from_utf8_lossy(&report.stdout).to_string();
    assert!(
        csv.starts_with("as_of,merchant_id,program_id,currency,cards,liability_minor\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(",{},EUR,2,2125\n", setup.program_id)),
        "{csv}"
    );

    // The same file again: recognised, nothing doubled.
    let again = setup.import(&file);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already imported"),
        "{}",
        text(&again)
    );
    assert_eq!(setup.card_count().await, 3);
    setup.close().await;
}

#[tokio::test]
async fn an_import_with_a_bad_row_writes_nothing_and_names_the_line() {
    let setup = Setup::new(json!({"name": "Migrated", "currency": "USD", "max_balance": 10_000})).await;
    let file = setup.path("bad.csv");
    write(
        &file,
        "number,security_code,balance\n\
         7100000000000001,1234,100\n\
         7100000000000002,1234,-5\n\
         7100000000000003,1234,200\n\
         7100000000000001,4321,300\n",
    );
    let output = setup.import(&file);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3:") && stderr.contains("balance"),
        "{}",
        text(&output)
    );
    assert!(
        stderr.contains("line 5: the same card number is on line 2"),
        "{}",
        text(&output)
    );
    assert_eq!(setup.card_count().await, 0);

    // Rows that parse but break a rule of the program, or collide with an existing card.
    write(
        &setup.path("existing.csv"),
        "number,security_code\n7200000000000001,1111\n",
    );
    let first = setup.import(&setup.path("existing.csv"));
    assert!(first.status.success(), "{}", text(&first));
    write(
        &file,
        "number,security_code,balance,currency\n\
         7300000000000001,1234,100,USD\n\
         7200000000000001,2222,100,USD\n\
         7300000000000002,1234,20000,USD\n\
         7300000000000003,1234,100,EUR\n",
    );
    let output = setup.import(&file);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3: a card with this number already exists"),
        "{}",
        text(&output)
    );
    assert!(
        stderr.contains("line 4:") && stderr.contains("max_balance"),
        "{}",
        text(&output)
    );
    assert!(stderr.contains("line 5: currency EUR"), "{}", text(&output));
    assert_eq!(setup.card_count().await, 1, "nothing of the bad file was written");
    setup.close().await;
}

#[tokio::test]
async fn an_import_whose_balances_add_up_past_64_bits_is_refused_naming_the_line() {
    // Each balance fits a card; together they do not fit the batch's recorded value.
    let setup =
        Setup::new(json!({"name": "Huge", "currency": "USD", "max_load": i64::MAX, "max_balance": i64::MAX}))
            .await;
    let file = setup.path("huge.csv");
    write(
        &file,
        &format!(
            "number,security_code,balance\n7400000000000001,1234,{max}\n7400000000000002,1234,{max}\n",
            max = i64::MAX
        ),
    );
    let output = setup.import(&file);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3: the file's balances add up to more than 9223372036854775807 minor units"),
        "{}",
        text(&output)
    );
    assert_eq!(setup.card_count().await, 0);
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_batch_hands_its_printers_file_out_until_collected_then_keeps_only_its_digest() {
    let setup =
        Setup::new(json!({"name": "Stock", "currency": "USD", "number_prefix": "6036", "number_length": 16}))
            .await;
    let batches = format!("{}/v1/card_batches", setup.address);
    let ask = json!({"program_id": setup.program_id, "count": 50});
    let (status, body) = setup
        .send(
            setup
                .client
                .post(&batches)
                .header("Idempotency-Key", "batch-1")
                .json(&ask),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let batch = json_of(&body);
    let id = batch["id"].as_str().expect("a batch id").to_owned();
    assert_eq!(
        (
            batch["object"].clone(),
            batch["source"].clone(),
            batch["cards"].clone()
        ),
        (json!("card_batch"), json!("generated"), json!(50))
    );
    assert_eq!(batch["file"]["collected"], false);
    let sha256 = batch["file"]["sha256"].as_str().expect("a digest").to_owned();

    // A retry with the same key is the same batch; no card is made twice.
    let (status, again) = setup
        .send(
            setup
                .client
                .post(&batches)
                .header("Idempotency-Key", "batch-1")
                .json(&ask),
        )
        .await;
    assert_eq!((status, json_of(&again)["id"].clone()), (201, json!(id)));
    assert_eq!(setup.card_count().await, 50);

    // The file: its digest is the batch's, and its numbers open inactive cards.
    let file_url = format!("{batches}/{id}/file");
    let response = setup
        .client
        .get(&file_url)
        .bearer_auth(&setup.api_key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let file = response.bytes().await.expect("the file");
    assert_eq!(hex::encode(giftd_service::stock::digest(&file)), sha256);
    let printed = String::from_utf8(file.to_vec()).expect("UTF-8");
    let rows: Vec<Vec<&str>> = printed.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|row| row[5] == id));
    let (status, card) = setup.lookup(rows[7][1], rows[7][2]).await;
    assert_eq!(
        (status, card["state"].clone()),
        (200, json!("inactive")),
        "{card}"
    );

    // Collected only by a caller that names its digest; then gone, the digest kept.
    let wrong = "0".repeat(64);
    let (status, body) = setup
        .send(setup.client.delete(format!("{file_url}?sha256={wrong}")))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "digest_mismatch");
    for malformed in ["abc", "zz".repeat(32).as_str(), ""] {
        let (status, body) = setup
            .send(setup.client.delete(format!("{file_url}?sha256={malformed}")))
            .await;
        assert_eq!(status, 400, "sha256={malformed}: {body}");
        assert_eq!(json_of(&body)["error"]["param"], "sha256");
    }
    let (status, _) = setup.send(setup.client.get(&file_url)).await;
    assert_eq!(status, 200, "a refused collection keeps the file");
    for _ in 0..2 {
        let (status, body) = setup
            .send(setup.client.delete(format!("{file_url}?sha256={sha256}")))
            .await;
        assert_eq!(status, 200, "{body}");
        let collected = json_of(&body);
        assert_eq!(collected["file"]["collected"], true);
        assert_eq!(collected["file"]["sha256"], sha256.as_str());
    }
    let (status, body) = setup.send(setup.client.get(&file_url)).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "file_collected");
    let listed = setup.get("/v1/card_batches").await;
    assert_eq!(listed["data"][0]["id"], id.as_str());

    // Each step is in the audit trail: made, handed out (twice), collected.
    let audit = setup.get("/v1/audit_events?limit=100").await;
    let operations: Vec<&str> = audit["data"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| row["outcome"] == "succeeded")
        .filter_map(|row| row["operation"].as_str())
        .filter(|op| op.starts_with("CardBatch::"))
        .collect();
    assert_eq!(
        operations,
        [
            "CardBatch::CollectFile",
            "CardBatch::HandOutFile",
            "CardBatch::HandOutFile",
            "CardBatch::Generate"
        ],
        "{audit}"
    );

    // Too many at once, a program of another merchant's, a till's key: refused, nothing made.
    let (status, body) = setup
        .send(
            setup
                .client
                .post(&batches)
                .json(&json!({"program_id": setup.program_id, "count": 10_001})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json_of(&body)["error"]["param"], "count");
    let till = setup
        .post("/v1/api_keys", json!({"name": "till", "scope": "pos"}))
        .await;
    let response = setup
        .client
        .post(&batches)
        .bearer_auth(till["key"].as_str().expect("a key"))
        .json(&ask)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    assert_eq!(setup.card_count().await, 50);
    let verify = setup.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    setup.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_generates_through_a_running_server_while_it_serves_redemptions() {
    let setup =
        Setup::new(json!({"name": "Stock", "currency": "USD", "number_prefix": "6037", "number_length": 16}))
            .await;
    let card = setup
        .post(
            "/v1/cards",
            json!({"program_id": setup.program_id, "kind": "virtual", "amount": 100_000}),
        )
        .await;
    let card_id = card["id"].as_str().expect("a card").to_owned();
    // Redemptions of 1 go on, one after another, for as long as the batches are made.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let redeemer = {
        let (client, address, key, stop) = (
            setup.client.clone(),
            setup.address.clone(),
            setup.api_key.clone(),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(format!("{address}/v1/cards/{card_id}/redeem"))
                    .bearer_auth(&key)
                    .json(&json!({"amount": 1}))
                    .send()
                    .await
                    .expect("an answer");
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    };
    let out = setup.path("served.csv");
    let count = 1_200;
    let output = setup
        .run_through_server(&[
            "cards",
            "generate",
            "--program",
            &setup.program_id,
            "--count",
            &count.to_string(),
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = redeemer.await.expect("the redeemer ran");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );

    // One file, every card in it once; the batches it was made of all collected.
    let contents = std::fs::read_to_string(&out).expect("the printer's file");
    let mut lines = contents.lines();
    assert_eq!(lines.next(), Some(giftd_service::stock::PRINTER_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), count);
    assert_eq!(rows.iter().map(|r| r[1]).collect::<HashSet<_>>().len(), count);
    let batch_ids: HashSet<&str> = rows.iter().map(|r| r[5]).collect();
    assert_eq!(batch_ids.len(), 3, "1,200 cards in batches of 500");
    let listed = setup.get("/v1/card_batches").await;
    for batch in listed["data"].as_array().expect("batches") {
        assert!(batch_ids.contains(batch["id"].as_str().unwrap()), "{batch}");
        assert_eq!(batch["file"]["collected"], true, "{batch}");
    }
    assert!(!setup.path("served.csv.partial").exists());
    let (status, opened) = setup.lookup(rows[1_100][1], rows[1_100][2]).await;
    assert_eq!((status, opened["id"].clone()), (200, json!(rows[1_100][0])));
    assert_eq!(setup.card_count().await, count + 1);
    let verify = setup.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    setup.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_a_running_server_is_whole_or_nothing_and_recognised_when_repeated() {
    let setup = Setup::new(json!({"name": "Migrated", "currency": "EUR", "max_balance": 10_000})).await;
    let bad = setup.path("bad.csv");
    write(
        &bad,
        "number,security_code,balance\n7200000000000001,1234,100\n7200000000000002,5678,20000\n",
    );
    let file = bad.to_str().unwrap();
    let output = setup
        .run_through_server(&["cards", "import", file, "--program", &setup.program_id])
        .await;
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid_import") && stderr.contains("line 3"),
        "{}",
        text(&output)
    );
    assert_eq!(setup.card_count().await, 0);

    let good = setup.path("good.csv");
    write(
        &good,
        "number,security_code,balance\n7200000000000001,1234,100\n7200000000000002,5678,2000\n",
    );
    let file = good.to_str().unwrap();
    let output = setup
        .run_through_server(&["cards", "import", file, "--program", &setup.program_id])
        .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("imported 2 cards"),
        "{}",
        text(&output)
    );
    let again = setup
        .run_through_server(&["cards", "import", file, "--program", &setup.program_id])
        .await;
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already imported"),
        "{}",
        text(&again)
    );
    assert_eq!(setup.card_count().await, 2);
    let (status, card) = setup.lookup("7200000000000002", "5678").await;
    assert_eq!((status, card["balance"].clone()), (200, json!(2_000)));
    let listed = setup.get("/v1/card_batches").await;
    assert_eq!(listed["data"][0]["source"], "imported");
    assert_eq!(listed["data"][0]["value"], 2_100);
    assert!(listed["data"][0]["file"].is_null());
    // An imported batch has no printer's file to hand out.
    let imported = listed["data"][0]["id"].as_str().unwrap();
    let (status, body) = setup
        .send(
            setup
                .client
                .get(format!("{}/v1/card_batches/{imported}/file", setup.address)),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "not_found");
    let verify = setup.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    setup.close().await;
}
