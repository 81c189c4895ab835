//! A command as a [`WriteJob`]: idempotency check, the command under its own savepoint, the
//! answer rendered by the front-end and stored with the idempotency record, all inside the
//! writer's transaction; the caller is answered only after the commit.

use std::sync::Arc;

use giftd_domain::{Channel, MerchantId, Timestamp};
use giftd_store::{BoxFuture, IdempotencyRecord, ReadSet, Store, StoreError, StoreResult, WriteJob, WriteTx};
use tokio::sync::oneshot;

use crate::audit::{AuditDraft, Ending, operation_name};
use crate::clock::Clock;
use crate::crypto::Keys;
use crate::error::{Failure, Refusal, ServiceError};
use crate::operation::{Context, Operation};

/// How long an idempotency key is remembered by default, unless its scope says otherwise
/// ([`IdempotencyKey::retention_millis`]); `Service::with_idempotency_retention_days` changes it.
pub const IDEMPOTENCY_RETENTION_MILLIS: i64 = 7 * 24 * 3600 * 1000;

/// An answer as a front-end puts it on the wire: replayed byte for byte on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Turns a command's result (its family's outcome, or a refusal) into the front-end's answer.
/// It may be called more than once when a backend retries the job.
pub type Renderer<T> = Box<dyn Fn(&Result<T, Refusal>) -> Rendered + Send + Sync>;

/// An idempotency key with what identifies the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The front-end, so that one key means different things to different APIs.
    pub scope: &'static str,
    pub key: String,
    /// A digest of the request (method, path, canonical body): same key + other request = 409.
    pub request_hash: Vec<u8>,
}

pub(crate) struct CommandJob<O: Operation> {
    pub keys: Arc<Keys>,
    pub clock: Arc<dyn Clock>,
    /// The request's audit row to write with the command's effect, when it is a request's.
    pub audit: Option<AuditDraft>,
    /// Whether the last run wrote that row (a key reused for another request writes none).
    pub audited: bool,
    pub merchant: MerchantId,
    /// The front-end the command came through ([`crate::audit::current_channel`]).
    pub channel: Channel,
    pub command: O,
    pub idempotency: Option<IdempotencyKey>,
    /// How long the key's earlier answer counts ([`IdempotencyKey::retention_millis`]).
    pub retention_millis: i64,
    pub render: Renderer<O::Outcome>,
    pub answer: Option<Result<Rendered, ServiceError>>,
    pub reply: Option<oneshot::Sender<Result<Rendered, ServiceError>>>,
}

impl IdempotencyKey {
    /// How long this key and its answer are remembered: the Adyen Terminal API's keys (its
    /// ServiceIDs) for the 48 hours Adyen holds them unique, every other key for `configured`
    /// (by default [`IDEMPOTENCY_RETENTION_MILLIS`]). Past it, the key may be used again for a
    /// new request.
    pub fn retention_millis(&self, configured: i64) -> i64 {
        match self.scope {
            crate::adyen::TERMINAL_SCOPE => crate::adyen::SERVICE_ID_RETENTION_MILLIS,
            _ => configured,
        }
    }
}

pub(crate) fn body_context(merchant: &MerchantId, key: &IdempotencyKey) -> Vec<u8> {
    [
        merchant.as_str().as_bytes(),
        b"\0",
        key.scope.as_bytes(),
        b"\0",
        key.key.as_bytes(),
    ]
    .concat()
}

impl<O: Operation> CommandJob<O> {
    async fn execute(&mut self, tx: &mut dyn WriteTx) -> StoreResult<()> {
        // A job may run more than once (a backend retries it after a conflict): start afresh.
        self.answer = None;
        self.audited = false;
        let now = self.clock.now();
        let not_before = Timestamp::from_unix_millis(now.unix_millis() - self.retention_millis);
        if let Some(key) = &self.idempotency
            && let Some(record) = tx
                .idempotency_record(&self.merchant, key.scope, &key.key, not_before)
                .await?
        {
            let answer = self.replay(key, record);
            if let (Some(draft), Ok(rendered)) = (&self.audit, &answer) {
                let row = draft.row(Ending {
                    operation: operation_name(&self.command),
                    objects: Vec::new(),
                    status: rendered.status,
                    reason: None,
                    replayed: true,
                    at: now,
                });
                tx.insert_audit_event(&row).await?;
                self.audited = true;
            }
            self.answer = Some(answer);
            return Ok(());
        }
        let cx = Context {
            keys: &self.keys,
            merchant: &self.merchant,
            now,
            channel: self.channel,
        };
        let before = self.command.before(tx, &cx).await?;
        tx.savepoint("command").await?;
        let result = match self.command.execute(tx, &cx).await {
            Ok(outcome) => {
                tx.release_savepoint("command").await?;
                // The outbox: the command's events commit with it or not at all.
                self.command.events(tx, &cx, &outcome, before).await?;
                Ok(outcome)
            }
            Err(Failure::Refused(refusal)) => {
                tx.rollback_to_savepoint("command").await?;
                self.command.after_refusal(tx, &cx, &refusal).await?;
                Err(refusal)
            }
            Err(Failure::Store(error)) => return Err(error),
        };
        let rendered = (self.render)(&result);
        if let Some(key) = &self.idempotency {
            let record = IdempotencyRecord {
                request_hash: key.request_hash.clone(),
                status: rendered.status,
                body: self
                    .keys
                    .encrypt(&rendered.body, &body_context(&self.merchant, key)),
                created_at: now,
            };
            tx.put_idempotency_record(&self.merchant, key.scope, &key.key, &record, not_before)
                .await?;
        }
        if let Some(draft) = &self.audit {
            // After the command's own writes, outside its savepoint: a refusal is recorded
            // although what the command wrote was rolled back.
            let row = draft.row(Ending {
                operation: operation_name(&self.command),
                objects: result
                    .as_ref()
                    .map_or_else(|_| Vec::new(), |outcome| self.command.audit_objects(outcome)),
                status: rendered.status,
                reason: result.as_ref().err().map(ToString::to_string),
                replayed: false,
                at: now,
            });
            tx.insert_audit_event(&row).await?;
            self.audited = true;
        }
        self.answer = Some(Ok(rendered));
        Ok(())
    }

    fn replay(&self, key: &IdempotencyKey, record: IdempotencyRecord) -> Result<Rendered, ServiceError> {
        if record.request_hash != key.request_hash {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        open_record(&self.keys, &self.merchant, key, record)
    }
}

/// A stored answer as it was sent: its body is kept encrypted under the key's context.
pub(crate) fn open_record(
    keys: &Keys,
    merchant: &MerchantId,
    key: &IdempotencyKey,
    record: IdempotencyRecord,
) -> Result<Rendered, ServiceError> {
    let body = keys
        .decrypt(&record.body, &body_context(merchant, key))
        .ok_or_else(|| StoreError::Corrupt("an idempotency record does not decrypt".into()))?;
    Ok(Rendered {
        status: record.status,
        body,
    })
}

impl<O: Operation> WriteJob for CommandJob<O> {
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.execute(tx))
    }

    fn affinity(&self) -> Option<&str> {
        self.command.affinity()
    }

    fn read_set(&self) -> Option<ReadSet> {
        let (card, program) = self.command.batch_reads()?;
        Some(ReadSet {
            merchant: self.merchant.clone(),
            card: card.clone(),
            program,
            idempotency: self
                .idempotency
                .as_ref()
                .map(|key| (key.scope.to_owned(), key.key.clone())),
        })
    }

    fn finish(mut self: Box<Self>, committed: StoreResult<()>) {
        if committed.is_ok()
            && self.audited
            && let Some(draft) = &self.audit
        {
            draft.committed();
        }
        let answer = match committed {
            Ok(()) => self
                .answer
                .take()
                .unwrap_or_else(|| Err(StoreError::Corrupt("a committed job left no answer".into()).into())),
            Err(error) => Err(error.into()),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone away (client disconnected); the effect stands regardless.
            let _ = reply.send(answer);
        }
    }
}

/// Work done inside the writer's transaction whose caller awaits its answer. It may run more
/// than once (a backend retries a job after a conflict), so it starts afresh each time.
pub(crate) trait TxWork: Send + 'static {
    type Answer: Send + 'static;
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<Self::Answer>>;
}

/// A [`TxWork`] as a job: the answer of its last run, sent only once the transaction committed.
struct AnsweredJob<W: TxWork> {
    work: W,
    answer: Option<W::Answer>,
    reply: Option<oneshot::Sender<StoreResult<W::Answer>>>,
}

impl<W: TxWork> WriteJob for AnsweredJob<W> {
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.answer = None;
            self.answer = Some(self.work.run(tx).await?);
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>, committed: StoreResult<()>) {
        let answer = committed.and_then(|()| {
            self.answer
                .take()
                .ok_or_else(|| StoreError::Corrupt("a committed job left no answer".into()))
        });
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
        }
    }
}

/// Runs `work` through the store's writer; answers after the commit.
pub(crate) async fn run_answered<W: TxWork>(store: &dyn Store, work: W) -> StoreResult<W::Answer> {
    let (reply, answer) = oneshot::channel();
    store
        .submit(Box::new(AnsweredJob {
            work,
            answer: None,
            reply: Some(reply),
        }))
        .await;
    answer.await.unwrap_or(Err(StoreError::Closed))
}
