//! What operators watch, from the store's side: the ledger transactions a write transaction
//! committed (counted only after the commit, by type), and the shape of the connection pools.
//!
//! Metrics are recorded through the `metrics` facade: when no recorder is installed (tests,
//! the CLI commands) they cost nothing. Labels carry only transaction types and backend
//! names, never an id, an amount or anything a card is known by.

use giftd_domain::TransactionType;

/// The counter of committed ledger transactions, labelled `type`.
pub const LEDGER_TRANSACTIONS_TOTAL: &str = "giftd_ledger_transactions_total";

/// The counter of write jobs in committed transactions, labelled `path`: `in_memory` (decided
/// with their batch in memory and written set-wise) or `per_job` (their own savepoint and
/// statements). A rising share of `per_job` among redemptions means batches fall back.
pub const WRITE_JOBS_TOTAL: &str = "giftd_write_jobs_total";

/// Counts the jobs of a committed transaction by the path they took.
pub(crate) fn count_jobs(in_memory: usize, per_job: usize) {
    if in_memory > 0 {
        metrics::counter!(WRITE_JOBS_TOTAL, "path" => "in_memory").increment(in_memory as u64);
    }
    if per_job > 0 {
        metrics::counter!(WRITE_JOBS_TOTAL, "path" => "per_job").increment(per_job as u64);
    }
}

/// How busy the database connections are, read at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolStats {
    /// One writer connection fed by a queue, and a pool of read-only connections.
    Sqlite {
        writer_queue_depth: usize,
        writer_queue_capacity: usize,
        read_connections: u32,
        read_connections_idle: usize,
        read_connections_max: u32,
    },
    /// One pool for reads and writes.
    Postgres {
        connections: u32,
        connections_idle: usize,
        connections_max: u32,
    },
}

/// The ledger transactions one job wrote, kept across its savepoints: a rollback to a savepoint
/// forgets what was written after it, so only what the job's commit keeps is counted.
#[derive(Debug, Default)]
pub(crate) struct Written {
    types: Vec<TransactionType>,
    savepoints: Vec<(&'static str, usize)>,
}

impl Written {
    pub(crate) fn transaction(&mut self, transaction_type: TransactionType) {
        self.types.push(transaction_type);
    }

    pub(crate) fn savepoint(&mut self, name: &'static str) {
        self.savepoints.push((name, self.types.len()));
    }

    pub(crate) fn release_savepoint(&mut self, name: &'static str) {
        if let Some(position) = self.savepoints.iter().rposition(|(n, _)| *n == name) {
            self.savepoints.truncate(position);
        }
    }

    pub(crate) fn rollback_to_savepoint(&mut self, name: &'static str) {
        if let Some(position) = self.savepoints.iter().rposition(|(n, _)| *n == name) {
            let (_, length) = self.savepoints[position];
            self.types.truncate(length);
            self.savepoints.truncate(position);
        }
    }

    /// How many transactions were written so far.
    pub(crate) fn len(&self) -> usize {
        self.types.len()
    }

    /// Forgets the transactions written after the first `length`.
    pub(crate) fn truncate(&mut self, length: usize) {
        self.types.truncate(length);
    }

    /// Counts what was written; call only once the transaction holding it has committed.
    pub(crate) fn count_committed(self) {
        for transaction_type in self.types {
            metrics::counter!(LEDGER_TRANSACTIONS_TOTAL, "type" => transaction_type.as_str()).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_to_a_savepoint_forgets_what_was_written_after_it() {
        let mut written = Written::default();
        written.transaction(TransactionType::Load);
        written.savepoint("command");
        written.transaction(TransactionType::Redemption);
        written.savepoint("inner");
        written.transaction(TransactionType::Hold);
        written.release_savepoint("inner");
        written.rollback_to_savepoint("command");
        assert_eq!(written.types, vec![TransactionType::Load]);
        written.savepoint("command");
        written.transaction(TransactionType::Capture);
        written.release_savepoint("command");
        assert_eq!(
            written.types,
            vec![TransactionType::Load, TransactionType::Capture]
        );
    }
}
