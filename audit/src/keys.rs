//! Checkpoint signing keys: Ed25519, PKCS#8 private keys (PEM or DER, as
//! `openssl genpkey -algorithm ed25519` or `tollgate audit keygen` write
//! them) and SubjectPublicKeyInfo public keys (PEM `PUBLIC KEY`).
//!
//! A key is named by its *key id*: the first 8 bytes of SHA-256 of the raw
//! 32-byte public key, in hex. Every checkpoint names the key that signed
//! it, and the journal keeps each public key it ever used in `keys/`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

use crate::Error;
use crate::record::hex;

/// File name of a generated signing key in the state directory.
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
/// File name of its public key, beside it.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the
/// 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The private key that signs checkpoints.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

/// A public key that verifies checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    public: [u8; 32],
    id: String,
}

/// The key id of a raw public key.
pub fn key_id(public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    hex(digest.as_ref().get(..8).unwrap_or_default())
}

/// PEM-encodes `der` under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn key_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl SigningKey {
    /// Loads a PKCS#8 Ed25519 key (PEM or DER).
    pub fn load(path: &Path) -> Result<SigningKey, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        let der = match PrivatePkcs8KeyDer::from_pem_slice(&bytes) {
            Ok(der) => der.secret_pkcs8_der().to_vec(),
            Err(_) if bytes.first() == Some(&0x30) => bytes,
            Err(e) => {
                return Err(key_error(
                    path,
                    format!("not a PKCS#8 private key (PEM \"PRIVATE KEY\" or DER): {e}"),
                ));
            }
        };
        SigningKey::from_pkcs8(&der, path)
    }

    /// A key from PKCS#8 DER bytes (v1 or v2); `origin` names where they
    /// came from, in errors.
    pub fn from_pkcs8(der: &[u8], origin: &Path) -> Result<SigningKey, Error> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| key_error(origin, format!("not an Ed25519 PKCS#8 key: {e}")))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(SigningKey {
            pair,
            id,
            path: origin.to_owned(),
        })
    }

    /// Generates a new key and writes it to `path` (mode 0600, PEM), with
    /// its public key beside it (`<path without extension>.pub`).
    pub fn generate(path: &Path) -> Result<SigningKey, Error> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| key_error(path, "the system random generator failed"))?;
        let pem_text = pem("PRIVATE KEY", doc.as_ref());
        tollgate_certs::pem::write_atomic(path, pem_text.as_bytes(), true)
            .map_err(|e| key_error(path, e.to_string()))?;
        let key = SigningKey::load(path)?;
        let public_path = path.with_extension("pub");
        tollgate_certs::pem::write_atomic(&public_path, key.public_pem().as_bytes(), false)
            .map_err(|e| key_error(&public_path, e.to_string()))?;
        Ok(key)
    }

    /// The key at `explicit` if given (it must exist: a configured key that
    /// is missing is an error, never silently replaced), else
    /// `state_dir/audit-signing.key`, generated on first use.
    pub fn load_or_generate(
        explicit: Option<&Path>,
        state_dir: &Path,
    ) -> Result<SigningKey, Error> {
        if let Some(path) = explicit {
            return SigningKey::load(path);
        }
        let path = state_dir.join(SIGNING_KEY_FILE);
        if path.exists() {
            SigningKey::load(&path)
        } else {
            SigningKey::generate(&path)
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey {
            public,
            id: self.id.clone(),
        }
    }

    /// The public key as PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        self.verifying_key().to_pem()
    }
}

impl VerifyingKey {
    /// Parses a PEM `PUBLIC KEY`, its DER, or the raw 32 bytes.
    pub fn parse(bytes: &[u8]) -> Result<VerifyingKey, String> {
        let der: Vec<u8> = match SubjectPublicKeyInfoDer::from_pem_slice(bytes) {
            Ok(der) => der.as_ref().to_vec(),
            Err(_) => bytes.to_vec(),
        };
        let raw: &[u8] = if der.len() == 44 && der.starts_with(&SPKI_PREFIX) {
            der.get(12..).unwrap_or_default()
        } else if der.len() == 32 {
            &der
        } else {
            return Err(
                "not an Ed25519 public key (PEM \"PUBLIC KEY\", its DER, or 32 raw bytes)".into(),
            );
        };
        let mut public = [0u8; 32];
        public.copy_from_slice(raw);
        Ok(VerifyingKey {
            public,
            id: key_id(&public),
        })
    }

    /// Reads and parses a public key file.
    pub fn load(path: &Path) -> Result<VerifyingKey, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        VerifyingKey::parse(&bytes).map_err(|reason| key_error(path, reason))
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `signature` is a valid signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .is_ok()
    }

    /// PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.public);
        pem("PUBLIC KEY", &der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_generate(None, dir.path()).unwrap();
        let again = SigningKey::load_or_generate(None, dir.path()).unwrap();
        assert_eq!(key.id(), again.id(), "the generated key is reused");
        let public = VerifyingKey::load(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(public.id(), key.id());
        let sig = key.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn openssl_style_v1_pkcs8_and_raw_public_keys_load() {
        // PKCS#8 v1 (no public key inside), as `openssl genpkey -algorithm
        // ed25519` writes: the RFC 8410 section 10.3 example key.
        let v1 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, v1).unwrap();
        let key = SigningKey::load(&path).unwrap();
        // RFC 8410 section 10.1: the matching public key.
        let spki = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let public = VerifyingKey::parse(spki.as_bytes()).unwrap();
        assert_eq!(public.id(), key.id());
        assert_eq!(
            VerifyingKey::parse(public.to_pem().as_bytes()).unwrap(),
            public
        );
        assert!(public.verify(b"m", &key.sign(b"m")));
    }

    #[test]
    fn missing_explicit_key_and_junk_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(SigningKey::load_or_generate(Some(&missing), dir.path()).is_err());
        assert!(!missing.exists(), "an explicit key is never generated");
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "not a key").unwrap();
        let err = SigningKey::load(&junk).unwrap_err().to_string();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(VerifyingKey::parse(b"short").is_err());
    }
}
