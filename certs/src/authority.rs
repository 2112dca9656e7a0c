//! A certificate authority that issues serving and leaf certificates.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{CertError, pem};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct CertifiedPair {
    /// The certificate (for a leaf: the leaf only; see [`Authority::cert_pem`]
    /// for the CA).
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A CA able to sign certificates.
pub struct Authority {
    pair: CertifiedPair,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("pair", &self.pair)
            .finish()
    }
}

/// How far back `not_before` is set, to tolerate clock skew between nodes.
const BACKDATE: Duration = Duration::minutes(5);

impl Authority {
    /// Generates a new self-signed CA (ECDSA P-256) valid for `validity`.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Authority, CertError> {
        let key = KeyPair::generate().map_err(CertError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Tollgate");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        let cert = params.self_signed(&key).map_err(CertError::Generate)?;
        let pair = CertifiedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Authority {
            pair,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CertError::Pem {
            what: "CA key".into(),
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| CertError::Pem {
            what: "CA certificate".into(),
            reason: e.to_string(),
        })?;
        Ok(Authority {
            pair: CertifiedPair {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
            issuer,
        })
    }

    /// Loads a CA from `ca.crt` and `ca.key` in `dir`.
    pub fn load(dir: &Path) -> Result<Authority, CertError> {
        let cert = pem::read(&dir.join("ca.crt"))?;
        let key = pem::read(&dir.join("ca.key"))?;
        Self::from_pem(
            &String::from_utf8_lossy(&cert),
            &String::from_utf8_lossy(&key),
        )
    }

    /// Loads the CA in `dir`, or generates one there if none exists.
    pub fn load_or_generate(
        dir: &Path,
        common_name: &str,
        validity: Duration,
    ) -> Result<Authority, CertError> {
        if dir.join("ca.crt").exists() && dir.join("ca.key").exists() {
            return Self::load(dir);
        }
        let ca = Self::generate(common_name, validity)?;
        ca.save(dir)?;
        Ok(ca)
    }

    /// Writes `ca.crt` and `ca.key` (mode 0600) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        pem::write_atomic(&dir.join("ca.crt"), self.pair.cert_pem.as_bytes(), false)?;
        pem::write_atomic(&dir.join("ca.key"), self.pair.key_pem.as_bytes(), true)
    }

    /// The CA certificate, PEM (the webhook configuration's `caBundle`,
    /// base64-encoded).
    pub fn cert_pem(&self) -> &str {
        &self.pair.cert_pem
    }

    /// The CA certificate and key.
    pub fn pair(&self) -> &CertifiedPair {
        &self.pair
    }

    /// Issues a TLS server certificate for `names` (DNS names or IP
    /// addresses; the first is the common name), valid for `validity`.
    pub fn issue_server(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<CertifiedPair, CertError> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(CertError::Generate)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        let key = KeyPair::generate().map_err(CertError::Generate)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CertError::Generate)?;
        Ok(CertifiedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes a serving pair as `tls.crt` and `tls.key` (mode 0600) into `dir`,
/// the file names of a `kubernetes.io/tls` Secret.
pub fn save_serving(dir: &Path, pair: &CertifiedPair) -> Result<(), CertError> {
    pem::write_atomic(&dir.join("tls.key"), pair.key_pem.as_bytes(), true)?;
    pem::write_atomic(&dir.join("tls.crt"), pair.cert_pem.as_bytes(), false)
}

/// The `notAfter` of the first certificate in a PEM document.
pub fn not_after(cert_pem: &[u8]) -> Result<OffsetDateTime, CertError> {
    let certs = pem::parse_certs(cert_pem, "certificate")?;
    let first = certs.first().ok_or_else(|| CertError::Pem {
        what: "certificate".into(),
        reason: "empty chain".into(),
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(first).map_err(|e| CertError::Pem {
        what: "certificate".into(),
        reason: e.to_string(),
    })?;
    Ok(cert.validity().not_after.to_datetime())
}
