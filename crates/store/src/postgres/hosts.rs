//! Several PostgreSQL hosts in one URL, as libpq takes them:
//! `postgres://giftd@db1:5432,db2:5432/giftd?target_session_attrs=read-write`.
//!
//! giftd connects to the first host that answers and, with `target_session_attrs=read-write`
//! (or `primary`), that accepts writes. Then it watches that host every [`PROBE_INTERVAL`]:
//! once it stops answering or has become a standby, the pool's new connections go to the host
//! that accepts writes now. So after a failover (the primary lost, a standby promoted) giftd
//! follows the promoted standby by itself, without a restart; the requests caught in between
//! are answered 503 and nothing they did was kept. With one host nothing is watched.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{StoreError, StoreResult};

/// How often the current host is checked.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one check (connect, then ask whether it is a standby) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Hosts one URL may name.
pub const MAX_HOSTS: usize = 8;

/// The hosts of a database URL, each with the URL's user, database and parameters.
#[derive(Debug, Clone)]
pub struct Hosts {
    candidates: Vec<PgConnectOptions>,
    /// Only a host that accepts writes will do (`target_session_attrs=read-write|primary`).
    writable_only: bool,
}

impl Hosts {
    /// Reads the hosts of `url`: `scheme://[userinfo@]host[:port][,host[:port]...][/db][?params]`.
    /// `target_session_attrs` is `any` (the default), `read-write` or `primary`.
    pub fn parse(url: &str) -> StoreResult<Self> {
        let invalid = |why: &str| StoreError::Database(sqlx::Error::Configuration(why.to_owned().into()));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("a database URL starts with postgres://"))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, host_list) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut writable_only = false;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", value)) => {
                    writable_only = match value {
                        "any" => false,
                        "read-write" | "primary" => true,
                        _ => {
                            return Err(invalid("target_session_attrs must be any, read-write or primary"));
                        }
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let hosts: Vec<&str> = host_list.split(',').collect();
        if hosts.len() > MAX_HOSTS || (hosts.len() > 1 && hosts.iter().any(|host| host.is_empty())) {
            return Err(invalid("a database URL names 1 to 8 hosts, separated by commas"));
        }
        let candidates = hosts
            .iter()
            .map(|host| {
                PgConnectOptions::from_str(&format!("{scheme}://{userinfo}{host}{path}{query}"))
                    .map(super::with_session_settings)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            candidates,
            writable_only,
        })
    }

    /// Where the pool connects first: the first host that will do, or the last error.
    pub async fn first(&self) -> StoreResult<PgConnectOptions> {
        if self.candidates.len() == 1 && !self.writable_only {
            return Ok(self.candidates[0].clone());
        }
        let mut last = None;
        for candidate in &self.candidates {
            match self.check(candidate).await {
                Ok(()) => return Ok(candidate.clone()),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Unavailable("no database host".into())))
    }

    /// Whether anything needs watching: several hosts, or one that must accept writes.
    pub fn needs_watching(&self) -> bool {
        self.candidates.len() > 1 || self.writable_only
    }

    /// Connects to `candidate` and, when only a primary will do, asks whether it is one.
    async fn check(&self, candidate: &PgConnectOptions) -> StoreResult<()> {
        let checked = async {
            let mut conn = PgConnection::connect_with(candidate).await?;
            let standby = if self.writable_only {
                sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut conn)
                    .await?
            } else {
                false
            };
            conn.close().await?;
            if standby {
                Err(StoreError::Unavailable(format!(
                    "{} is a standby",
                    label(candidate)
                )))
            } else {
                Ok(())
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, checked)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{} did not answer within {PROBE_TIMEOUT:?}",
                    label(candidate)
                )))
            })
    }

    /// Checks the pool's host every [`PROBE_INTERVAL`] until the pool closes; when it will not
    /// do any more, points the pool's new connections at the first host that will.
    pub async fn watch(self, pool: PgPool) {
        let mut interval = tokio::time::interval(PROBE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if pool.is_closed() {
                return;
            }
            let current = pool.connect_options();
            let Err(why) = self.check(&current).await else {
                continue;
            };
            for candidate in &self.candidates {
                if label(candidate) != label(&current) && self.check(candidate).await.is_ok() {
                    tracing::warn!(
                        from = %label(&current),
                        to = %label(candidate),
                        reason = %why,
                        "the database host changed: new connections go to the one that will serve"
                    );
                    pool.set_connect_options(candidate.clone());
                    break;
                }
            }
        }
    }
}

/// `host:port` of a candidate, for logs (never its password).
fn label(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_several_hosts_gives_each_the_user_database_and_parameters() {
        let hosts = Hosts::parse(
            "postgres://giftd:secret@db1:5433,db2/giftd?sslmode=disable&target_session_attrs=read-write&application_name=x",
        )
        .unwrap();
        assert!(hosts.writable_only);
        let labels: Vec<String> = hosts.candidates.iter().map(label).collect();
        assert_eq!(labels, ["db1:5433", "db2:5432"]);
        for candidate in &hosts.candidates {
            assert_eq!(candidate.get_username(), "giftd");
            assert_eq!(candidate.get_database(), Some("giftd"));
            assert_eq!(candidate.get_application_name(), Some("x"));
            // Whichever host the pool follows, its sessions start with giftd's settings.
            assert_eq!(candidate.get_options(), Some("-c backend_flush_after=256kB"));
        }
        assert!(hosts.needs_watching());
    }

    #[test]
    fn one_host_without_session_attributes_is_not_watched() {
        let hosts = Hosts::parse("postgresql://db.internal/giftd").unwrap();
        assert_eq!(hosts.candidates.len(), 1);
        assert!(!hosts.writable_only);
        assert!(!hosts.needs_watching());
    }

    #[test]
    fn unknown_session_attributes_and_empty_or_too_many_hosts_are_refused() {
        assert!(Hosts::parse("postgres://db/giftd?target_session_attrs=standby").is_err());
        assert!(Hosts::parse("postgres://db1,,db2/giftd").is_err());
        let nine = (0..9).map(|i| format!("db{i}")).collect::<Vec<_>>().join(",");
        assert!(Hosts::parse(&format!("postgres://{nine}/giftd")).is_err());
    }
}
