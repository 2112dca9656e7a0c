//! The HTTPS client shared by the HTTP exporters (hyper + rustls).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Error;
use crate::config::TlsSettings;

/// Largest response body read (receivers answer with small JSON).
const MAX_RESPONSE: usize = 16 << 20;

/// A response: status and body.
pub(crate) struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An HTTPS-only client for one receiver.
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub uri: Uri,
}

impl HttpClient {
    /// A client posting to `url` (which must be `https://`).
    pub(crate) fn new(url: &str, tls: &TlsSettings, exporter: &str) -> Result<HttpClient, Error> {
        let uri: Uri = url.parse().map_err(|e| Error::Exporter {
            exporter: exporter.to_owned(),
            reason: format!("url {url:?}: {e}"),
        })?;
        let host = uri.host().unwrap_or_default().to_owned();
        let config = super::tls::client_config(tls, exporter)?;
        let name = super::tls::server_name(tls, &host, exporter)?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .with_server_name_resolver(FixedServerNameResolver::new(name))
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(HttpClient { client, uri })
    }

    /// `POST` `body` to `uri` with `headers`.
    pub(crate) async fn post(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response, String> {
        let mut request = Request::builder().method(Method::POST).uri(uri.clone());
        if let Some(h) = request.headers_mut() {
            for (name, value) in headers {
                h.insert(name.clone(), value.clone());
            }
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{uri}: {}", error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("{uri}: reading the response: {e}"))?
            .to_bytes();
        Ok(Response { status, body })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A header, or an exporter error naming it.
pub(crate) fn header(
    name: &str,
    value: &str,
    exporter: &str,
) -> Result<(HeaderName, HeaderValue), Error> {
    let fail = |reason: String| Error::Exporter {
        exporter: exporter.to_owned(),
        reason,
    };
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| fail(format!("header {name:?}: {e}")))?;
    let mut v = HeaderValue::from_str(value).map_err(|e| fail(format!("header {name:?}: {e}")))?;
    if name.eq_ignore_ascii_case("authorization") {
        v.set_sensitive(true);
    }
    Ok((n, v))
}

/// Reads a secret file (token, key, password), trimmed.
pub(crate) fn secret(path: &std::path::Path, exporter: &str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Exporter {
        exporter: exporter.to_owned(),
        reason: format!("{}: {e}", path.display()),
    })?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(Error::Exporter {
            exporter: exporter.to_owned(),
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(text)
}

/// How a whole-request status is handled by the HTTP exporters.
pub(crate) enum StatusClass {
    /// 2xx.
    Success,
    /// 413: split the batch.
    TooLarge,
    /// 408, 429, 5xx, and 401/403 (credentials get fixed; events must not
    /// be discarded meanwhile): retry later.
    Retry,
    /// Any other 4xx: the receiver will never accept this request.
    Reject,
}

/// Classifies a status.
pub(crate) fn classify(status: StatusCode) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Success,
        413 => StatusClass::TooLarge,
        401 | 403 | 408 | 429 => StatusClass::Retry,
        400..=499 => StatusClass::Reject,
        _ => StatusClass::Retry,
    }
}

/// A short excerpt of a response body for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}
