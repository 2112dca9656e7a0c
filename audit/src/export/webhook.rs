//! A generic HTTPS webhook: `POST` of `{"events": [...]}` (JSON), with the
//! batch's sequence range in `X-Tollgate-Batch` so a receiver can dedupe.
//!
//! 2xx delivers; 408, 429, 5xx and 401/403 are retried; 413 splits the
//! batch; any other 4xx means the receiver will never take these events:
//! they go to the dead-letter file.

use http::{HeaderMap, Uri};

use super::http::{HttpClient, StatusClass, classify, excerpt, header, secret};
use super::{Delivery, Failure, SendFuture, Sink, payload};
use crate::Error;
use crate::config::{Format, WebhookConfig};
use crate::reader::Item;

/// The webhook exporter.
pub(crate) struct WebhookSink {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    format: Format,
    name: String,
}

impl WebhookSink {
    pub(crate) fn new(config: &WebhookConfig) -> Result<WebhookSink, Error> {
        let client = HttpClient::new(&config.url, &config.tls, &config.name)?;
        let uri = client.uri.clone();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let (n, v) = header(name, value, &config.name)?;
            headers.insert(n, v);
        }
        let (n, v) = header("content-type", "application/json", &config.name)?;
        headers.insert(n, v);
        if let Some(path) = &config.bearer_token_file {
            let token = secret(path, &config.name)?;
            let (n, v) = header("authorization", &format!("Bearer {token}"), &config.name)?;
            headers.insert(n, v);
        }
        Ok(WebhookSink {
            client,
            uri,
            headers,
            format: config.format,
            name: config.name.clone(),
        })
    }
}

impl Sink for WebhookSink {
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a> {
        Box::pin(async move {
            let events: Vec<serde_json::Value> = batch
                .iter()
                .map(|item| payload(item, self.format))
                .collect();
            let body =
                serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap_or_default();
            let mut headers = self.headers.clone();
            if let (Some(first), Some(last)) = (batch.first(), batch.last())
                && let Ok((n, v)) = header(
                    "x-tollgate-batch",
                    &format!("{}-{}", first.seq, last.seq),
                    &self.name,
                )
            {
                headers.insert(n, v);
            }
            let response = self
                .client
                .post(&self.uri, &headers, body)
                .await
                .map_err(Failure::transient)?;
            let status = response.status.as_u16();
            match classify(response.status) {
                StatusClass::Success => Ok(Delivery::default()),
                StatusClass::TooLarge => Err(Failure {
                    reason: format!("{status}: {}", excerpt(&response.body)),
                    too_large: true,
                }),
                StatusClass::Retry => Err(Failure::transient(format!(
                    "{status}: {}",
                    excerpt(&response.body)
                ))),
                StatusClass::Reject => {
                    let reason = format!("{status}: {}", excerpt(&response.body));
                    Ok(Delivery {
                        retry: Vec::new(),
                        rejected: (0..batch.len()).map(|i| (i, reason.clone())).collect(),
                    })
                }
            }
        })
    }
}
