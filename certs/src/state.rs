//! The embedded default: a CA and a serving certificate kept in a state
//! directory (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`), generated on first
//! start, reused while valid, and renewed before they expire or when the
//! names they must cover change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::{Authority, CertError, CertifiedPair, not_after, pem, save_serving, tls};

/// The CA's common name.
pub const CA_COMMON_NAME: &str = "Tollgate webhook CA";

/// The names every generated serving certificate covers, so local clients
/// can reach the webhook on loopback.
pub const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Lifetimes of generated certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long a new CA is valid.
    pub ca: Duration,
    /// How long a new serving certificate is valid.
    pub serving: Duration,
    /// Renew a certificate when it expires within this window.
    pub renew_before: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ca: Duration::days(3650),
            serving: Duration::days(365),
            renew_before: Duration::days(30),
        }
    }
}

/// What [`ensure_serving`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The files were present and valid.
    Reused,
    /// Created from nothing.
    Generated,
    /// Replaced, for the reason given.
    Renewed(String),
}

/// The state directory's files, ready to serve.
#[derive(Debug, Clone)]
pub struct ServingState {
    /// `ca.crt`.
    pub ca_cert: PathBuf,
    /// `tls.crt`.
    pub cert: PathBuf,
    /// `tls.key`.
    pub key: PathBuf,
    /// The CA certificate, PEM (the webhook configurations' `caBundle` is
    /// its base64).
    pub ca_pem: String,
    /// What happened to the CA.
    pub ca_action: Action,
    /// What happened to the serving certificate.
    pub serving_action: Action,
    /// When the serving certificate expires.
    pub not_after: OffsetDateTime,
}

/// Makes sure `dir` holds a valid CA and a serving certificate signed by it
/// for `names` plus [`LOOPBACK_NAMES`], generating or renewing what is
/// missing, unreadable, expiring within `lifetimes.renew_before`, or not
/// covering the names.
pub fn ensure_serving(
    dir: &Path,
    names: &[String],
    lifetimes: &Lifetimes,
) -> Result<ServingState, CertError> {
    let names = serving_names(names);
    let now = OffsetDateTime::now_utc();
    let (ca, ca_action) = ensure_ca(dir, lifetimes, now)?;
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let existing = match (pem::read(&cert_path), pem::read(&key_path)) {
        (Ok(cert), Ok(key)) => Some((cert, key)),
        _ => None,
    };
    let serving_action = match (&ca_action, existing) {
        (Action::Reused, Some((cert, key))) => {
            match check_serving(
                &cert,
                &key,
                ca.cert_pem().as_bytes(),
                &names,
                lifetimes,
                now,
            ) {
                Ok(()) => Action::Reused,
                Err(reason) => Action::Renewed(reason),
            }
        }
        (Action::Reused, None) => Action::Generated,
        (_, Some(_)) => Action::Renewed("the CA was replaced".into()),
        (_, None) => Action::Generated,
    };
    if serving_action != Action::Reused {
        let pair = ca.issue_server(&names, lifetimes.serving)?;
        save_serving(dir, &pair)?;
    }
    let cert = pem::read(&cert_path)?;
    Ok(ServingState {
        ca_cert: dir.join("ca.crt"),
        cert: cert_path,
        key: key_path,
        ca_pem: ca.cert_pem().to_owned(),
        ca_action,
        serving_action,
        not_after: not_after(&cert)?,
    })
}

/// A new CA and a serving pair for `names`, written as `ca.crt`, `ca.key`,
/// `tls.crt` and `tls.key` into `out` (for a `kubernetes.io/tls` Secret).
/// An existing CA in `out` is reused, so reissuing keeps the `caBundle`.
pub fn issue_bundle(
    out: &Path,
    names: &[String],
    lifetimes: &Lifetimes,
) -> Result<(Authority, CertifiedPair, Action), CertError> {
    if names.is_empty() {
        return Err(CertError::Pem {
            what: "serving certificate".into(),
            reason: "at least one DNS name is required".into(),
        });
    }
    let (ca, action) = ensure_ca(out, lifetimes, OffsetDateTime::now_utc())?;
    let pair = ca.issue_server(names, lifetimes.serving)?;
    save_serving(out, &pair)?;
    Ok((ca, pair, action))
}

/// `names` followed by the loopback names, without duplicates.
pub fn serving_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names.iter().map(String::as_str).chain(LOOPBACK_NAMES) {
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

fn ensure_ca(
    dir: &Path,
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Result<(Authority, Action), CertError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    let renew_reason = if !cert_path.exists() || !key_path.exists() {
        None
    } else {
        match Authority::load(dir) {
            Ok(ca) => match not_after(ca.cert_pem().as_bytes()) {
                Ok(end) if end - now > lifetimes.renew_before => return Ok((ca, Action::Reused)),
                Ok(end) => Some(format!("the CA expires at {end}")),
                Err(e) => Some(format!("ca.crt is unreadable: {e}")),
            },
            Err(CertError::Io { path, source }) => return Err(CertError::Io { path, source }),
            Err(e) => Some(format!("the CA could not be loaded: {e}")),
        }
    };
    let ca = Authority::generate(CA_COMMON_NAME, lifetimes.ca)?;
    ca.save(dir)?;
    let action = match renew_reason {
        None => Action::Generated,
        Some(reason) => Action::Renewed(reason),
    };
    Ok((ca, action))
}

/// Why an existing serving pair must be replaced, or `Ok` to keep it.
fn check_serving(
    cert: &[u8],
    key: &[u8],
    ca_pem: &[u8],
    names: &[String],
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Result<(), String> {
    tls::certified_key(cert, key).map_err(|e| format!("tls.crt/tls.key are unusable: {e}"))?;
    let end = not_after(cert).map_err(|e| format!("tls.crt is unreadable: {e}"))?;
    if end - now <= lifetimes.renew_before {
        return Err(format!("the serving certificate expires at {end}"));
    }
    let verifier = verifier(ca_pem).map_err(|e| format!("the CA is unusable: {e}"))?;
    let chain = pem::parse_certs(cert, "tls.crt").map_err(|e| e.to_string())?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| "tls.crt holds no certificate".to_owned())?;
    for name in names {
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| format!("{name:?}: {e}"))?;
        verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now())
            .map_err(|e| format!("the serving certificate does not cover {name}: {e}"))?;
    }
    Ok(())
}

fn verifier(ca_pem: &[u8]) -> Result<Arc<WebPkiServerVerifier>, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::parse_certs(ca_pem, "ca.crt")? {
        roots.add(cert).map_err(CertError::Tls)?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(default_provider()))
        .build()
        .map_err(|e| CertError::Pem {
            what: "ca.crt".into(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_reuses_then_renews_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let lt = Lifetimes::default();
        let first = ensure_serving(dir.path(), &["tollgate.tollgate.svc".into()], &lt).unwrap();
        assert_eq!(first.ca_action, Action::Generated);
        assert_eq!(first.serving_action, Action::Generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "tls.key"] {
                let mode = std::fs::metadata(dir.path().join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }

        let second = ensure_serving(dir.path(), &["tollgate.tollgate.svc".into()], &lt).unwrap();
        assert_eq!(
            (second.ca_action, second.serving_action),
            (Action::Reused, Action::Reused)
        );
        assert_eq!(second.ca_pem, first.ca_pem);

        let third = ensure_serving(dir.path(), &["other.ns.svc".into()], &lt).unwrap();
        assert_eq!(third.ca_action, Action::Reused, "the caBundle stays");
        match third.serving_action {
            Action::Renewed(reason) => assert!(reason.contains("other.ns.svc"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn renews_near_expiry_and_replaces_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let short = Lifetimes {
            serving: Duration::days(10),
            ..Lifetimes::default()
        };
        ensure_serving(dir.path(), &[], &short).unwrap();
        let again = ensure_serving(dir.path(), &[], &Lifetimes::default()).unwrap();
        assert!(
            matches!(&again.serving_action, Action::Renewed(r) if r.contains("expires")),
            "{:?}",
            again.serving_action
        );
        assert!(again.not_after - OffsetDateTime::now_utc() > Duration::days(300));

        std::fs::write(dir.path().join("tls.crt"), "garbage").unwrap();
        let fixed = ensure_serving(dir.path(), &[], &Lifetimes::default()).unwrap();
        assert!(matches!(fixed.serving_action, Action::Renewed(_)));

        std::fs::write(dir.path().join("ca.crt"), "garbage").unwrap();
        let new_ca = ensure_serving(dir.path(), &[], &Lifetimes::default()).unwrap();
        assert!(matches!(new_ca.ca_action, Action::Renewed(_)));
        assert!(matches!(new_ca.serving_action, Action::Renewed(_)));
    }

    #[test]
    fn issued_bundles_reuse_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["tollgate.tollgate.svc".to_owned()];
        let (ca1, _, a1) = issue_bundle(dir.path(), &names, &Lifetimes::default()).unwrap();
        let (ca2, pair, a2) = issue_bundle(dir.path(), &names, &Lifetimes::default()).unwrap();
        assert_eq!((a1, a2), (Action::Generated, Action::Reused));
        assert_eq!(ca1.cert_pem(), ca2.cert_pem());
        check_serving(
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
            ca2.cert_pem().as_bytes(),
            &names,
            &Lifetimes::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(issue_bundle(dir.path(), &[], &Lifetimes::default()).is_err());
    }
}
