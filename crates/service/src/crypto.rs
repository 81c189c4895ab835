//! Key material and what giftd does with it: card numbers encrypted with AES-256-GCM, keyed
//! fingerprints (HMAC-SHA-256) to find a card by number, keyed hashes of security codes and API
//! keys and Clover card tokens, and encryption of stored idempotent responses (one may carry a
//! new card's number).
//!
//! Every key is derived from one 32-byte master key, read from `GIFTD_MASTER_KEY` or generated
//! once into the data folder with mode 0600. Nothing here logs or displays a secret.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

type HmacSha256 = Hmac<Sha256>;

const NONCE_LENGTH: usize = 12;
pub const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("GIFTD_MASTER_KEY must be 64 hexadecimal digits (32 bytes)")]
    BadEnvironmentKey,
    #[error("the key file {path} must hold 64 hexadecimal digits")]
    BadKeyFile { path: String },
    #[error("cannot read or create the key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The master key. Its `Debug` is redacted, and its bytes are wiped from memory when it is
/// dropped (as are those of the keys derived from it, and of its hex text on the way in).
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    pub fn from_hex(hex_digits: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex::decode(hex_digits.trim()).ok()?);
        Some(Self(bytes.as_slice().try_into().ok()?))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// `GIFTD_MASTER_KEY` when set (given as `from_environment`), else the key file in
    /// `data_dir`, created with mode 0600 on first use.
    pub fn load(from_environment: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(value) = from_environment {
            return Self::from_hex(value).ok_or(KeyError::BadEnvironmentKey);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path).map(Zeroizing::new) {
            Ok(text) => Self::from_hex(&text).ok_or_else(|| KeyError::BadKeyFile {
                path: path.display().to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut file = options.open(&path).map_err(io)?;
                file.write_all(Zeroizing::new(hex::encode(key.0)).as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(error) => Err(io(error)),
        }
    }
}

/// The keys derived from the master key, one per purpose.
pub struct Keys {
    cipher: Aes256Gcm,
    fingerprint: [u8; 32],
    security_code: [u8; 32],
    api_key: [u8; 32],
    clover_token: [u8; 32],
    staff_session: [u8; 32],
    cardholder_token: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        // The cipher wipes its own key schedule (aes-gcm's `zeroize` feature).
        self.fingerprint.zeroize();
        self.security_code.zeroize();
        self.api_key.zeroize();
        self.staff_session.zeroize();
        self.clover_token.zeroize();
        self.cardholder_token.zeroize();
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(redacted)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") never collide.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl Keys {
    pub fn derive(master: &MasterKey) -> Self {
        let derive = |label: &str| hmac(&master.0, &[b"giftd key derivation v1", label.as_bytes()]);
        let encryption = Zeroizing::new(derive("encryption"));
        Self {
            cipher: Aes256Gcm::new_from_slice(encryption.as_slice()).expect("32-byte AES-256 key"),
            fingerprint: derive("card number fingerprint"),
            security_code: derive("security code hash"),
            api_key: derive("api key hash"),
            clover_token: derive("clover token hash"),
            staff_session: derive("staff session token hash"),
            cardholder_token: derive("cardholder link token hash"),
        }
    }

    /// The lookup key of a card number within one merchant.
    pub fn card_fingerprint(&self, merchant_id: &str, number: &str) -> Vec<u8> {
        hmac(&self.fingerprint, &[merchant_id.as_bytes(), number.as_bytes()]).to_vec()
    }

    pub fn security_code_hash(&self, card_id: &str, code: &str) -> Vec<u8> {
        hmac(&self.security_code, &[card_id.as_bytes(), code.as_bytes()]).to_vec()
    }

    pub fn api_key_hash(&self, api_key: &str) -> Vec<u8> {
        hmac(&self.api_key, &[api_key.as_bytes()]).to_vec()
    }

    /// The stored form of a staff member's session token: kept only as this keyed hash.
    pub fn staff_session_hash(&self, token: &str) -> Vec<u8> {
        hmac(&self.staff_session, &[token.as_bytes()]).to_vec()
    }

    /// The stored form of a cardholder link's token: kept only as this keyed hash.
    pub fn cardholder_token_hash(&self, token: &str) -> Vec<u8> {
        hmac(&self.cardholder_token, &[token.as_bytes()]).to_vec()
    }

    /// The stored form of a Clover card token: tokens are kept only as this keyed hash.
    pub fn clover_token_hash(&self, token: &str) -> Vec<u8> {
        hmac(&self.clover_token, &[token.as_bytes()]).to_vec()
    }

    /// AES-256-GCM with a random nonce; `context` is bound as associated data, so a ciphertext
    /// moved to another row does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LENGTH];
        rand::rng().fill_bytes(&mut nonce_bytes);
        let nonce = Nonce::try_from(&nonce_bytes[..]).expect("12-byte nonce");
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LENGTH + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn decrypt(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LENGTH {
            return None;
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LENGTH);
        let nonce = Nonce::try_from(nonce_bytes).ok()?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
    }
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_binds_its_context() {
        let keys = Keys::derive(&MasterKey::generate());
        let sealed = keys.encrypt(b"6036000011112222", b"card_a");
        assert_eq!(
            keys.decrypt(&sealed, b"card_a").as_deref(),
            Some(&b"6036000011112222"[..])
        );
        assert_eq!(keys.decrypt(&sealed, b"card_b"), None);
        assert!(!sealed.windows(16).any(|w| w == b"6036000011112222"));
    }

    #[test]
    fn fingerprints_depend_on_merchant_and_key() {
        let master = MasterKey::generate();
        let keys = Keys::derive(&master);
        let other = Keys::derive(&MasterKey::generate());
        let a = keys.card_fingerprint("mer_a", "6036000011112222");
        assert_eq!(a, keys.card_fingerprint("mer_a", "6036000011112222"));
        assert_ne!(a, keys.card_fingerprint("mer_b", "6036000011112222"));
        assert_ne!(a, other.card_fingerprint("mer_a", "6036000011112222"));
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load(None, dir.path()).unwrap();
        let second = MasterKey::load(None, dir.path()).unwrap();
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(format!("{first:?}").contains("redacted"));
    }
}
