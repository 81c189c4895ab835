//! Choosing the backend, once, from configuration: SQLite in a data folder by default,
//! PostgreSQL when a `postgres://` URL is given. Nothing outside this crate names a backend.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::postgres::{Isolation, PgOptions, PgStore};
use crate::sqlite::{Durability, SqliteStore};
use crate::{Store, StoreResult};

/// The SQLite database file inside the data folder.
pub const SQLITE_FILE: &str = "giftd.db";

/// A database URL that never shows its password, in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        // scheme://user:password@host/... → scheme://user:***@host/...
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "<unparsable database url>".into();
        };
        match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://{credentials}@{host}"),
            },
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("there is no database at {0}")]
    NoDatabase(PathBuf),
    #[error("{0} already exists; a backup goes to a new file")]
    DestinationExists(PathBuf),
    #[error("the backup path must be valid UTF-8")]
    NotUtf8,
    #[error(
        "giftd backup copies the embedded SQLite database; back up PostgreSQL with pg_dump or base backups (see docs/OPERATIONS.md)"
    )]
    UsePostgresTools,
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite { path: PathBuf, durability: Durability },
    Postgres { url: DatabaseUrl, options: PgOptions },
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported database URL {0}: use postgres://... (or leave it unset for SQLite in the data folder)")]
pub struct UnsupportedUrl(DatabaseUrl);

impl Backend {
    /// The backend for a `--database-url`, or SQLite in `data_dir` without one.
    pub fn choose(
        database_url: Option<&str>,
        data_dir: &Path,
        durability: Durability,
        options: PgOptions,
    ) -> Result<Self, UnsupportedUrl> {
        match database_url {
            None => Ok(Self::Sqlite {
                path: data_dir.join(SQLITE_FILE),
                durability,
            }),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres {
                    url: DatabaseUrl::new(url),
                    options,
                })
            }
            Some(url) => Err(UnsupportedUrl(DatabaseUrl::new(url))),
        }
    }

    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            Self::Sqlite { path, durability } => SqliteStore::open(path, *durability).await?,
            Self::Postgres { url, options } => PgStore::open(url.expose(), options).await?,
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite { path, .. } => SqliteStore::migrate(path).await,
            Self::Postgres { url, .. } => PgStore::migrate(url.expose()).await,
        }
    }

    /// An online, consistent copy of the embedded database into `destination` (a new file),
    /// taken while giftd may be serving. PostgreSQL has its own tools (`pg_dump`, base backups
    /// with WAL archiving): see docs/OPERATIONS.md.
    pub async fn backup(&self, destination: &Path) -> Result<(), BackupError> {
        match self {
            Self::Sqlite { path, .. } => {
                if !path.exists() {
                    return Err(BackupError::NoDatabase(path.clone()));
                }
                if destination.exists() {
                    return Err(BackupError::DestinationExists(destination.to_path_buf()));
                }
                let target = destination.to_str().ok_or(BackupError::NotUtf8)?.to_owned();
                let mut conn = SqliteStore::raw_connection(path).await?;
                // VACUUM INTO writes a transactionally consistent, compacted copy while other
                // connections keep reading and writing.
                sqlx::query("VACUUM INTO ?")
                    .bind(target)
                    .execute(&mut conn)
                    .await
                    .map_err(crate::StoreError::from)?;
                Ok(())
            }
            Self::Postgres { .. } => Err(BackupError::UsePostgresTools),
        }
    }

    /// Where the data is, for logs and messages (never with a password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite {}", path.display()),
            Self::Postgres { url, .. } => format!("postgres {url}"),
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "read-committed" => Ok(Self::ReadCommitted),
            "serializable" => Ok(Self::Serializable),
            other => Err(format!(
                "unknown isolation {other:?}: use read-committed or serializable"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_never_show_their_password() {
        let url = DatabaseUrl::new("postgres://giftd:s3cret@db.internal:5432/giftd");
        assert_eq!(url.to_string(), "postgres://giftd:***@db.internal:5432/giftd");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            DatabaseUrl::new("postgres://db/giftd").to_string(),
            "postgres://db/giftd"
        );
    }
}
