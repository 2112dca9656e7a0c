//! rustls configurations: TLS 1.2 and 1.3 only, `ring` as the provider.

use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::server::ResolvesServerCert;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{CertError, pem};

/// The protocol versions Tollgate speaks: TLS 1.3 and 1.2, nothing older.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server configuration presenting the certificates `resolver` picks
/// (a fixed pair, a hot-reloaded pair, or minted leaves), offering `alpn`.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, CertError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(CertError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client configuration trusting the certificates in `roots_pem`.
pub fn client_config(roots_pem: &[u8]) -> Result<ClientConfig, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::parse_certs(roots_pem, "trust bundle")? {
        roots.add(cert).map_err(CertError::Tls)?;
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(CertError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A certified key for rustls from PEM chain and key.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::sign::CertifiedKey, CertError> {
    let chain = pem::parse_certs(cert_pem, "certificate")?;
    let key = pem::parse_key(key_pem, "private key")?;
    rustls::sign::CertifiedKey::from_der(chain, key, &default_provider()).map_err(CertError::Tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Authority;

    #[test]
    fn issued_server_pair_loads_into_rustls() {
        let ca = Authority::generate("test CA", time::Duration::days(1)).unwrap();
        let pair = ca
            .issue_server(
                &["tollgate.tollgate.svc".into(), "127.0.0.1".into()],
                time::Duration::days(1),
            )
            .unwrap();
        let key = certified_key(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes()).unwrap();
        assert_eq!(key.cert.len(), 1);
        client_config(ca.cert_pem().as_bytes()).unwrap();
        let reloaded = Authority::from_pem(ca.cert_pem(), &ca.pair().key_pem).unwrap();
        reloaded
            .issue_server(&["x.example".into()], time::Duration::days(1))
            .unwrap();
    }
}
