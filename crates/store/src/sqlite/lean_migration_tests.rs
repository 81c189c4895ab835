//! Migration 0009 rebuilds the ledger's tables on SQLite (a constraint cannot be dropped in
//! place): a database written under migrations 0001–0008 must come through it with every row,
//! number and remaining constraint kept.

use std::path::Path;

use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection};

use super::{Durability, SqliteStore};
use crate::Store;

/// The lean ledger's migration: every file that sorts before it ran before it.
const LEAN: &str = "0009";

/// A database at migration 0008 with one merchant, program and card, the card's issue and a
/// pending hold (with their postings), and an event with a delivery.
async fn database_before_lean(path: &Path, migrations: &Path) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&all).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < LEAN {
            std::fs::copy(entry.path(), migrations.join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(migrations).await.unwrap();
    let mut conn = SqliteStore::raw_connection(path).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO merchants (id, name, created_at) VALUES ('mer_1', 'Acme', 0);
         INSERT INTO programs (id, merchant_id, name, currency, reloadable, promotional, number_prefix,
             number_length, security_code_length, created_at)
             VALUES ('prg_1', 'mer_1', 'Gifts', 'USD', 1, 0, '6', 16, 4, 0);
         INSERT INTO cards (id, merchant_id, program_id, kind, state, currency, balance, held, last4,
             number_ciphertext, number_fingerprint, security_code_hash, created_at, updated_at)
             VALUES ('card_1', 'mer_1', 'prg_1', 'virtual', 'active', 'USD', 1000, 300, '0001', x'00', x'01', x'02', 0, 0);
         INSERT INTO transactions (seq, id, merchant_id, card_id, type, amount, currency, balance_before,
             balance_after, entry_id, created_at)
             VALUES (7, 'txn_issue', 'mer_1', 'card_1', 'issue', 1000, 'USD', 0, 1000, 'txn_issue', 1),
                    (8, 'txn_hold', 'mer_1', 'card_1', 'hold', 300, 'USD', 1000, 1000, 'txn_hold', 2);
         INSERT INTO postings (id, transaction_id, entry_id, account_kind, owner_id, currency, amount)
             VALUES (20, 'txn_issue', 'txn_issue', 'card_available', 'card_1', 'USD', 1000),
                    (21, 'txn_issue', 'txn_issue', 'program_funding', 'prg_1', 'USD', -1000),
                    (22, 'txn_hold', 'txn_hold', 'card_available', 'card_1', 'USD', -300),
                    (23, 'txn_hold', 'txn_hold', 'card_held', 'card_1', 'USD', 300);
         INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at)
             VALUES ('hold_1', 'mer_1', 'card_1', 'txn_hold', 300, 'pending', 9999999999999, 2);
         INSERT INTO events (seq, id, merchant_id, type, payload, created_at)
             VALUES (5, 'evt_1', 'mer_1', 'card.redeemed', '{\"id\":\"evt_1\"}', 3);
         INSERT INTO webhook_endpoints (id, merchant_id, url, secret, event_types, enabled, created_at, updated_at)
             VALUES ('we_1', 'mer_1', 'https://example.com/hook', x'00', 'card.redeemed', 1, 0, 0);
         INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, attempts,
             next_attempt_at, created_at, updated_at)
             VALUES ('whd_1', 'mer_1', 'evt_1', 'we_1', 'pending', 0, 0, 3, 3);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

async fn texts(conn: &mut SqliteConnection, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_lean_ledger_migration_keeps_every_row_number_and_remaining_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    let path = dir.path().join("giftd.db");
    database_before_lean(&path, &migrations).await;

    let store = SqliteStore::open(&path, Durability::Full)
        .await
        .expect("0009 applies");
    let report = store.verify().await.unwrap();
    assert!(report.is_sound(), "{:?}", report.violations);
    assert_eq!(
        (
            report.cards,
            report.transactions,
            report.postings,
            report.pending_holds
        ),
        (1, 2, 4, 1)
    );
    store.close().await;

    let mut conn = SqliteStore::raw_connection(&path).await.unwrap();
    assert_eq!(
        texts(
            &mut conn,
            "SELECT seq || ' ' || id FROM transactions ORDER BY seq"
        )
        .await,
        ["7 txn_issue", "8 txn_hold"],
        "the ledger keeps its numbers"
    );
    assert_eq!(
        texts(
            &mut conn,
            "SELECT id || ' ' || transaction_id || ' ' || amount FROM postings ORDER BY id"
        )
        .await,
        [
            "20 txn_issue 1000",
            "21 txn_issue -1000",
            "22 txn_hold -300",
            "23 txn_hold 300"
        ]
    );
    assert_eq!(
        texts(&mut conn, "SELECT seq || ' ' || id FROM events").await,
        ["5 evt_1"]
    );
    for table in ["transactions", "postings", "events"] {
        let keys = texts(
            &mut conn,
            &format!("SELECT \"table\" FROM pragma_foreign_key_list('{table}')"),
        )
        .await;
        assert!(keys.is_empty(), "{table} still has foreign keys to {keys:?}");
        let sql = texts(
            &mut conn,
            &format!("SELECT sql FROM sqlite_master WHERE name = '{table}'"),
        )
        .await;
        assert!(!sql[0].contains("AUTOINCREMENT"), "{table}: {}", sql[0]);
    }
    assert_eq!(
        texts(&mut conn, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'postings' AND sql IS NOT NULL").await,
        ["postings_by_transaction"]
    );

    // A new row takes the next number; the rows that change still refuse a missing parent;
    // the ledger still refuses to change.
    sqlx::raw_sql(
        "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before,
             balance_after, entry_id, created_at)
             VALUES ('txn_next', 'mer_1', 'card_1', 'load', 0, 'USD', 1000, 1000, 'txn_next', 4)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        texts(
            &mut conn,
            "SELECT CAST(seq AS TEXT) FROM transactions WHERE id = 'txn_next'"
        )
        .await,
        ["9"]
    );
    let orphan_hold = sqlx::raw_sql(
        "INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at)
             VALUES ('hold_2', 'mer_1', 'card_1', 'txn_missing', 1, 'pending', 0, 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(
        orphan_hold.is_err(),
        "holds keep their foreign key to the renamed transactions"
    );
    let orphan_delivery = sqlx::raw_sql(
        "INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, attempts,
             next_attempt_at, created_at, updated_at)
             VALUES ('whd_2', 'mer_1', 'evt_missing', 'we_1', 'pending', 0, 0, 0, 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(
        orphan_delivery.is_err(),
        "deliveries keep their foreign key to the renamed events"
    );
    let changed = sqlx::raw_sql("UPDATE postings SET amount = 1 WHERE id = 20")
        .execute(&mut conn)
        .await;
    assert!(
        changed.unwrap_err().to_string().contains("append-only"),
        "the append-only triggers are back"
    );
    conn.close().await.unwrap();
}
