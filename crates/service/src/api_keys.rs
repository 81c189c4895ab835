//! A merchant's API keys: several, each named, with a scope (`giftd_domain::Scope`), an optional
//! expiry, a visible prefix and the time it was last used; created, rotated (the old key kept
//! working for a grace period the caller picks) and revoked. A key is shown once, when made;
//! giftd keeps only its keyed hash. The `ApiKeyCommand` family writes them; `Service::authenticate`
//! checks a presented key (through `auth.rs`'s cache) against what the request needs.

use async_trait::async_trait;
use giftd_domain::{Access, ApiKeyId, MerchantId, Scope, Timestamp};
use giftd_store::{ApiKeyRecord, StoreResult, WriteTx};
use rand::Rng;

use crate::auth::KeyGrant;
use crate::error::{Failure, Refusal, ServiceError};
use crate::operation::{Context, Operation};
use crate::webhooks::Before;
use crate::{IdempotencyKey, Rendered, Renderer, Service};

/// Most API keys that work at once per merchant (revoked and expired ones do not count), and
/// the most a listing shows.
pub const MAX_API_KEYS: u32 = 100;
/// Longest key name.
pub const MAX_API_KEY_NAME_LENGTH: usize = 100;
/// Longest grace period a rotation may give the old key: 30 days.
pub const MAX_ROTATION_GRACE_SECONDS: i64 = 30 * 24 * 3600;
/// Characters of a key shown as its prefix (`gk_` and 5 more): enough to tell keys apart, far
/// too few to guess the rest (the key has 192 random bits).
pub const API_KEY_PREFIX_LENGTH: usize = 8;

#[derive(Debug, Clone)]
pub enum ApiKeyCommand {
    /// A new key (`secret` is the key itself, shown once; only its hash is stored).
    Create {
        key: ApiKeyRecord,
        key_hash: Vec<u8>,
        secret: ApiKeySecret,
    },
    /// A new key with the old one's name, scope and expiry; the old one keeps working until
    /// `old_until` (or its own expiry, if sooner).
    Rotate {
        id: ApiKeyId,
        old_until: Timestamp,
        new_key: ApiKeyRecord,
        key_hash: Vec<u8>,
        secret: ApiKeySecret,
    },
    Revoke {
        id: ApiKeyId,
    },
    /// Records a use (at most once a minute per key and process; see `auth.rs`).
    Touch {
        id: ApiKeyId,
    },
}

#[derive(Debug, Clone)]
pub enum ApiKeyOutcome {
    /// A new key with the key itself, to be shown once.
    Created {
        key: ApiKeyRecord,
        secret: ApiKeySecret,
    },
    Key(ApiKeyRecord),
    Touched,
}

/// An API key in clear: in the answer that made it only, never in `Debug` output.
#[derive(Clone)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// A new key: `gk_` and 48 hex digits (192 random bits).
    fn new() -> Self {
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        Self(format!("gk_{}", hex::encode(secret)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(redacted)")
    }
}

#[async_trait]
impl Operation for ApiKeyCommand {
    type Outcome = ApiKeyOutcome;

    fn audit_objects(&self, outcome: &ApiKeyOutcome) -> Vec<String> {
        match (self, outcome) {
            (Self::Rotate { id, .. }, ApiKeyOutcome::Created { key, .. }) => {
                vec![id.to_string(), key.id.to_string()]
            }
            (_, ApiKeyOutcome::Created { key, .. } | ApiKeyOutcome::Key(key)) => vec![key.id.to_string()],
            (_, ApiKeyOutcome::Touched) => Vec::new(),
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<ApiKeyOutcome, Failure> {
        match self {
            Self::Create {
                key,
                key_hash,
                secret,
            } => {
                tx.insert_api_key(key, key_hash).await?;
                Ok(ApiKeyOutcome::Created {
                    key: key.clone(),
                    secret: secret.clone(),
                })
            }
            Self::Rotate {
                id,
                old_until,
                new_key,
                key_hash,
                secret,
            } => {
                let mut old = live_key(tx, cx, id).await?;
                // The new key takes the old one's name, scope and expiry.
                let new_key = ApiKeyRecord {
                    name: old.name.clone(),
                    scope: old.scope,
                    expires_at: old.expires_at,
                    ..new_key.clone()
                };
                // A grace period never lengthens the old key's life.
                old.expires_at = Some(old.expires_at.map_or(*old_until, |at| at.min(*old_until)));
                tx.end_api_key(&old).await?;
                tx.insert_api_key(&new_key, key_hash).await?;
                Ok(ApiKeyOutcome::Created {
                    key: new_key,
                    secret: secret.clone(),
                })
            }
            Self::Revoke { id } => {
                let mut key = tx
                    .api_key(cx.merchant, id)
                    .await?
                    .ok_or(Refusal::NotFound("API key"))?;
                if key.revoked_at.is_none() {
                    key.revoked_at = Some(cx.now);
                    tx.end_api_key(&key).await?;
                }
                Ok(ApiKeyOutcome::Key(key))
            }
            Self::Touch { id } => {
                tx.touch_api_key(id, cx.now).await?;
                Ok(ApiKeyOutcome::Touched)
            }
        }
    }

    async fn events(
        &self,
        _: &mut dyn WriteTx,
        _: &Context<'_>,
        _: &ApiKeyOutcome,
        _: Before,
    ) -> StoreResult<()> {
        Ok(())
    }
}

/// A key that still works, for a rotation.
async fn live_key(tx: &mut dyn WriteTx, cx: &Context<'_>, id: &ApiKeyId) -> Result<ApiKeyRecord, Failure> {
    let key = tx
        .api_key(cx.merchant, id)
        .await?
        .ok_or(Refusal::NotFound("API key"))?;
    if !works(&key, cx.now) {
        return Err(Refusal::Invalid {
            param: "id",
            message: "this API key is revoked or expired: create a new one".into(),
        }
        .into());
    }
    Ok(key)
}

/// Whether a key is neither revoked nor past its expiry at `now`.
fn works(key: &ApiKeyRecord, now: Timestamp) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|at| now < at)
}

/// What `POST /v1/api_keys` asks.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub scope: Scope,
    pub expires_at: Option<Timestamp>,
}

impl Service {
    /// Checks a presented key for a request that needs `access`: the merchant it belongs to,
    /// or `Unauthorized` (unknown, revoked, expired) or `InsufficientScope`. A key checked in
    /// the last minute is not looked up again (`auth.rs`); a look-up records the key's use.
    pub async fn authenticate(&self, api_key: &str, access: Access) -> Result<MerchantId, ServiceError> {
        if api_key.is_empty() || api_key.len() > 256 {
            return Err(ServiceError::Unauthorized);
        }
        let key_hash = self.inner.keys.api_key_hash(api_key);
        let grant = match self.inner.api_keys.get(&key_hash) {
            Some(grant) => grant,
            None => {
                let key = self
                    .inner
                    .store
                    .api_key_by_hash(&key_hash)
                    .await?
                    .ok_or(ServiceError::Unauthorized)?;
                if !works(&key, self.now()) {
                    return Err(ServiceError::Unauthorized);
                }
                self.record_use(&key);
                let grant = KeyGrant::of(&key);
                self.inner.api_keys.put(key_hash, grant.clone());
                grant
            }
        };
        // A remembered key may have expired since.
        if grant.expired(self.now()) {
            return Err(ServiceError::Unauthorized);
        }
        // Known from here on, a refusal for want of scope included.
        crate::audit::identify(&grant.merchant, crate::audit::Actor::ApiKey(grant.id.clone()));
        if !grant.scope.allows(access) {
            return Err(ServiceError::InsufficientScope { scope: grant.scope });
        }
        Ok(grant.merchant)
    }

    /// Records a key's use without making the request wait for it.
    fn record_use(&self, key: &ApiKeyRecord) {
        let command = ApiKeyCommand::Touch { id: key.id.clone() };
        self.execute_in_background(key.merchant_id.clone(), command, "an API key's last use");
    }

    /// A new key of the merchant (shown once, in the answer `render` makes).
    pub async fn create_api_key(
        &self,
        merchant: MerchantId,
        new: NewApiKey,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<ApiKeyOutcome>,
    ) -> Result<Rendered, ServiceError> {
        check_name(&new.name)?;
        if new.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(ServiceError::Invalid {
                param: "expires_at",
                message: "expires_at must be in the future".into(),
            });
        }
        self.check_room(&merchant).await?;
        let (key, key_hash, secret) = self.fresh_key(&merchant, &new);
        let rendered = self
            .execute(
                merchant,
                ApiKeyCommand::Create {
                    key,
                    key_hash,
                    secret,
                },
                idempotency,
                render,
            )
            .await;
        self.inner.api_keys.clear();
        rendered
    }

    /// A new key in place of `id`, which keeps working for `grace_seconds` more.
    pub async fn rotate_api_key(
        &self,
        merchant: MerchantId,
        id: ApiKeyId,
        grace_seconds: i64,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<ApiKeyOutcome>,
    ) -> Result<Rendered, ServiceError> {
        if !(0..=MAX_ROTATION_GRACE_SECONDS).contains(&grace_seconds) {
            return Err(ServiceError::Invalid {
                param: "grace_seconds",
                message: format!("grace_seconds must be 0 to {MAX_ROTATION_GRACE_SECONDS} (30 days)"),
            });
        }
        let placeholder = NewApiKey {
            name: String::new(),
            scope: Scope::Full,
            expires_at: None,
        };
        let (new_key, key_hash, secret) = self.fresh_key(&merchant, &placeholder);
        let command = ApiKeyCommand::Rotate {
            id,
            old_until: self.now().plus_seconds(grace_seconds),
            new_key,
            key_hash,
            secret,
        };
        let rendered = self.execute(merchant, command, idempotency, render).await;
        self.inner.api_keys.clear();
        rendered
    }

    /// Revokes a key: it stops working at once in this process, within a minute in others.
    pub async fn revoke_api_key(
        &self,
        merchant: MerchantId,
        id: ApiKeyId,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<ApiKeyOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let rendered = self
            .execute(merchant, ApiKeyCommand::Revoke { id }, idempotency, render)
            .await;
        self.inner.api_keys.clear();
        rendered
    }

    /// Refuses a new key past [`MAX_API_KEYS`] working ones (read before the write: two made at
    /// once may pass the limit by one). A rotation does not ask: it replaces a key, whose
    /// grace period ends.
    async fn check_room(&self, merchant: &MerchantId) -> Result<(), ServiceError> {
        if self
            .inner
            .store
            .working_api_key_count(merchant, self.now())
            .await?
            >= i64::from(MAX_API_KEYS)
        {
            return Err(ServiceError::Invalid {
                param: "name",
                message: format!(
                    "a merchant has at most {MAX_API_KEYS} API keys that work: revoke one first"
                ),
            });
        }
        Ok(())
    }

    /// The merchant's keys, newest first (never the keys themselves).
    pub async fn api_keys(&self, merchant: &MerchantId) -> Result<Vec<ApiKeyRecord>, ServiceError> {
        Ok(self.inner.store.api_keys(merchant, MAX_API_KEYS).await?)
    }

    /// A key's record, its id, hash and secret.
    pub(crate) fn fresh_key(
        &self,
        merchant: &MerchantId,
        new: &NewApiKey,
    ) -> (ApiKeyRecord, Vec<u8>, ApiKeySecret) {
        let secret = ApiKeySecret::new();
        let key = ApiKeyRecord {
            id: crate::ids::api_key(),
            merchant_id: merchant.clone(),
            name: new.name.trim().to_owned(),
            scope: new.scope,
            prefix: Some(secret.expose()[..API_KEY_PREFIX_LENGTH].to_owned()),
            created_at: self.now(),
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        (key, self.inner.keys.api_key_hash(secret.expose()), secret)
    }
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_API_KEY_NAME_LENGTH {
        return Err(ServiceError::Invalid {
            param: "name",
            message: format!("name must be 1 to {MAX_API_KEY_NAME_LENGTH} characters"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_clear_never_shows_in_debug_output() {
        let secret = ApiKeySecret::new();
        assert!(secret.expose().starts_with("gk_") && secret.expose().len() == 51);
        let shown = format!("{:?}", ApiKeyOutcome::Touched) + &format!("{secret:?}");
        assert!(!shown.contains(secret.expose()));
        assert!(shown.contains("redacted"));
    }
}
