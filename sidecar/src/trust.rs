//! The agents' trust bundle under interception: one PEM file with the
//! system roots, any extra upstream CAs and the per-pod interception CA,
//! for `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` and `NODE_EXTRA_CA_CERTS`.
//! Agents keep trusting the public roots for traffic the sidecar does not
//! intercept (passthrough hosts) and trust the sidecar's leaves for the
//! rest. Written atomically, so an agent never reads half a bundle.

use std::path::Path;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;

use crate::{Config, SidecarError};

/// The bundle's text: system roots (when `config.system_roots`), then each
/// `upstream_ca` file, then `ca_pem`.
pub fn bundle(config: &Config, ca_pem: &str) -> Result<String, SidecarError> {
    let mut out = String::new();
    if config.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "skipping part of the system trust store for the trust bundle");
        }
        for cert in &native.certs {
            push_pem(&mut out, cert);
        }
    }
    for path in &config.upstream_ca {
        let pem = tollgate_certs::pem::read(path)?;
        for cert in tollgate_certs::pem::parse_certs(&pem, &path.display().to_string())? {
            push_pem(&mut out, &cert);
        }
    }
    out.push_str(ca_pem.trim_end());
    out.push('\n');
    Ok(out)
}

/// Writes [`bundle`] to `path` atomically.
pub fn write_bundle(path: &Path, config: &Config, ca_pem: &str) -> Result<(), SidecarError> {
    let text = bundle(config, ca_pem)?;
    tollgate_certs::pem::write_atomic(path, text.as_bytes(), false)?;
    Ok(())
}

fn push_pem(out: &mut String, cert: &CertificateDer<'_>) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END CERTIFICATE-----\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_the_extra_cas_and_the_pod_ca_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let pod_ca =
            tollgate_certs::Interceptor::load_or_generate(&dir.path().join("ca"), "pod").unwrap();
        let other =
            tollgate_certs::Interceptor::load_or_generate(&dir.path().join("other"), "x").unwrap();
        let extra = dir.path().join("extra.pem");
        std::fs::write(&extra, other.ca_cert_pem()).unwrap();
        let mut config = Config::new("policy.yaml".into());
        config.system_roots = false;
        config.upstream_ca = vec![extra];
        let out = dir.path().join("trust/ca-bundle.crt");
        write_bundle(&out, &config, pod_ca.ca_cert_pem()).unwrap();
        let text = std::fs::read(&out).unwrap();
        let certs = tollgate_certs::pem::parse_certs(&text, "bundle").unwrap();
        assert_eq!(certs.len(), 2);
        let pod = tollgate_certs::pem::parse_certs(pod_ca.ca_cert_pem().as_bytes(), "ca").unwrap();
        let extra = tollgate_certs::pem::parse_certs(other.ca_cert_pem().as_bytes(), "x").unwrap();
        assert_eq!(
            certs[0], extra[0],
            "extra CAs come first, re-encoded intact"
        );
        assert_eq!(certs[1], pod[0], "the pod CA is last");
        // With the system roots on, the bundle only grows.
        config.system_roots = true;
        let with_roots = bundle(&config, pod_ca.ca_cert_pem()).unwrap();
        assert!(with_roots.len() >= String::from_utf8(text).unwrap().len());
    }
}
