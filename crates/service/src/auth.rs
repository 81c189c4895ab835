//! Remembering API keys already checked: every request presents its merchant's key, and
//! looking it up in the database each time would cost a read (on SQLite a hand-off to a reader
//! thread) for an answer that almost never changes. Keys are remembered by their keyed hash
//! only, for [`API_KEY_CACHE_SECONDS`]; a key revoked by another process stops working within
//! that time (one revoked or rotated by this process, at once: the cache is cleared). Expiry
//! and scope are checked on every request. Unknown keys are never remembered, so a caller trying keys cannot fill the cache, and
//! each wrong key still costs a lookup. No IO here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use giftd_domain::{ApiKeyId, MerchantId, Scope, Timestamp};
use giftd_store::ApiKeyRecord;

/// How long a checked key is trusted without asking the database again.
pub const API_KEY_CACHE_SECONDS: u64 = 60;
/// Keys remembered at most; past it the expired ones go, or, if none has expired, all of them.
pub const API_KEY_CACHE_ENTRIES: usize = 10_000;

/// What a request needs of a key that works: its id, merchant, scope and when it expires (a
/// revoked key is never remembered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyGrant {
    /// The key's id (what the audit trail names), never the key.
    pub id: ApiKeyId,
    pub merchant: MerchantId,
    pub scope: Scope,
    pub expires_at: Option<Timestamp>,
}

impl KeyGrant {
    pub(crate) fn of(key: &ApiKeyRecord) -> Self {
        Self {
            id: key.id.clone(),
            merchant: key.merchant_id.clone(),
            scope: key.scope,
            expires_at: key.expires_at,
        }
    }

    /// Whether the key is past its expiry at `now`.
    pub(crate) fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

#[derive(Default)]
pub(crate) struct ApiKeyCache {
    entries: Mutex<HashMap<Vec<u8>, (KeyGrant, Instant)>>,
}

impl ApiKeyCache {
    const TTL: Duration = Duration::from_secs(API_KEY_CACHE_SECONDS);

    /// A key checked less than [`API_KEY_CACHE_SECONDS`] ago (its expiry and scope are still
    /// the caller's to check).
    pub(crate) fn get(&self, key_hash: &[u8]) -> Option<KeyGrant> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key_hash)
            .filter(|(_, checked_at)| checked_at.elapsed() < Self::TTL)
            .map(|(grant, _)| grant.clone())
    }

    /// Remembers a key the database has just confirmed.
    pub(crate) fn put(&self, key_hash: Vec<u8>, grant: KeyGrant) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= API_KEY_CACHE_ENTRIES && !entries.contains_key(&key_hash) {
            entries.retain(|_, (_, checked_at)| checked_at.elapsed() < Self::TTL);
            if entries.len() >= API_KEY_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key_hash, (grant, Instant::now()));
    }

    /// Forgets every key: after a key changed (revoked, rotated) in this process.
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(merchant: &str) -> KeyGrant {
        KeyGrant {
            id: ApiKeyId::new("key_1"),
            merchant: MerchantId::new(merchant),
            scope: Scope::Full,
            expires_at: None,
        }
    }

    #[test]
    fn a_remembered_key_answers_its_record_and_an_unknown_key_nothing() {
        let cache = ApiKeyCache::default();
        cache.put(vec![1; 32], key("mer_a"));
        assert_eq!(cache.get(&[1; 32]), Some(key("mer_a")));
        assert_eq!(cache.get(&[2; 32]), None);
        cache.clear();
        assert_eq!(cache.get(&[1; 32]), None);
    }

    #[test]
    fn a_full_cache_makes_room_instead_of_growing() {
        let cache = ApiKeyCache::default();
        for i in 0..=API_KEY_CACHE_ENTRIES {
            cache.put(i.to_be_bytes().to_vec(), key("mer_a"));
        }
        let size = cache.entries.lock().unwrap().len();
        assert!(size <= API_KEY_CACHE_ENTRIES, "{size} entries");
        let last = API_KEY_CACHE_ENTRIES.to_be_bytes();
        assert_eq!(cache.get(&last), Some(key("mer_a")));
    }
}
