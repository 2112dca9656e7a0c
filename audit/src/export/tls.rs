//! TLS to receivers: rustls with the `ring` provider, TLS 1.2 and 1.3 only,
//! server certificates always verified (against `caFile` or the system
//! roots), optional client certificate for mutual TLS.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::ServerName;

use crate::Error;
use crate::config::TlsSettings;

fn fail(exporter: &str, reason: impl Into<String>) -> Error {
    Error::Exporter {
        exporter: exporter.to_owned(),
        reason: reason.into(),
    }
}

/// The rustls client configuration of an exporter.
pub fn client_config(tls: &TlsSettings, exporter: &str) -> Result<ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| fail(exporter, format!("tls.caFile {}: {e}", path.display())))?;
            let certs = tollgate_certs::pem::parse_certs(&pem, &path.display().to_string())
                .map_err(|e| fail(exporter, format!("tls.caFile: {e}")))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| fail(exporter, format!("tls.caFile {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(fail(
                    exporter,
                    "no system CA certificates found; set tls.caFile to the receiver's CA bundle",
                ));
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(tollgate_certs::tls::PROTOCOL_VERSIONS)
        .map_err(|e| fail(exporter, e.to_string()))?
        .with_root_certificates(roots);
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain_pem = std::fs::read(cert).map_err(|e| {
                fail(
                    exporter,
                    format!("tls.clientCertFile {}: {e}", cert.display()),
                )
            })?;
            let key_pem = std::fs::read(key).map_err(|e| {
                fail(
                    exporter,
                    format!("tls.clientKeyFile {}: {e}", key.display()),
                )
            })?;
            let chain = tollgate_certs::pem::parse_certs(&chain_pem, "tls.clientCertFile")
                .map_err(|e| fail(exporter, e.to_string()))?;
            let key = tollgate_certs::pem::parse_key(&key_pem, "tls.clientKeyFile")
                .map_err(|e| fail(exporter, e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail(exporter, format!("client certificate: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(fail(
            exporter,
            "tls.clientCertFile and tls.clientKeyFile go together",
        )),
    }
}

/// The name to verify: `tls.serverName`, else the host.
pub fn server_name(
    tls: &TlsSettings,
    host: &str,
    exporter: &str,
) -> Result<ServerName<'static>, Error> {
    let name = tls.server_name.clone().unwrap_or_else(|| host.to_owned());
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    ServerName::try_from(name.clone()).map_err(|e| {
        fail(
            exporter,
            format!("{name:?} is not a valid TLS server name: {e}"),
        )
    })
}
