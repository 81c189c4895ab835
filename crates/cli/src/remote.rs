//! `giftd cards generate|import|collect --server URL`: card stock made by a running server,
//! the command line its client over the native API (`/v1/card_batches`), so that printing
//! cards needs no downtime. The credential comes from `GIFTD_API_KEY` (an API key of scope
//! `full`, or a staff session token of an owner or admin), never from a flag that `ps` shows.
//!
//! A generation of N cards is made as batches of at most
//! [`MAX_SERVED_BATCH_CARDS`] (the progress bar moves per batch). For each batch, in this
//! order: the server commits the cards with their printer's file (encrypted); the file is
//! fetched, checked against its SHA-256, appended to `<out>.partial` and fsynced; only then is
//! the server told to drop it (`DELETE .../file?sha256=`). At the end the partial file is
//! renamed to `<out>`. A run cut short leaves `<out>.partial` holding every batch made so far,
//! whole, and at most one batch's file still on the server, which `giftd cards collect` fetches.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use giftd_service::stock::{MAX_SERVED_BATCH_CARDS, PRINTER_HEADER, digest};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::stock::{create_secret_file, partial_path, progress, spinner, sync_parent};

/// The variable holding the credential for `--server`.
pub const API_KEY_VARIABLE: &str = "GIFTD_API_KEY";
/// How long one request may take: a batch of 10,000 cards, generated or imported.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Batches a run is cut into at least, so that the progress bar moves (each of at least
/// [`MIN_BATCH_CARDS`] cards, at most [`MAX_SERVED_BATCH_CARDS`]).
const PROGRESS_STEPS: usize = 20;
const MIN_BATCH_CARDS: usize = 500;

/// A running giftd and the credential to use it.
pub struct Remote {
    client: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
}

/// A batch as the server describes it.
struct Batch {
    id: String,
    cards: i64,
    value: i64,
    sha256: Option<String>,
}

impl Batch {
    fn read(json: &Value) -> anyhow::Result<Self> {
        let id = json["id"]
            .as_str()
            .context("the server's answer has no batch id")?
            .to_owned();
        Ok(Self {
            id,
            cards: json["cards"].as_i64().unwrap_or_default(),
            value: json["value"].as_i64().unwrap_or_default(),
            sha256: json["file"]["sha256"].as_str().map(str::to_owned),
        })
    }
}

impl Remote {
    /// The server at `server` (`http://host:port` or `https://...`), with the credential of
    /// [`API_KEY_VARIABLE`].
    pub fn new(server: &str) -> anyhow::Result<Self> {
        let token = Zeroizing::new(std::env::var(API_KEY_VARIABLE).with_context(|| {
            format!("--server needs {API_KEY_VARIABLE}: an API key of scope full, or an owner's or admin's session token")
        })?);
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server must be an http:// or https:// address (got {server:?})");
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Self { client, base, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
    }

    /// Sends a request; a refusal becomes an error saying the server's code and message.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach giftd at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("unknown");
        let message = body["error"]["message"].as_str().unwrap_or("(no message)");
        bail!("the server refused ({status}, {code}): {message}")
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let json = response.json().await.context("the server's answer is not JSON")?;
        Ok((status, json))
    }

    /// Fetches a batch's printer's file and checks it against the digest the batch names.
    async fn file(&self, batch: &Batch) -> anyhow::Result<Vec<u8>> {
        let expected = batch
            .sha256
            .as_deref()
            .with_context(|| format!("batch {} has no printer's file", batch.id))?;
        let response = self
            .send(self.request(
                reqwest::Method::GET,
                &format!("/v1/card_batches/{}/file", batch.id),
            ))
            .await?;
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("the printer's file of {} was cut off", batch.id))?;
        if hex::encode(digest(&bytes)) != expected {
            bail!(
                "the printer's file of {} arrived damaged (its SHA-256 is not {expected}); it is kept on the server: giftd cards collect --batch {}",
                batch.id,
                batch.id
            );
        }
        Ok(bytes.to_vec())
    }

    /// Tells the server the file is safe here: it drops it and keeps its digest.
    async fn collected(&self, batch: &Batch) -> anyhow::Result<()> {
        let sha256 = batch.sha256.as_deref().unwrap_or_default();
        self.send(self.request(
            reqwest::Method::DELETE,
            &format!("/v1/card_batches/{}/file?sha256={sha256}", batch.id),
        ))
        .await?;
        Ok(())
    }
}

/// Appends a printer's file (without its header line) to `out` and makes it durable.
fn append(out: &mut std::fs::File, file: &[u8]) -> anyhow::Result<()> {
    let body = match file.iter().position(|b| *b == b'\n') {
        Some(end) => &file[end + 1..],
        None => &[][..],
    };
    out.write_all(body)?;
    out.sync_all()?;
    Ok(())
}

/// A query value with everything but an id's characters percent-encoded.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Cards per batch for a run of `count`.
fn batch_size(count: usize) -> usize {
    (count / PROGRESS_STEPS).clamp(MIN_BATCH_CARDS, MAX_SERVED_BATCH_CARDS)
}

pub async fn generate(remote: &Remote, program: &str, count: usize, out: &Path) -> anyhow::Result<ExitCode> {
    let partial = partial_path(out);
    if out.exists() {
        bail!("{} already exists; card stock goes to a new file", out.display());
    }
    if partial.exists() {
        bail!(
            "{} exists: an earlier run stopped. Its cards exist; see docs/OPERATIONS.md (\"Card stock\"), then move it away",
            partial.display()
        );
    }
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let started = Instant::now();
    let mut file = create_secret_file(&partial)?;
    writeln!(file, "{PRINTER_HEADER}")?;
    // Unique to this run: a retried request of it is recognised by the server.
    let run = format!(
        "giftd-cards-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let bar = progress(count as u64, "generating");
    let mut made: Vec<String> = Vec::new();
    let mut done = 0usize;
    let size = batch_size(count);
    while done < count {
        let n = size.min(count - done);
        let step = async {
            let (_, json) = remote
                .json(
                    remote
                        .request(reqwest::Method::POST, "/v1/card_batches")
                        .header("Idempotency-Key", format!("{run}-{}", made.len()))
                        .json(&serde_json::json!({"program_id": program, "count": n})),
                )
                .await?;
            let batch = Batch::read(&json)?;
            let printed = remote.file(&batch).await?;
            append(&mut file, &printed).with_context(|| format!("cannot write {}", partial.display()))?;
            remote.collected(&batch).await?;
            anyhow::Ok(batch)
        };
        match step.await {
            Ok(batch) => made.push(batch.id),
            Err(error) => {
                bar.finish_and_clear();
                return Err(cut_short(error, &partial, &made));
            }
        }
        done += n;
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    drop(file);
    std::fs::rename(&partial, out).with_context(|| {
        format!(
            "the cards were created, but {} could not be renamed to {}: rename it by hand",
            partial.display(),
            out.display()
        )
    })?;
    sync_parent(out);
    println!(
        "generated {count} inactive physical cards of {program} through {} in {} batch(es) ({}) in {:.1} s; numbers and security codes are in {} (mode 0600) and nowhere else in clear: hand it to the printer, then destroy it",
        remote.base,
        made.len(),
        made.join(", "),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What a run cut short left, for its error.
fn cut_short(error: anyhow::Error, partial: &Path, made: &[String]) -> anyhow::Error {
    if made.is_empty() {
        let _ = std::fs::remove_file(partial);
        return error.context("no batch was completed here (the file was removed); a batch the server made meanwhile keeps its printer's file until `giftd cards collect`");
    }
    error.context(format!(
        "stopped after {} batch(es) ({}): their cards exist and are all in {}; a batch begun after them may keep its printer's file on the server (giftd cards collect)",
        made.len(),
        made.join(", "),
        partial.display()
    ))
}

pub async fn collect(remote: &Remote, batch: &str, out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        bail!(
            "{} already exists; the printer's file goes to a new file",
            out.display()
        );
    }
    let (_, json) = remote
        .json(remote.request(reqwest::Method::GET, &format!("/v1/card_batches/{batch}")))
        .await?;
    let batch = Batch::read(&json)?;
    let printed = remote.file(&batch).await?;
    let partial = partial_path(out);
    let mut file = create_secret_file(&partial)?;
    file.write_all(&printed)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    sync_parent(out);
    remote.collected(&batch).await?;
    println!(
        "collected the printer's file of {} ({} cards) into {} (mode 0600); the server keeps only its SHA-256 now",
        batch.id,
        batch.cards,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(remote: &Remote, program: &str, path: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bar = spinner("importing");
    let answer = remote
        .send(
            remote
                .request(
                    reqwest::Method::POST,
                    &format!("/v1/card_batches/import?program_id={}", query_value(program)),
                )
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .body(bytes),
        )
        .await;
    bar.finish_and_clear();
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            eprintln!("giftd: {}: {error:#}", path.display());
            eprintln!(
                "giftd: a refused file imports nothing; after a lost connection run the same command again, which recognises a file already imported"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = response.status().as_u16();
    let json: Value = response.json().await.context("the server's answer is not JSON")?;
    let batch = Batch::read(&json)?;
    if status == 200 {
        println!(
            "{} was already imported as batch {} ({} cards, {} minor units); nothing done",
            path.display(),
            batch.id,
            batch.cards,
            batch.value
        );
    } else {
        println!(
            "imported {} cards into {program} through {} as batch {} with {} minor units of balance ({:.1} s)",
            batch.cards,
            remote.base,
            batch.id,
            batch.value,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_cut_into_about_twenty_batches_within_the_servers_limit() {
        assert_eq!(batch_size(100), MIN_BATCH_CARDS);
        assert_eq!(batch_size(40_000), 2_000);
        assert_eq!(batch_size(1_000_000), MAX_SERVED_BATCH_CARDS);
    }
}
