//! The load drivers. Closed loop: a fixed number of workers, each sending its next operation as
//! soon as the last one is answered; latency is measured from the send. Open loop: operations
//! are scheduled at fixed intended times (a fixed arrival rate), and latency is measured from
//! the intended time, not from when a worker got round to sending, so that a server falling
//! behind shows as queueing in the latency instead of silently lowering the offered load
//! (coordinated omission). Every run is bounded in time, and optionally in count.
//!
//! It records and books what giftd answered; the checks are elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{Answer, Api, Cards};

/// Largest latency the histograms hold (a minute, in microseconds); longer is clamped.
const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// Error answers kept as samples per run.
const ERROR_SAMPLES: usize = 5;
/// After the measured window, how long answers still in flight are awaited before the run
/// gives up on them (they count as transport errors).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST /v1/cards/{id}/redeem`.
    Redeem,
    /// `POST /v1/cards/{id}/holds`, then `POST /v1/holds/{id}/capture` of all of it.
    HoldThenCapture,
}

#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// Uniformly random over the first `count` cards.
    Spread { count: usize },
    /// Always this card.
    One(usize),
}

#[derive(Debug, Clone, Copy)]
pub enum Pace {
    Closed {
        concurrency: u32,
    },
    Open {
        rate_per_second: f64,
        max_in_flight: u32,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub label: String,
    pub workload: Workload,
    pub pick: Pick,
    pub pace: Pace,
    pub amount: i64,
    pub warmup: Duration,
    pub duration: Duration,
    /// Stop after this many operations in all (closed loop only), even before the duration.
    pub budget: Option<u64>,
    /// Makes the idempotency keys of this run unique within the invocation.
    pub run_id: u64,
    /// Whether each operation carries an `Idempotency-Key`.
    pub idempotency_keys: bool,
    /// Operations of the measured window that took at least this long are listed one by one
    /// in [`Measured::slow`] (`--slow-log`).
    pub slow_after: Option<Duration>,
}

/// One operation slower than the plan's `slow_after`: when it was meant to start (an open loop
/// counts from its slot, not from a late send), and how long it took.
pub struct SlowOperation {
    pub intended: std::time::SystemTime,
    pub latency: Duration,
}

/// What a run measured (warm-up excluded, except in `refusal_codes` and the books).
pub struct Measured {
    pub histogram: Histogram<u64>,
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub transport_errors: u64,
    pub measured_seconds: f64,
    pub error_samples: Vec<String>,
    /// Counts of 4xx error codes over the whole run, warm-up included.
    pub refusal_codes: Vec<(String, u64)>,
    /// 5xx and transport errors over the whole run, warm-up included.
    pub unclean_total: u64,
    /// Operations answered in the whole run, warm-up and errors included.
    pub operations_total: u64,
    /// The successful operations of the window slower than the plan's `slow_after`, by start.
    pub slow: Vec<SlowOperation>,
}

impl Measured {
    pub fn throughput(&self) -> f64 {
        if self.measured_seconds > 0.0 {
            self.ok as f64 / self.measured_seconds
        } else {
            0.0
        }
    }
}

enum Outcome {
    Ok,
    Refused { code: String, sample: String },
    ServerError(String),
    Transport(String),
}

/// A small, fast generator for picking cards (SplitMix64); quality is ample for that.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

struct Worker {
    api: Api,
    cards: Arc<Cards>,
    plan: Arc<Plan>,
    rng: Rng,
    id: u64,
    sequence: u64,
    /// Operations answered (or failed) by this worker, warm-up included.
    sequence_done: u64,
    histogram: Histogram<u64>,
    ok: u64,
    client_errors: u64,
    server_errors: u64,
    transport_errors: u64,
    unclean_total: u64,
    samples: Vec<String>,
    refusal_codes: Vec<(String, u64)>,
    last_completion: Option<Instant>,
    live: Arc<LiveCounters>,
    /// Slow operations: when each started (or was meant to) and how long it took.
    slow: Vec<(Instant, Duration)>,
}

#[derive(Default)]
struct LiveCounters {
    ok: AtomicU64,
    errors: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("valid histogram bounds")
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn sample(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(200).collect();
    format!("HTTP {status}: {text}")
}

impl Worker {
    fn new(api: &Api, cards: &Arc<Cards>, plan: &Arc<Plan>, id: u64, live: &Arc<LiveCounters>) -> Self {
        Self {
            api: api.clone(),
            cards: cards.clone(),
            plan: plan.clone(),
            rng: Rng(plan.run_id.wrapping_mul(1_000_003).wrapping_add(id)),
            id,
            sequence: 0,
            sequence_done: 0,
            histogram: histogram(),
            ok: 0,
            client_errors: 0,
            server_errors: 0,
            transport_errors: 0,
            unclean_total: 0,
            samples: Vec::new(),
            refusal_codes: Vec::new(),
            last_completion: None,
            live: live.clone(),
            slow: Vec::new(),
        }
    }

    fn next_key(&mut self) -> Option<String> {
        self.sequence += 1;
        self.plan
            .idempotency_keys
            .then(|| format!("bench-{}-{}-{}", self.plan.run_id, self.id, self.sequence))
    }

    fn pick(&mut self) -> usize {
        match self.plan.pick {
            Pick::Spread { count } => self.rng.below(count),
            Pick::One(index) => index,
        }
    }

    /// One operation, booked: acknowledged debits on success, uncertain ones when the outcome
    /// is unknown.
    async fn operate(&mut self) -> Outcome {
        let index = self.pick();
        let amount = self.plan.amount;
        let body = format!("{{\"amount\":{amount}}}");
        match self.plan.workload {
            Workload::Redeem => {
                let key = self.next_key();
                let path = format!("/v1/cards/{}/redeem", self.cards.ids[index]);
                let answer = self.api.post(&path, body, key.as_deref()).await;
                self.book_debit(index, amount, answer, 200)
            }
            Workload::HoldThenCapture => {
                let key = self.next_key();
                let path = format!("/v1/cards/{}/holds", self.cards.ids[index]);
                let hold_id = match self.api.post(&path, body, key.as_deref()).await {
                    Answer::Http { status: 201, body } => {
                        match serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_owned))
                        {
                            Some(id) => id,
                            None => return Outcome::ServerError(sample(201, &body)),
                        }
                    }
                    // A hold alone debits nothing: its outcome does not touch the books.
                    Answer::Http { status, body } if status < 500 => {
                        return Outcome::Refused {
                            code: error_code(&body),
                            sample: sample(status, &body),
                        };
                    }
                    Answer::Http { status, body } => return Outcome::ServerError(sample(status, &body)),
                    Answer::Transport(error) => return Outcome::Transport(error),
                };
                let key = self.next_key();
                let path = format!("/v1/holds/{hold_id}/capture");
                let answer = self.api.post(&path, "{}".into(), key.as_deref()).await;
                self.book_debit(index, amount, answer, 200)
            }
        }
    }

    fn book_debit(&self, index: usize, amount: i64, answer: Answer, success: u16) -> Outcome {
        match answer {
            Answer::Http { status, .. } if status == success => {
                self.cards.acknowledge(index, amount);
                Outcome::Ok
            }
            Answer::Http { status, body } if status < 500 => Outcome::Refused {
                code: error_code(&body),
                sample: sample(status, &body),
            },
            Answer::Http { status, body } => {
                self.cards.uncertain(index, amount);
                Outcome::ServerError(sample(status, &body))
            }
            Answer::Transport(error) => {
                self.cards.uncertain(index, amount);
                Outcome::Transport(error)
            }
        }
    }

    fn record(&mut self, outcome: Outcome, started: Instant, measured_from: Instant) {
        let now = Instant::now();
        self.sequence_done += 1;
        let in_window = started >= measured_from;
        let keep_sample = |samples: &mut Vec<String>, text: String| {
            if samples.len() < ERROR_SAMPLES {
                samples.push(text);
            }
        };
        match outcome {
            Outcome::Ok => {
                self.live.ok.fetch_add(1, Ordering::Relaxed);
                if in_window {
                    self.ok += 1;
                    let latency = now - started;
                    let us = latency.as_micros().clamp(1, u128::from(HISTOGRAM_MAX_US)) as u64;
                    self.histogram.saturating_record(us);
                    if self.plan.slow_after.is_some_and(|limit| latency >= limit) {
                        self.slow.push((started, latency));
                    }
                    self.last_completion = Some(now);
                }
            }
            Outcome::Refused { code, sample } => {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                match self.refusal_codes.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => self.refusal_codes.push((code, 1)),
                }
                if in_window {
                    self.client_errors += 1;
                }
                keep_sample(&mut self.samples, sample);
            }
            Outcome::ServerError(text) => {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                self.unclean_total += 1;
                if in_window {
                    self.server_errors += 1;
                }
                keep_sample(&mut self.samples, text);
            }
            Outcome::Transport(text) => {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                self.unclean_total += 1;
                if in_window {
                    self.transport_errors += 1;
                }
                keep_sample(&mut self.samples, format!("transport: {text}"));
            }
        }
    }
}

/// Runs the plan and returns what it measured.
pub async fn run(api: &Api, cards: &Arc<Cards>, plan: Plan) -> Measured {
    let plan = Arc::new(plan);
    let live = Arc::new(LiveCounters::default());
    let started = Instant::now();
    let measured_from = started + plan.warmup;
    let deadline = measured_from + plan.duration;
    let budget = Arc::new(AtomicU64::new(0));
    let next_slot = Arc::new(AtomicU64::new(0));
    let workers = match plan.pace {
        Pace::Closed { concurrency } => concurrency.max(1),
        Pace::Open { max_in_flight, .. } => max_in_flight.max(1),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..u64::from(workers) {
        let mut worker = Worker::new(api, cards, &plan, id, &live);
        let budget = budget.clone();
        let next_slot = next_slot.clone();
        tasks.spawn(async move {
            match worker.plan.pace {
                Pace::Closed { .. } => loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    if let Some(limit) = worker.plan.budget
                        && budget.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        break;
                    }
                    let outcome = worker.operate().await;
                    worker.record(outcome, now, measured_from);
                },
                Pace::Open { rate_per_second, .. } => {
                    let interval = Duration::from_secs_f64(1.0 / rate_per_second.max(0.001));
                    loop {
                        let slot = next_slot.fetch_add(1, Ordering::Relaxed);
                        let Some(intended) = u32::try_from(slot)
                            .ok()
                            .and_then(|slot| interval.checked_mul(slot))
                            .map(|offset| started + offset)
                        else {
                            break;
                        };
                        if intended >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(intended.into()).await;
                        let outcome = worker.operate().await;
                        // From the intended time: a late send is the server's queue too.
                        worker.record(outcome, intended, measured_from);
                    }
                }
            }
            worker
        });
    }

    let bar = progress_bar(&plan);
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let bar = bar.clone();
        let live = live.clone();
        let done = done.clone();
        let total = plan.warmup + plan.duration;
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = started.elapsed().min(total);
                let ok = live.ok.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (ok - last.1) as f64 / (now - last.0).as_secs_f64().max(0.001);
                last = (now, ok);
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(format!("{ok} ok, {errors} errors, {rate:.0}/s now"));
            }
        })
    };

    let mut merged = Measured {
        histogram: histogram(),
        ok: 0,
        client_errors: 0,
        server_errors: 0,
        transport_errors: 0,
        measured_seconds: 0.0,
        error_samples: Vec::new(),
        refusal_codes: Vec::new(),
        unclean_total: 0,
        operations_total: 0,
        slow: Vec::new(),
    };
    let mut last_completion: Option<Instant> = None;
    let mut slow: Vec<(Instant, Duration)> = Vec::new();
    let give_up = tokio::time::Instant::from(deadline + DRAIN_TIMEOUT);
    loop {
        let joined = match tokio::time::timeout_at(give_up, tasks.join_next()).await {
            Ok(Some(joined)) => joined,
            Ok(None) => break,
            Err(_) => {
                // Workers still waiting for an answer this long after the window: count them
                // as transport errors and stop them; their effects, if any, are uncertain.
                let stuck = tasks.len() as u64;
                merged.transport_errors += stuck;
                merged.unclean_total += stuck;
                merged.error_samples.push(format!(
                    "{stuck} operation(s) unanswered {} s after the run",
                    DRAIN_TIMEOUT.as_secs()
                ));
                tasks.abort_all();
                break;
            }
        };
        let Ok(worker) = joined else { continue };
        let _ = merged.histogram.add(&worker.histogram);
        merged.ok += worker.ok;
        merged.client_errors += worker.client_errors;
        merged.server_errors += worker.server_errors;
        merged.transport_errors += worker.transport_errors;
        merged.unclean_total += worker.unclean_total;
        merged.operations_total += worker.sequence_done;
        for text in worker.samples {
            if merged.error_samples.len() < ERROR_SAMPLES {
                merged.error_samples.push(text);
            }
        }
        for (code, n) in worker.refusal_codes {
            match merged.refusal_codes.iter_mut().find(|(c, _)| *c == code) {
                Some((_, total)) => *total += n,
                None => merged.refusal_codes.push((code, n)),
            }
        }
        last_completion = last_completion.max(worker.last_completion);
        slow.extend(worker.slow);
    }
    slow.sort_by_key(|(started, _)| *started);
    let (now, wall_now) = (Instant::now(), std::time::SystemTime::now());
    merged.slow = slow
        .into_iter()
        .map(|(started, latency)| SlowOperation {
            intended: wall_now - now.saturating_duration_since(started),
            latency,
        })
        .collect();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    bar.finish_and_clear();
    merged.measured_seconds = last_completion.map_or(0.0, |last| {
        last.saturating_duration_since(measured_from).as_secs_f64()
    });
    // A closed-loop run that ends by its duration is measured over the whole window, so that a
    // slow last answer does not make the rate look better than it was.
    if plan.budget.is_none() {
        merged.measured_seconds = merged.measured_seconds.max(plan.duration.as_secs_f64());
    }
    merged
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    let total = (plan.warmup + plan.duration).as_millis() as u64;
    let bar = ProgressBar::new(total).with_prefix(plan.label.clone());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{elapsed_precise}] {bar:25} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_below_its_bound_and_covers_it() {
        let mut rng = Rng(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let n = rng.below(10);
            assert!(n < 10);
            seen[n] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn error_code_reads_the_error_envelope() {
        let body = br#"{"error":{"code":"insufficient_funds","message":"x"}}"#;
        assert_eq!(error_code(body), "insufficient_funds");
        assert_eq!(error_code(b"not json"), "unknown");
    }
}
