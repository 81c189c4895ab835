//! The benchmark's side of giftd's native API: one keep-alive HTTP client, preparing a program
//! and its cards, and reading every card back to check its balance against what the benchmark
//! was told. It keeps the per-card books of acknowledged and uncertain debits that the checks
//! compare with the server's balances.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// Cards listed per request when reading them back (the API's maximum page size).
const PAGE_SIZE: usize = 100;
/// Requests in flight while creating cards.
pub const SETUP_CONCURRENCY: usize = 32;

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base_url: String,
    pub api_key: String,
}

/// An answer: status and body bytes, or no answer at all.
pub enum Answer {
    Http { status: u16, body: Vec<u8> },
    Transport(String),
}

impl Api {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    pub async fn post(&self, path: &str, body: String, idempotency_key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Self::finish(request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let request = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key);
        Self::finish(request).await
    }

    async fn finish(request: reqwest::RequestBuilder) -> Answer {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => Answer::Http {
                        status,
                        body: body.to_vec(),
                    },
                    Err(error) => Answer::Transport(error.to_string()),
                }
            }
            Err(error) => Answer::Transport(error.to_string()),
        }
    }

    async fn expect_json(&self, answer: Answer, status: u16, what: &str) -> anyhow::Result<Value> {
        match answer {
            Answer::Http { status: got, body } if got == status => {
                serde_json::from_slice(&body).with_context(|| format!("{what}: the answer is not JSON"))
            }
            Answer::Http { status: got, body } => {
                bail!("{what}: HTTP {got}: {}", String::from_utf8_lossy(&body))
            }
            Answer::Transport(error) => bail!("{what}: {error}"),
        }
    }

    /// A US-dollar program with no expiry and no load limits (its ceilings lifted as far as 64
    /// bits go, so that `--balance` may be large).
    pub async fn create_program(&self) -> anyhow::Result<String> {
        let body = json!({
            "name": "Benchmark program", "currency": "USD", "number_prefix": "6036",
            "max_load": i64::MAX, "max_balance": i64::MAX
        });
        let answer = self.post("/v1/programs", body.to_string(), None).await;
        let program = self.expect_json(answer, 201, "creating the program").await?;
        program["id"]
            .as_str()
            .map(str::to_owned)
            .context("the program has no id")
    }

    /// Issues `count` active virtual cards holding `balance` each, [`SETUP_CONCURRENCY`] at a
    /// time.
    pub async fn create_cards(
        &self,
        program_id: &str,
        count: usize,
        balance: i64,
    ) -> anyhow::Result<Vec<String>> {
        let bar = ProgressBar::new(count as u64).with_prefix("cards");
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let body = json!({"program_id": program_id, "kind": "virtual", "amount": balance}).to_string();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..SETUP_CONCURRENCY.min(count.max(1)) {
            let api = self.clone();
            let next = next.clone();
            let body = body.clone();
            let bar = bar.clone();
            tasks.spawn(async move {
                let mut made = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return Ok::<_, anyhow::Error>(made);
                    }
                    let answer = api.post("/v1/cards", body.clone(), None).await;
                    let card = api.expect_json(answer, 201, "creating a card").await?;
                    let id = card["id"].as_str().context("a card has no id")?.to_owned();
                    made.push((index, id));
                    bar.inc(1);
                }
            });
        }
        let mut ids = vec![String::new(); count];
        while let Some(joined) = tasks.join_next().await {
            for (index, id) in joined.context("a setup task panicked")?? {
                ids[index] = id;
            }
        }
        bar.finish_and_clear();
        Ok(ids)
    }

    /// Every card of the program with its balance and held amount, page by page.
    pub async fn card_balances(&self, program_id: &str) -> anyhow::Result<Vec<CardBalance>> {
        let mut cards = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: the pages can never outnumber the cards the benchmark made, plus one.
        for _ in 0..=(1_000_000 / PAGE_SIZE) {
            let mut path = format!("/v1/cards?program_id={program_id}&limit={PAGE_SIZE}");
            if let Some(cursor) = &cursor {
                path.push_str("&cursor=");
                path.push_str(cursor);
            }
            let page = self.get(&path).await;
            let page = self.expect_json(page, 200, "listing cards").await?;
            for card in page["data"].as_array().context("a card list has no data")? {
                cards.push(CardBalance {
                    id: card["id"].as_str().unwrap_or_default().to_owned(),
                    balance: card["balance"].as_i64().context("a card has no balance")?,
                    held: card["held"].as_i64().context("a card has no held amount")?,
                });
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(cards),
            }
        }
        bail!("listing cards did not end")
    }
}

pub struct CardBalance {
    pub id: String,
    pub balance: i64,
    pub held: i64,
}

/// The benchmark's own books: per card, what it started with, the debits giftd acknowledged
/// (a 200 to a redemption or capture) and the debits whose outcome is unknown (5xx or no
/// answer).
pub struct Cards {
    pub ids: Vec<String>,
    pub program_id: String,
    pub starting_balance: Vec<i64>,
    pub acknowledged: Vec<AtomicI64>,
    pub uncertain: Vec<AtomicI64>,
}

impl Cards {
    pub fn new(program_id: String, ids: Vec<String>, starting_balance: Vec<i64>) -> Self {
        let zeros = || ids.iter().map(|_| AtomicI64::new(0)).collect();
        Self {
            acknowledged: zeros(),
            uncertain: zeros(),
            ids,
            program_id,
            starting_balance,
        }
    }

    pub fn acknowledge(&self, index: usize, amount: i64) {
        self.acknowledged[index].fetch_add(amount, Ordering::Relaxed);
    }

    pub fn uncertain(&self, index: usize, amount: i64) {
        self.uncertain[index].fetch_add(amount, Ordering::Relaxed);
    }

    /// Compares giftd's balances with the books. Each card must: have non-negative available
    /// value; not have been debited more than it started with (no overdraw); have been
    /// debited at least what giftd acknowledged (no lost acknowledged write); and at most that
    /// plus the uncertain debits (nothing debited that nobody asked for).
    pub fn check(&self, balances: &[CardBalance]) -> Vec<String> {
        let mut problems = Vec::new();
        let by_id: std::collections::HashMap<&str, &CardBalance> =
            balances.iter().map(|c| (c.id.as_str(), c)).collect();
        for (index, id) in self.ids.iter().enumerate() {
            let Some(card) = by_id.get(id.as_str()) else {
                problems.push(format!("card {id} is missing from the card list"));
                continue;
            };
            let start = self.starting_balance[index];
            let acknowledged = self.acknowledged[index].load(Ordering::Relaxed);
            let uncertain = self.uncertain[index].load(Ordering::Relaxed);
            let debited = start - card.balance;
            if card.held < 0 || card.balance - card.held < 0 {
                problems.push(format!(
                    "card {id}: negative available value (balance {}, held {})",
                    card.balance, card.held
                ));
            }
            if acknowledged > start || debited > start {
                problems.push(format!(
                    "card {id} OVERDRAWN: started with {start}, acknowledged debits {acknowledged}, ledger debits {debited}"
                ));
            }
            if debited < acknowledged {
                problems.push(format!(
                    "card {id}: giftd acknowledged {acknowledged} of debits but its balance shows only {debited}"
                ));
            }
            if debited > acknowledged + uncertain {
                problems.push(format!(
                    "card {id}: balance shows {debited} debited, more than acknowledged {acknowledged} + uncertain {uncertain}"
                ));
            }
            if problems.len() >= 20 {
                problems.push("(more problems not shown)".into());
                break;
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards() -> Cards {
        Cards::new("prog".into(), vec!["a".into(), "b".into()], vec![100, 100])
    }

    fn balance(id: &str, balance: i64) -> CardBalance {
        CardBalance {
            id: id.into(),
            balance,
            held: 0,
        }
    }

    #[test]
    fn check_accepts_balances_that_match_the_books() {
        let books = cards();
        books.acknowledge(0, 30);
        books.uncertain(1, 5);
        assert!(books.check(&[balance("a", 70), balance("b", 95)]).is_empty());
        assert!(books.check(&[balance("a", 70), balance("b", 100)]).is_empty());
    }

    #[test]
    fn check_refuses_a_lost_acknowledged_debit() {
        let books = cards();
        books.acknowledge(0, 30);
        let problems = books.check(&[balance("a", 80), balance("b", 100)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn check_refuses_an_overdraw() {
        let books = cards();
        books.acknowledge(0, 130);
        let problems = books.check(&[balance("a", 0), balance("b", 100)]);
        assert!(problems.iter().any(|p| p.contains("OVERDRAWN")), "{problems:?}");
    }

    #[test]
    fn check_refuses_a_debit_nobody_asked_for_and_a_missing_card() {
        let books = cards();
        let problems = books.check(&[balance("a", 90)]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
