//! `giftd report ...` and `giftd cards generate|import`: the finance reports as CSV (or JSON)
//! and card stock in bulk, run against the configured database without a server. This module
//! reads and writes files and draws progress bars; the figures, checks and card rows come from
//! the service.
//!
//! Order of a generation, so that there is never a printer's file without its cards nor
//! cards without their file: every card is prepared, the file is written in full to
//! `<out>.partial` (mode 0600) and fsynced, the batch is committed in one transaction, and
//! only then is the file renamed to `<out>` (and the folder fsynced). A failed commit deletes
//! the partial file. A crash between commit and rename leaves `<out>.partial`, complete, whose
//! cards exist; a crash before the commit leaves a `.partial` whose cards do not
//! (docs/OPERATIONS.md says how to tell).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use giftd_domain::{Date, MerchantId, ProgramId};
use giftd_service::Service;
use giftd_service::stock::{self, StockError};
use giftd_store::Page;
use indicatif::{ProgressBar, ProgressStyle};

/// Dormant cards fetched per query while the CLI pages through them all.
const DORMANT_PAGE: u32 = 1000;

pub(crate) fn progress(length: u64, what: &str) -> ProgressBar {
    // Hidden when stderr is not a terminal, so scripts and logs get no control characters.
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

pub(crate) fn spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

pub fn merchant(value: Option<&str>) -> anyhow::Result<Option<MerchantId>> {
    value
        .map(|text| {
            MerchantId::parse(text).with_context(|| format!("{text:?} is not a merchant id (mer_...)"))
        })
        .transpose()
}

pub fn date(value: Option<&str>, flag: &str) -> anyhow::Result<Date> {
    match value {
        Some(text) => {
            Date::parse(text).with_context(|| format!("--{flag} must be a date, YYYY-MM-DD (got {text:?})"))
        }
        None => Ok(Date::of(giftd_domain::Timestamp::from_unix_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        ))),
    }
}

pub async fn liability(
    service: &Service,
    merchant: Option<&MerchantId>,
    as_of: Date,
    csv: bool,
) -> anyhow::Result<()> {
    let lines = service.liability_report(merchant, as_of).await?;
    let mut out = std::io::stdout().lock();
    if csv {
        writeln!(out, "as_of,merchant_id,program_id,currency,cards,liability_minor")?;
        for l in &lines {
            writeln!(
                out,
                "{as_of},{},{},{},{},{}",
                l.merchant_id, l.program_id, l.currency, l.cards, l.liability_minor
            )?;
        }
    } else {
        let data: Vec<_> = lines
            .iter()
            .map(|l| {
                serde_json::json!({"merchant_id": l.merchant_id.as_str(), "program_id": l.program_id.as_str(),
                    "currency": l.currency, "cards": l.cards, "liability": l.liability_minor})
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"as_of": as_of.to_string(), "data": data})
        )?;
    }
    Ok(())
}

pub async fn activity(
    service: &Service,
    merchant: Option<&MerchantId>,
    from: Date,
    to: Date,
    csv: bool,
) -> anyhow::Result<()> {
    let lines = service.activity_report(merchant, from, to).await?;
    let mut out = std::io::stdout().lock();
    if csv {
        writeln!(
            out,
            "date,merchant_id,program_id,currency,type,count,amount_minor"
        )?;
        for l in &lines {
            writeln!(
                out,
                "{},{},{},{},{},{},{}",
                Date::from_days(l.day),
                l.merchant_id,
                l.program_id,
                l.currency,
                l.transaction_type.as_str(),
                l.count,
                l.amount_minor
            )?;
        }
    } else {
        let data: Vec<_> = lines
            .iter()
            .map(|l| {
                serde_json::json!({"date": Date::from_days(l.day).to_string(), "merchant_id": l.merchant_id.as_str(),
                    "program_id": l.program_id.as_str(), "currency": l.currency, "type": l.transaction_type.as_str(),
                    "count": l.count, "amount": l.amount_minor})
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"from": from.to_string(), "to": to.to_string(), "data": data})
        )?;
    }
    Ok(())
}

pub async fn dormant(
    service: &Service,
    merchant: Option<&MerchantId>,
    months: u32,
    as_of: Date,
    csv: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if csv {
        writeln!(
            out,
            "as_of,merchant_id,card_id,program_id,currency,state,balance_minor,last_activity_at"
        )?;
    }
    let mut data = Vec::new();
    let mut cursor = None;
    loop {
        let page = Page {
            limit: DORMANT_PAGE,
            cursor: cursor.take(),
        };
        let cards = service.dormant_report(merchant, months, as_of, &page).await?;
        for c in &cards {
            let last = Date::of(c.last_activity_at);
            if csv {
                writeln!(
                    out,
                    "{as_of},{},{},{},{},{},{},{last}",
                    c.merchant_id,
                    c.card_id,
                    c.program_id,
                    c.currency,
                    c.state.as_str(),
                    c.balance_minor
                )?;
            } else {
                data.push(
                    serde_json::json!({"merchant_id": c.merchant_id.as_str(), "card_id": c.card_id.as_str(),
                    "program_id": c.program_id.as_str(), "currency": c.currency, "state": c.state.as_str(),
                    "balance": c.balance_minor, "last_activity_at": last.to_string()}),
                );
            }
        }
        match cards.last() {
            Some(last) if cards.len() == DORMANT_PAGE as usize => cursor = Some(last.card_id.to_string()),
            _ => break,
        }
    }
    if !csv {
        writeln!(
            out,
            "{}",
            serde_json::json!({"as_of": as_of.to_string(), "months": months, "data": data})
        )?;
    }
    Ok(())
}

pub(crate) fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

/// A new file only readable by its owner: it holds clear card numbers and security codes.
pub(crate) fn create_secret_file(path: &Path) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

pub(crate) fn sync_parent(path: &Path) {
    // Makes the rename durable; not every platform can open a folder, and the data is already
    // safe in the file, so a failure here is not an error.
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

pub async fn generate(
    service: &Service,
    program: &str,
    count: usize,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let program =
        ProgramId::parse(program).with_context(|| format!("{program:?} is not a program id (prog_...)"))?;
    let partial = partial_path(out);
    if out.exists() {
        bail!("{} already exists; card stock goes to a new file", out.display());
    }
    if partial.exists() {
        bail!(
            "{} exists: an earlier generation stopped. See docs/OPERATIONS.md (\"Card stock\") to tell whether its cards were committed, then move it away",
            partial.display()
        );
    }
    let started = Instant::now();
    let bar = progress(count as u64, "preparing");
    let prepared = service
        .prepare_generated_stock(&program, count, &|done| bar.set_position(done))
        .await;
    bar.finish_and_clear();
    let prepared = prepared?;

    let file = create_secret_file(&partial)?;
    let written = (|| -> anyhow::Result<()> {
        let mut writer = BufWriter::new(&file);
        writeln!(writer, "{}", stock::PRINTER_HEADER)?;
        let bar = progress(count as u64, "writing");
        for (i, secret) in prepared.secrets.iter().enumerate() {
            writeln!(
                writer,
                "{}",
                stock::printer_line(secret, &prepared.program.id, &prepared.batch.id)
            )?;
            if i % 1000 == 0 {
                bar.set_position(i as u64);
            }
        }
        bar.finish_and_clear();
        writer.flush()?;
        drop(writer);
        file.sync_all()?;
        Ok(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error.context(format!("cannot write {}; no card was created", partial.display())));
    }

    let bar = spinner("committing");
    let committed = service.write_stock(&prepared).await;
    bar.finish_and_clear();
    if let Err(error) = committed {
        let _ = std::fs::remove_file(&partial);
        return Err(anyhow::Error::new(error)
            .context("the batch was not written (no card was created, the file was removed)"));
    }
    std::fs::rename(&partial, out).with_context(|| {
        format!(
            "the cards were created, but {} could not be renamed to {}: rename it by hand",
            partial.display(),
            out.display()
        )
    })?;
    sync_parent(out);
    println!(
        "generated {count} inactive physical cards of {} in batch {} ({:.1} s); numbers and security codes are in {} (mode 0600) and nowhere else in clear: hand it to the printer, then destroy it",
        prepared.program.id,
        prepared.batch.id,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(service: &Service, program: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let program =
        ProgramId::parse(program).with_context(|| format!("{program:?} is not a program id (prog_...)"))?;
    let started = Instant::now();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest = stock::digest(&bytes);
    let (merchant, _) = service.program_owner(&program).await?;
    if let Some(done) = service.completed_import(&merchant, &digest).await? {
        println!(
            "{} was already imported as batch {} ({} cards, {} minor units); nothing done",
            file.display(),
            done.id,
            done.cards,
            done.value_minor
        );
        return Ok(ExitCode::SUCCESS);
    }
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", file.display()))?;
    let rows = match stock::parse_import(&text) {
        Ok(rows) => rows,
        Err(error) => return refused(file, error),
    };
    let count = rows.len();
    let bar = progress(count as u64, "checking");
    let prepared = service
        .prepare_imported_stock(&program, rows, digest, &|done| {
            if done % 1000 == 0 {
                bar.set_position(done);
            }
        })
        .await;
    bar.finish_and_clear();
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return refused(file, error),
    };
    let bar = spinner("committing");
    let committed = service.write_stock(&prepared).await;
    bar.finish_and_clear();
    committed.context("the import was not written (nothing of it was kept)")?;
    println!(
        "imported {count} cards into {} as batch {} with {} minor units of balance ({:.1} s)",
        prepared.program.id,
        prepared.batch.id,
        prepared.value_minor(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn refused(file: &Path, error: StockError) -> anyhow::Result<ExitCode> {
    match error {
        StockError::Lines { lines, total } => {
            for line in &lines {
                eprintln!("{}: {line}", file.display());
            }
            if total > lines.len() {
                eprintln!("... and {} more", total - lines.len());
            }
            eprintln!(
                "giftd: nothing imported: {total} bad line(s) in {}",
                file.display()
            );
            Ok(ExitCode::FAILURE)
        }
        StockError::Service(error) => Err(error.into()),
        // Only a running server's batches have printer's files to collect.
        error @ (StockError::FileCollected | StockError::DigestMismatch) => Err(error.into()),
    }
}
