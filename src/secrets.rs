//! Secrets at rest: the master key, AES-256-GCM sealing of AWS secret keys, and the API token.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext+tag`. The record id is bound in as
//! associated data, so a ciphertext copied onto another record fails to open.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
pub const MASTER_KEY_FILE: &str = "master.key";
pub const API_TOKEN_FILE: &str = "api-token";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("TRIBUTARY_MASTER_KEY must be 64 hex characters (32 bytes); generate one with `openssl rand -hex 32`")]
    BadMasterKey,
    #[error("master key file {path} is damaged (expected 64 hex characters); restore it from backup — without it stored secrets cannot be read")]
    BadKeyFile { path: PathBuf },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a stored secret could not be decrypted: the master key differs from the one it was sealed with; start Tributary with the original TRIBUTARY_MASTER_KEY or data directory")]
    Open,
}

/// The key that seals every secret Tributary stores. Never logged: `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(****)")
    }
}

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadMasterKey)?;
        if bytes.len() != KEY_LEN {
            return Err(SecretError::BadMasterKey);
        }
        Ok(Self(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    /// The configured key, else `DIR/master.key`, generated (mode 0600) on first start.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(text) = configured {
            return Self::from_hex(text);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let text = read_or_create(&path, || {
            let mut key = [0u8; KEY_LEN];
            rand::thread_rng().fill_bytes(&mut key);
            hex::encode(key)
        })?;
        Self::from_hex(&text.value).map_err(|_| SecretError::BadKeyFile { path })
    }

    pub fn seal(&self, plaintext: &[u8], record_id: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(&self.0);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: record_id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], record_id: &str) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        Aes256Gcm::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: record_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)
    }
}

/// The bearer token of the HTTP API and whether it was generated just now (then it is printed
/// once so the operator can copy it).
#[derive(Clone)]
pub struct ApiToken {
    pub value: String,
    pub generated: bool,
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(****)")
    }
}

impl ApiToken {
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(value) = configured {
            return Ok(Self {
                value: value.to_owned(),
                generated: false,
                path: None,
            });
        }
        let path = data_dir.join(API_TOKEN_FILE);
        let file = read_or_create(&path, || {
            let mut bytes = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut bytes);
            format!("trb_{}", hex::encode(bytes))
        })?;
        Ok(Self {
            value: file.value,
            generated: file.created,
            path: Some(path),
        })
    }

    /// Constant-time comparison, so response timing reveals nothing about the token. Both
    /// sides are hashed first: comparing the raw bytes would return early on a length mismatch
    /// and so tell the token's length.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let want = Sha256::digest(self.value.as_bytes());
        let got = Sha256::digest(presented.as_bytes());
        want.as_slice().ct_eq(got.as_slice()).into()
    }
}

struct FileValue {
    value: String,
    created: bool,
}

/// Reads a one-line secret file, or creates it with mode 0600 (never readable by others).
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<FileValue, SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return Ok(FileValue {
                value: text.trim().to_owned(),
                created: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(io)?;
    }
    let value = make();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(FileValue {
        value,
        created: true,
    })
}

/// Mode of the data directory: only its owner may list or enter it (it holds personal data).
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file Tributary creates in it: stores, their WAL/SHM, the key, the token.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700. An existing directory that others can
/// read or enter is narrowed to 0700, with a warning, since older versions left it 0755.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)?;
    narrow_mode(dir, PRIVATE_DIR_MODE)
}

/// Creates `path` empty with mode 0600 when it does not exist, or narrows an existing file that
/// others can read to 0600. SQLite gives a database's WAL and SHM files the mode of the
/// database file, so a private database file keeps those private too.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            narrow_mode(path, PRIVATE_FILE_MODE)
        }
        Err(e) => Err(e),
    }
}

/// Sets `mode` on `path` when group or others have any access to it.
fn narrow_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            from = format!("{current:o}"),
            to = format!("{mode:o}"),
            "narrowing permissions: others could read Tributary's data"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// A random identifier for external IDs and similar: 32 hex characters.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_secrets_round_trip_and_are_bound_to_their_record() {
        let key = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
        let sealed = key.seal(b"wJalrXUtnFEMI", "auth-1");
        assert!(!sealed.windows(13).any(|w| w == b"wJalrXUtnFEMI"));
        assert_eq!(key.open(&sealed, "auth-1").unwrap(), b"wJalrXUtnFEMI");
        assert!(matches!(
            key.open(&sealed, "auth-2"),
            Err(SecretError::Open)
        ));
        let other = MasterKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(matches!(
            other.open(&sealed, "auth-1"),
            Err(SecretError::Open)
        ));
    }

    #[test]
    fn key_and_token_files_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = MasterKey::load_or_create(None, dir.path()).unwrap();
        let k2 = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(k1.0, k2.0);
        let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let t1 = ApiToken::load_or_create(None, dir.path()).unwrap();
        assert!(t1.generated);
        let t2 = ApiToken::load_or_create(None, dir.path()).unwrap();
        assert!(!t2.generated);
        assert_eq!(t1.value, t2.value);
        assert!(t2.matches(&t1.value));
        assert!(!t2.matches("trb_wrong"));
        assert!(!t2.matches(""));
        assert!(!t2.matches(&format!("{}x", t1.value)));
        assert!(!t2.matches(&t1.value[..t1.value.len() - 1]));
        let mode = std::fs::metadata(dir.path().join(API_TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn private_dirs_and_files_are_created_private_and_widened_ones_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = dir.join("store.db");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);

        // Left wide by an older version: narrowed, contents kept.
        std::fs::write(&file, b"kept").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
    }

    #[test]
    fn bad_master_keys_are_rejected_with_a_hint() {
        assert!(MasterKey::from_hex("short")
            .unwrap_err()
            .to_string()
            .contains("openssl rand"));
    }
}
