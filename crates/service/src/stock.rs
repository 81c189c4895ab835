//! Card stock in bulk: generating inactive physical cards for a card printer, and importing
//! cards migrated from another processor with their balances. A batch is prepared here in
//! memory (numbers drawn, encrypted, fingerprinted and hashed exactly as `POST /v1/cards`
//! does, imported balances decided by the domain as `issue` entries) and then written by the
//! store in one transaction: every card of the batch or none.
//!
//! The clear numbers and codes of a generated batch are handed back once, for the caller to
//! write to the printer's file; they are never logged. Reading and writing files is the CLI's
//! job, as is the order of file and commit (docs/OPERATIONS.md).

use std::collections::{HashMap, HashSet};

use giftd_domain::ledger::TransactionType;
use giftd_domain::operations::{self, CardSnapshot};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, CardState, Currency, Date, DomainError, MerchantId, Program,
    ProgramId, SecurityCode, Timestamp,
};
pub use giftd_store::{CardBatchRow, StockFileState};
use giftd_store::{
    CardRecord, IdempotencyRecord, Page, StockBatch, StockBatchRecord, StockCard, StockFile,
    StockIdempotency, StockSource, StoreError, TransactionRecord,
};
use sha2::{Digest, Sha256};

use crate::audit::{self, Ending};
use crate::job::{self, IdempotencyKey, Rendered};
use crate::{Service, ServiceError, ids};

/// Most cards in one batch: a batch is held in memory whole (about 1 KB a card while it is
/// prepared), and written in one transaction.
pub const MAX_STOCK_CARDS: usize = 1_000_000;
/// Rounds of redrawing numbers that collide with existing cards before giving up (a full
/// number space).
const NUMBER_ROUNDS: usize = 8;
/// Line errors reported at most; the rest are counted.
pub const MAX_REPORTED_LINE_ERRORS: usize = 20;
/// Most cards a running server generates in one request (`POST /v1/card_batches`). A batch is
/// one transaction beside the group commit, which on SQLite waits for it: 10,000 cards hold
/// the writer for a fraction of a second (docs/OPERATIONS.md "Card stock"), and the command
/// line asks for a larger run in batches of this size.
pub const MAX_SERVED_BATCH_CARDS: usize = 10_000;
/// Largest import file a running server takes in one request, bytes (10,000 cards of a wide
/// file).
pub const MAX_SERVED_IMPORT_BYTES: usize = 2 * 1024 * 1024;
/// Most cards of an import a running server writes in one request: an imported card writes
/// three more rows than a generated one (its `issue` and two postings), and the SQLite writer
/// waits for the whole transaction. A larger migration is split into files (each its own
/// batch, each recognised if run again), or imported with the server stopped.
pub const MAX_SERVED_IMPORT_CARDS: usize = 10_000;
/// The printer's file's first line; one line per card follows ([`printer_line`]).
pub const PRINTER_HEADER: &str = "card_id,number,security_code,program_id,expires_at,batch_id";

/// A generated card's secrets, for the card printer's file: here once, never stored in clear.
pub struct StockSecret {
    pub card_id: CardId,
    pub number: CardNumber,
    pub security_code: SecurityCode,
    pub expires_at: Option<Timestamp>,
}

/// A batch ready to write, with the secrets of generated cards (none for an import, whose
/// numbers the caller already has).
pub struct PreparedStock {
    pub batch: StockBatch,
    pub secrets: Vec<StockSecret>,
    pub program: Program,
}

impl PreparedStock {
    /// Sum of the imported balances, minor units.
    pub fn value_minor(&self) -> i64 {
        self.batch
            .cards
            .iter()
            .filter_map(|card| card.issue.as_ref().map(|(t, _)| t.amount))
            .sum()
    }
}

/// One problem of an import file, by its line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The file has bad rows; nothing was written. At most [`MAX_REPORTED_LINE_ERRORS`] are
    /// listed, `total` counts them all.
    #[error("{} bad line(s), nothing imported; first: {}", total, lines.first().map(ToString::to_string).unwrap_or_default())]
    Lines { lines: Vec<LineError>, total: usize },
    /// The batch's printer's file was collected: only its digest is left.
    #[error("this batch's printer's file was collected; only its SHA-256 is kept")]
    FileCollected,
    /// The digest a caller named is not the printer's file's: it does not have the file.
    #[error("`sha256` is not the SHA-256 of this batch's printer's file; the file is kept")]
    DigestMismatch,
}

/// One row of an import file, parsed.
#[derive(Clone)]
pub struct ImportRow {
    pub line: usize,
    pub number: CardNumber,
    pub security_code: SecurityCode,
    pub balance: Option<Amount>,
    pub currency: Option<Currency>,
    pub state: CardState,
    pub kind: CardKind,
    pub expires_at: Option<Timestamp>,
}

/// The columns an import file may have; `number` and `security_code` are required.
pub const IMPORT_COLUMNS: [&str; 7] = [
    "number",
    "security_code",
    "balance",
    "currency",
    "state",
    "kind",
    "expires_at",
];

/// SHA-256 of an import file: a completed import of the same bytes is recognised by it.
pub fn digest(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

struct Lines {
    errors: Vec<LineError>,
    total: usize,
}

impl Lines {
    fn push(&mut self, line: usize, message: impl Into<String>) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_LINE_ERRORS {
            self.errors.push(LineError {
                line,
                message: message.into(),
            });
        }
    }

    fn finish<T>(self, value: T) -> Result<T, StockError> {
        if self.total == 0 {
            Ok(value)
        } else {
            Err(StockError::Lines {
                lines: self.errors,
                total: self.total,
            })
        }
    }
}

/// Parses an import file: CSV (RFC 4180: fields may be quoted, a quoted field may hold a
/// comma or a quote doubled; a UTF-8 byte-order mark before the header is ignored, as
/// spreadsheets write one), a header naming the columns (any order, [`IMPORT_COLUMNS`]), then
/// one card per line. Blank lines are skipped; fields are trimmed. Every line is checked, and
/// every bad one is reported with its number; duplicate numbers within the file are refused
/// here too.
pub fn parse_import(text: &str) -> Result<Vec<ImportRow>, StockError> {
    let mut lines = Lines {
        errors: Vec::new(),
        total: 0,
    };
    let mut rows = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records().map(|record| {
        let start = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map(csv::Position::byte);
        (line_at(text, start), record)
    });
    let header = match records.next() {
        None => {
            lines.push(1, "the file is empty; it needs a header line");
            return lines.finish(rows);
        }
        Some((_, Err(error))) => {
            lines.push(1, format!("the header is not CSV: {error}"));
            return lines.finish(rows);
        }
        Some((_, Ok(header))) => header,
    };
    let columns: Vec<&str> = header.iter().collect();
    let mut index = HashMap::new();
    for (i, name) in columns.iter().enumerate() {
        if !IMPORT_COLUMNS.contains(name) {
            lines.push(
                1,
                format!(
                    "unknown column {name:?}; columns are {}",
                    IMPORT_COLUMNS.join(", ")
                ),
            );
        } else if index.insert(*name, i).is_some() {
            lines.push(1, format!("column {name:?} appears twice"));
        }
    }
    for required in ["number", "security_code"] {
        if !index.contains_key(required) {
            lines.push(1, format!("the header has no {required:?} column"));
        }
    }
    if lines.total > 0 {
        return lines.finish(rows);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, record) in records {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(line, |p| line_at(text, Some(p.byte())));
                lines.push(line, format!("not CSV: {error}"));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != columns.len() {
            lines.push(
                line,
                format!("{} fields, the header has {}", record.len(), columns.len()),
            );
            continue;
        }
        let field = |name: &str| {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        match parse_row(line, &field) {
            Ok(row) => {
                if let Some(first) = seen.insert(row.number.expose().to_owned(), line) {
                    lines.push(line, format!("the same card number is on line {first}"));
                } else {
                    rows.push(row);
                }
            }
            Err(message) => lines.push(line, message),
        }
    }
    lines.finish(rows)
}

/// The line (from 1, as an editor counts) of the record the CSV reader says starts at `byte`:
/// the reader may place a record's start before the line break that ends the previous one, and
/// before the blank lines it skips.
fn line_at(text: &str, byte: Option<u64>) -> usize {
    let Some(byte) = byte.and_then(|b| usize::try_from(b).ok()) else {
        return 0;
    };
    let start = text
        .as_bytes()
        .iter()
        .skip(byte)
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(text.len(), |skipped| byte + skipped);
    1 + text.as_bytes()[..start.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

fn parse_row<'a>(line: usize, field: &dyn Fn(&str) -> Option<&'a str>) -> Result<ImportRow, String> {
    let number = field("number")
        .and_then(CardNumber::parse)
        .ok_or("`number` must be 6 to 21 digits")?;
    let security_code = field("security_code")
        .and_then(SecurityCode::parse)
        .ok_or("`security_code` must be 3 to 16 letters or digits")?;
    let balance = match field("balance") {
        None | Some("0") => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .and_then(|minor| Amount::new(minor).ok())
                .ok_or("`balance` must be a non-negative integer of minor units")?,
        ),
    };
    let currency = match field("currency") {
        None => None,
        Some(code) => Some(Currency::parse(code).ok_or_else(|| format!("unknown currency {code:?}"))?),
    };
    let state = match field("state") {
        None => CardState::Active,
        Some(text) => CardState::parse(text).ok_or("`state` must be active, inactive or frozen")?,
    };
    let kind = match field("kind") {
        None => CardKind::Physical,
        Some(text) => CardKind::parse(text).ok_or("`kind` must be physical or virtual")?,
    };
    let expires_at = match field("expires_at") {
        None => None,
        Some(text) => Some(
            Date::parse(text)
                .ok_or("`expires_at` must be a date, YYYY-MM-DD")?
                .end(),
        ),
    };
    Ok(ImportRow {
        line,
        number,
        security_code,
        balance,
        currency,
        state,
        kind,
        expires_at,
    })
}

fn refusal(error: &DomainError) -> String {
    error.to_string()
}

/// Refuses a batch of an inactive program as a whole, before any number is drawn or any row
/// checked: it issues no new cards, generated or imported (`Program::check_issuing`).
fn check_issuing(program: &Program) -> Result<(), ServiceError> {
    program.check_issuing().map_err(|error| ServiceError::Invalid {
        param: "program",
        message: format!("{}: {}", program.id, refusal(&error)),
    })
}

/// One card's line of the printer's file (without its line break).
pub fn printer_line(secret: &StockSecret, program: &ProgramId, batch_id: &str) -> String {
    let expires = secret
        .expires_at
        .map(|at| Date::of(at).to_string())
        .unwrap_or_default();
    format!(
        "{},{},{},{program},{expires},{batch_id}",
        secret.card_id,
        secret.number.expose(),
        secret.security_code.expose(),
    )
}

/// A generated batch's whole printer's file: [`PRINTER_HEADER`], then a line per card.
pub fn printer_file(prepared: &PreparedStock) -> Vec<u8> {
    let mut file = String::with_capacity(64 * (prepared.secrets.len() + 1));
    file.push_str(PRINTER_HEADER);
    file.push('\n');
    for secret in &prepared.secrets {
        file.push_str(&printer_line(secret, &prepared.program.id, &prepared.batch.id));
        file.push('\n');
    }
    file.into_bytes()
}

/// What `POST /v1/card_batches` asks a running server for.
pub enum NewCardBatch {
    /// `count` new inactive physical cards, their numbers and codes in a printer's file.
    Generate { program: ProgramId, count: usize },
    /// The cards of an import file (`giftd cards import`'s format), as its bytes.
    Import { program: ProgramId, file: Vec<u8> },
}

/// How a front-end answers a batch: `created` is false for an import file already imported.
pub type BatchRenderer<'a> = &'a (dyn Fn(&CardBatchRow, bool) -> Rendered + Sync);

impl Service {
    /// Makes a card batch on a running server, every card of it or none, in one transaction
    /// with the printer's file (encrypted, for a generated batch), the request's audit row and
    /// its idempotency record. A retry with the same Idempotency-Key gets the first answer; an
    /// import file already imported answers with its batch (`created` false) and writes
    /// nothing.
    pub async fn create_card_batch(
        &self,
        merchant: &MerchantId,
        new: NewCardBatch,
        idempotency: Option<IdempotencyKey>,
        render: BatchRenderer<'_>,
    ) -> Result<Rendered, StockError> {
        if let Some(replayed) = self.replayed_batch(merchant, idempotency.as_ref()).await? {
            return Ok(replayed);
        }
        let (program, operation) = match &new {
            NewCardBatch::Generate { program, .. } => (program, "CardBatch::Generate"),
            NewCardBatch::Import { program, .. } => (program, "CardBatch::Import"),
        };
        let (owner, _) = self.program_owner(program).await?;
        if &owner != merchant {
            return Err(ServiceError::NotFound("program").into());
        }
        let mut prepared = match new {
            NewCardBatch::Generate { program, count } => {
                if !(1..=MAX_SERVED_BATCH_CARDS).contains(&count) {
                    return Err(ServiceError::Invalid {
                        param: "count",
                        message: format!(
                            "a running server makes 1 to {MAX_SERVED_BATCH_CARDS} cards per batch; ask for more in several batches"
                        ),
                    }
                    .into());
                }
                self.prepare_generated_stock(&program, count, &|_| {}).await?
            }
            NewCardBatch::Import { program, file } => {
                if file.len() > MAX_SERVED_IMPORT_BYTES {
                    return Err(ServiceError::Invalid {
                        param: "file",
                        message: format!("a running server takes import files of up to {MAX_SERVED_IMPORT_BYTES} bytes; split the file"),
                    }
                    .into());
                }
                let source_digest = digest(&file);
                if let Some(done) = self.completed_import(merchant, &source_digest).await? {
                    let row = self.card_batch(merchant, &done.id).await?;
                    return Ok(render(&row, false));
                }
                let text = String::from_utf8(file).map_err(|_| ServiceError::Invalid {
                    param: "file",
                    message: "the import file is not UTF-8 text".into(),
                })?;
                let rows = parse_import(&text)?;
                if rows.len() > MAX_SERVED_IMPORT_CARDS {
                    return Err(ServiceError::Invalid {
                        param: "file",
                        message: format!("a running server imports up to {MAX_SERVED_IMPORT_CARDS} cards per file; split the file"),
                    }
                    .into());
                }
                self.prepare_imported_stock(&program, rows, source_digest, &|_| {})
                    .await?
            }
        };
        let now = prepared.batch.now;
        let file = (!prepared.secrets.is_empty()).then(|| printer_file(&prepared));
        let row = CardBatchRow {
            batch: StockBatchRecord {
                id: prepared.batch.id.clone(),
                merchant_id: merchant.clone(),
                program_id: prepared.program.id.clone(),
                source: prepared.batch.source,
                cards: i64::try_from(prepared.batch.cards.len()).unwrap_or(i64::MAX),
                value_minor: prepared.value_minor(),
                created_at: now,
            },
            file: file.as_ref().map(|file| StockFileState {
                sha256: digest(file),
                size: i64::try_from(file.len()).unwrap_or(i64::MAX),
                collected_at: None,
            }),
        };
        let rendered = render(&row, true);
        // The printer's file leaves only through `card_batch_file`, decrypted with the batch id.
        prepared.batch.file = file.map(|file| StockFile {
            sha256: digest(&file),
            size: i64::try_from(file.len()).unwrap_or(i64::MAX),
            ciphertext: self.inner.keys.encrypt(&file, prepared.batch.id.as_bytes()),
        });
        prepared.batch.idempotency = idempotency.as_ref().map(|key| StockIdempotency {
            scope: key.scope,
            key: key.key.clone(),
            record: IdempotencyRecord {
                request_hash: key.request_hash.clone(),
                status: rendered.status,
                body: self
                    .inner
                    .keys
                    .encrypt(&rendered.body, &job::body_context(merchant, key)),
                created_at: now,
            },
            not_before: self.stored_answer_window(key),
        });
        let draft = audit::draft_for(merchant);
        prepared.batch.audit = draft.as_ref().map(|draft| {
            draft.row(Ending {
                operation: operation.to_owned(),
                objects: vec![prepared.batch.id.clone(), prepared.program.id.to_string()],
                status: rendered.status,
                reason: None,
                replayed: false,
                at: now,
            })
        });
        match self.inner.store.insert_card_stock(&prepared.batch).await {
            Ok(()) => {
                if let Some(draft) = &draft {
                    draft.committed();
                }
                Ok(rendered)
            }
            // Another request took the same key meanwhile: its answer is this one's.
            Err(StoreError::Conflict(_)) if idempotency.is_some() => self
                .replayed_batch(merchant, idempotency.as_ref())
                .await?
                .ok_or_else(|| ServiceError::from(StoreError::Conflict("card batch")).into()),
            Err(StoreError::UniqueViolation(_)) => Err(ServiceError::Invalid {
                param: "program",
                message:
                    "a card of this batch was issued by another request meanwhile; nothing was written, retry"
                        .into(),
            }
            .into()),
            Err(error) => Err(ServiceError::from(error).into()),
        }
    }

    /// The answer stored under a batch request's Idempotency-Key, if there is one.
    async fn replayed_batch(
        &self,
        merchant: &MerchantId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Rendered>, ServiceError> {
        let Some(key) = key else {
            return Ok(None);
        };
        let Some(record) = self
            .inner
            .store
            .stored_answer(merchant, key.scope, &key.key, self.stored_answer_window(key))
            .await?
        else {
            return Ok(None);
        };
        if record.request_hash != key.request_hash {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        job::open_record(&self.inner.keys, merchant, key, record).map(Some)
    }

    /// The merchant's card batches, newest first.
    pub async fn card_batches(
        &self,
        merchant: &MerchantId,
        page: &Page,
    ) -> Result<Vec<CardBatchRow>, ServiceError> {
        Ok(self.inner.store.card_batches(merchant, page).await?)
    }

    /// One of the merchant's card batches.
    pub async fn card_batch(&self, merchant: &MerchantId, id: &str) -> Result<CardBatchRow, ServiceError> {
        self.inner
            .store
            .card_batch(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("card batch"))
    }

    /// A generated batch's printer's file, for as long as it is kept; the handing out is
    /// recorded in the audit trail first.
    pub async fn card_batch_file(
        &self,
        merchant: &MerchantId,
        id: &str,
    ) -> Result<(CardBatchRow, Vec<u8>), StockError> {
        let row = self.card_batch(merchant, id).await?;
        let sealed =
            match self
                .inner
                .store
                .card_batch_file(merchant, id)
                .await
                .map_err(ServiceError::from)?
            {
                None => return Err(ServiceError::NotFound(
                    "printer's file of this batch (only generated batches made by a running server have one)",
                )
                .into()),
                Some(None) => return Err(StockError::FileCollected),
                Some(Some(sealed)) => sealed,
            };
        let file = self.inner.keys.decrypt(&sealed, id.as_bytes()).ok_or_else(|| {
            ServiceError::from(StoreError::Corrupt("a printer's file does not decrypt".into()))
        })?;
        self.audit_read(merchant, "CardBatch::HandOutFile", vec![id.to_owned()])
            .await?;
        Ok((row, file))
    }

    /// Drops a printer's file once its caller has it, named by its SHA-256 (`sha256_hex`):
    /// only the digest is kept from then on. Saying so again is answered as the first time.
    pub async fn collect_card_batch_file(
        &self,
        merchant: &MerchantId,
        id: &str,
        sha256_hex: &str,
    ) -> Result<CardBatchRow, StockError> {
        let sha256 = hex::decode(sha256_hex)
            .ok()
            .filter(|digest| digest.len() == 32)
            .ok_or_else(|| ServiceError::Invalid {
                param: "sha256",
                message: "`sha256` must be the file's SHA-256 as 64 hex digits".into(),
            })?;
        let row = self.card_batch(merchant, id).await?;
        let Some(file) = &row.file else {
            return Err(ServiceError::NotFound("printer's file of this batch").into());
        };
        if file.sha256 != sha256 {
            return Err(StockError::DigestMismatch);
        }
        if file.collected_at.is_some() {
            return Ok(row);
        }
        let now = self.now();
        let draft = audit::draft_for(merchant);
        let audit_row = draft.as_ref().map(|draft| {
            draft.row(Ending {
                operation: "CardBatch::CollectFile".to_owned(),
                objects: vec![id.to_owned()],
                status: 200,
                reason: None,
                replayed: false,
                at: now,
            })
        });
        if self
            .inner
            .store
            .collect_card_batch_file(merchant, id, &sha256, now, audit_row.as_ref())
            .await
            .map_err(ServiceError::from)?
            && let Some(draft) = &draft
        {
            draft.committed();
        }
        Ok(self.card_batch(merchant, id).await?)
    }

    /// The merchant that owns a program: the CLI names a program only.
    pub async fn program_owner(&self, program: &ProgramId) -> Result<(MerchantId, Program), ServiceError> {
        let merchant = self
            .inner
            .store
            .program_owner(program)
            .await?
            .ok_or(ServiceError::NotFound("program"))?;
        let program = self.program(&merchant, program).await?;
        Ok((merchant, program))
    }

    /// The import already written from a file with this digest.
    pub async fn completed_import(
        &self,
        merchant: &MerchantId,
        source_digest: &[u8],
    ) -> Result<Option<StockBatchRecord>, ServiceError> {
        Ok(self.inner.store.card_stock_batch(merchant, source_digest).await?)
    }

    /// Draws `count` new inactive physical cards of `program`: Luhn-valid numbers from its
    /// prefix and length that no card of the merchant has, random security codes, stored as
    /// `POST /v1/cards` stores them. `progress` is told of each card prepared.
    pub async fn prepare_generated_stock(
        &self,
        program_id: &ProgramId,
        count: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PreparedStock, ServiceError> {
        if !(1..=MAX_STOCK_CARDS).contains(&count) {
            return Err(ServiceError::Invalid {
                param: "count",
                message: format!("a batch has 1 to {MAX_STOCK_CARDS} cards"),
            });
        }
        let (merchant, program) = self.program_owner(program_id).await?;
        check_issuing(&program)?;
        let now = self.now();
        let mut numbers: Vec<CardNumber> = Vec::with_capacity(count);
        let mut taken: HashSet<String> = HashSet::with_capacity(count);
        for _ in 0..NUMBER_ROUNDS {
            // Draw what is missing, unique within the batch... (in a block: a thread's
            // generator may not be held across an await, as a server runs this on any thread)
            {
                let mut rng = rand::rng();
                let mut attempts = 0usize;
                while numbers.len() < count {
                    let number =
                        CardNumber::generate(&program.number_prefix, program.number_length, &mut rng);
                    if taken.insert(number.expose().to_owned()) {
                        numbers.push(number);
                    } else {
                        attempts += 1;
                        if attempts > count.saturating_mul(4) {
                            break;
                        }
                    }
                }
            }
            // ...then drop those an existing card has, and draw again for them.
            let fingerprints: Vec<Vec<u8>> = numbers
                .iter()
                .map(|n| self.inner.keys.card_fingerprint(merchant.as_str(), n.expose()))
                .collect();
            let existing: HashSet<Vec<u8>> = self
                .inner
                .store
                .existing_fingerprints(&merchant, &fingerprints)
                .await?
                .into_iter()
                .collect();
            if existing.is_empty() && numbers.len() == count {
                break;
            }
            let kept: Vec<CardNumber> = numbers
                .into_iter()
                .zip(fingerprints)
                .filter(|(_, f)| !existing.contains(f))
                .map(|(n, _)| n)
                .collect();
            numbers = kept;
        }
        if numbers.len() < count {
            return Err(ServiceError::Invalid {
                param: "count",
                message: "the program's number space is too full for this many new cards; use a longer number_length"
                    .into(),
            });
        }
        let mut cards = Vec::with_capacity(count);
        let mut secrets = Vec::with_capacity(count);
        let mut rng = rand::rng();
        for (done, number) in numbers.into_iter().enumerate() {
            let card_id = ids::card();
            let issued =
                operations::issue(&program, &card_id, CardKind::Physical, None, now).map_err(|error| {
                    ServiceError::Invalid {
                        param: "program",
                        message: refusal(&error),
                    }
                })?;
            let security_code = SecurityCode::generate(program.security_code_length, &mut rng);
            let snapshot = CardSnapshot {
                id: card_id.clone(),
                program_id: program.id.clone(),
                kind: CardKind::Physical,
                state: issued.state,
                currency: program.currency,
                balance: 0,
                held: 0,
                expires_at: issued.expires_at,
            };
            cards.push(StockCard {
                record: self.card_record(&merchant, snapshot, &number, &security_code, now),
                issue: None,
            });
            secrets.push(StockSecret {
                card_id,
                number,
                security_code,
                expires_at: issued.expires_at,
            });
            progress(done as u64 + 1);
        }
        Ok(PreparedStock {
            batch: StockBatch {
                id: ids::prefixed("stk_"),
                merchant_id: merchant,
                program_id: program.id.clone(),
                source: StockSource::Generated,
                // Unique per batch, so generated batches never look like a repeated import.
                source_digest: digest(ids::prefixed("generated_").as_bytes()),
                cards,
                now,
                file: None,
                audit: None,
                idempotency: None,
            },
            secrets,
            program,
        })
    }

    /// Checks every row of an import against the program and the existing cards, and
    /// prepares the batch; any bad row refuses the whole import, each named by its line.
    pub async fn prepare_imported_stock(
        &self,
        program_id: &ProgramId,
        rows: Vec<ImportRow>,
        source_digest: Vec<u8>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PreparedStock, StockError> {
        if rows.len() > MAX_STOCK_CARDS {
            return Err(ServiceError::Invalid {
                param: "file",
                message: format!("an import has at most {MAX_STOCK_CARDS} cards; split the file"),
            }
            .into());
        }
        let (merchant, program) = self.program_owner(program_id).await?;
        check_issuing(&program)?;
        let now = self.now();
        let mut lines = Lines {
            errors: Vec::new(),
            total: 0,
        };
        let fingerprints: Vec<Vec<u8>> = rows
            .iter()
            .map(|row| {
                self.inner
                    .keys
                    .card_fingerprint(merchant.as_str(), row.number.expose())
            })
            .collect();
        let existing: HashSet<Vec<u8>> = self
            .inner
            .store
            .existing_fingerprints(&merchant, &fingerprints)
            .await
            .map_err(ServiceError::from)?
            .into_iter()
            .collect();
        let mut cards = Vec::with_capacity(rows.len());
        // The batch records its whole value in 64 bits, as a card does its balance.
        let mut value = 0_i64;
        for (done, (row, fingerprint)) in rows.into_iter().zip(fingerprints).enumerate() {
            progress(done as u64 + 1);
            if existing.contains(&fingerprint) {
                lines.push(row.line, "a card with this number already exists");
                continue;
            }
            if let Some(currency) = row.currency
                && currency != program.currency
            {
                lines.push(
                    row.line,
                    format!(
                        "currency {} is not the program's ({})",
                        currency.code(),
                        program.currency.code()
                    ),
                );
                continue;
            }
            let card_id = ids::card();
            let issued = match giftd_domain::stock::import(
                &program,
                &card_id,
                row.kind,
                row.state,
                row.balance,
                row.expires_at,
                now,
            ) {
                Ok(issued) => issued,
                Err(error) => {
                    lines.push(row.line, refusal(&error));
                    continue;
                }
            };
            let amount = issued.value.as_ref().map_or(0, |decision| decision.amount);
            match value.checked_add(amount) {
                Some(sum) => value = sum,
                None => {
                    lines.push(
                        row.line,
                        format!(
                            "the file's balances add up to more than {} minor units; split it",
                            i64::MAX
                        ),
                    );
                    continue;
                }
            }
            let mut snapshot = CardSnapshot {
                id: card_id.clone(),
                program_id: program.id.clone(),
                kind: row.kind,
                state: issued.state,
                currency: program.currency,
                balance: 0,
                held: 0,
                expires_at: issued.expires_at,
            };
            let issue = issued.value.map(|decision| {
                let transaction_id = ids::transaction();
                let record = TransactionRecord {
                    id: transaction_id,
                    merchant_id: merchant.clone(),
                    card_id: card_id.clone(),
                    transaction_type: TransactionType::Issue,
                    amount: decision.amount,
                    currency: program.currency.code().to_owned(),
                    balance_before: 0,
                    balance_after: decision.balance_after(0),
                    reference: Some("import".to_owned()),
                    reverses: None,
                    hold_id: None,
                    channel: Some(crate::audit::current_channel()),
                    created_at: now,
                };
                snapshot.apply(&decision.card);
                (record, decision.entry.postings().to_vec())
            });
            cards.push(StockCard {
                record: self.card_record(&merchant, snapshot, &row.number, &row.security_code, now),
                issue,
            });
        }
        let batch = lines.finish(cards)?;
        Ok(PreparedStock {
            batch: StockBatch {
                id: ids::prefixed("stk_"),
                merchant_id: merchant,
                program_id: program.id.clone(),
                source: StockSource::Imported,
                source_digest,
                cards: batch,
                now,
                file: None,
                audit: None,
                idempotency: None,
            },
            secrets: Vec::new(),
            program,
        })
    }

    /// Writes a prepared batch in one transaction: every card or none.
    pub async fn write_stock(&self, prepared: &PreparedStock) -> Result<(), ServiceError> {
        Ok(self.inner.store.insert_card_stock(&prepared.batch).await?)
    }

    /// A card row exactly as `POST /v1/cards` writes it: the number encrypted with the card id
    /// as associated data, its per-merchant fingerprint, the security code's keyed hash.
    fn card_record(
        &self,
        merchant: &MerchantId,
        snapshot: CardSnapshot,
        number: &CardNumber,
        security_code: &SecurityCode,
        now: Timestamp,
    ) -> CardRecord {
        let card_id = snapshot.id.as_str().to_owned();
        CardRecord {
            merchant_id: merchant.clone(),
            closed_reason: None,
            last4: number.last4(),
            number_ciphertext: self
                .inner
                .keys
                .encrypt(number.expose().as_bytes(), card_id.as_bytes()),
            number_fingerprint: self
                .inner
                .keys
                .card_fingerprint(merchant.as_str(), number.expose()),
            security_code_hash: self
                .inner
                .keys
                .security_code_hash(&card_id, security_code.expose()),
            created_at: now,
            snapshot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(rows: &[ImportRow]) -> Vec<&str> {
        rows.iter().map(|row| row.number.expose()).collect()
    }

    fn line_errors(text: &str) -> Vec<String> {
        match parse_import(text) {
            Err(StockError::Lines { lines, .. }) => lines.iter().map(ToString::to_string).collect(),
            Err(other) => panic!("not a line error: {other}"),
            Ok(rows) => panic!("accepted {:?}", numbers(&rows)),
        }
    }

    #[test]
    fn a_byte_order_mark_quoted_fields_crlf_and_blank_lines_read_as_a_spreadsheet_writes_them() {
        let text = "\u{feff}number,security_code,balance\r\n\"7400000000000001\",\"1234\",500\r\n\r\n\
                    7400000000000002, 5678 ,\"0\"\r\n";
        let rows = parse_import(text).expect("a good file");
        assert_eq!(numbers(&rows), ["7400000000000001", "7400000000000002"]);
        assert_eq!(rows[0].balance.map(Amount::minor), Some(500));
        assert_eq!(rows[1].balance, None);
        assert_eq!(rows[1].security_code.expose(), "5678");
        assert_eq!(
            (rows[0].line, rows[1].line),
            (2, 4),
            "lines are counted as an editor shows them"
        );
    }

    #[test]
    fn a_quoted_comma_stays_in_its_field_and_each_bad_line_is_named() {
        let text = "number,security_code\n7400000000000001,1234\n\"7400,000000000002\",5678\n7400000000000003\n\"unclosed,1234\n";
        let errors = line_errors(text);
        assert!(errors[0].starts_with("line 3: `number`"), "{errors:?}");
        assert!(
            errors[1].starts_with("line 4: 1 fields, the header has 2"),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[2].starts_with("line 5:"), "{errors:?}");
    }

    #[test]
    fn a_header_with_a_byte_order_mark_names_its_columns_without_it() {
        assert!(line_errors("\u{feff}numbr,security_code\n")[0].contains("unknown column \"numbr\""));
        assert!(parse_import("\u{feff}security_code,number\n1234,7400000000000001\n").is_ok());
    }
}
