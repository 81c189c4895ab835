//! Card stock with the real binary: `giftd cards generate` writes a printer's file that agrees
//! with the database (every number there finds its card with its security code, and nothing
//! else was created), `giftd cards import` brings balances over as ledger entries that
//! `giftd verify` accepts, refuses a file with a bad row as a whole naming the line, and does
//! not import the same file twice; `giftd report liability --csv` sees the imported value.
//! Runs on SQLite, or PostgreSQL with GIFTD_TEST_BACKEND=postgres.

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
