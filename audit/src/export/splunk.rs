//! Splunk HTTP Event Collector: `POST /services/collector/event` with
//! `Authorization: Splunk <token>`, events batched as concatenated JSON
//! objects.
//!
//! Responses: 200 (`code` 0) delivers the batch. 400 with
//! `invalid-event-number` N (codes 6 invalid data format, 12/13 event field
//! missing or blank, 15 indexed fields): events before N were indexed, N is
//! refused for good (dead-lettered), the rest are resent. Other 400s
//! (e.g. 7 incorrect index, 10/11 channel) are configuration errors:
//! retried with backoff so nothing is discarded while someone fixes them.
//! 401/403 (token), 429, 500 (8) and 503 (9 server busy) are retried; 413
//! splits the batch.

use http::{HeaderMap, Uri};
use serde_json::json;

use super::http::{HttpClient, StatusClass, classify, excerpt, header, secret};
use super::{Delivery, Failure, SendFuture, Sink, payload};
use crate::config::{Format, SplunkHecConfig};
use crate::reader::Item;
use crate::{Error, ocsf};

/// The Splunk HEC exporter.
pub(crate) struct SplunkSink {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    config: SplunkHecConfig,
    host: String,
}

impl SplunkSink {
    pub(crate) fn new(config: &SplunkHecConfig) -> Result<SplunkSink, Error> {
        let client = HttpClient::new(&config.url, &config.tls, &config.name)?;
        let uri = if matches!(client.uri.path(), "" | "/") {
            let base = config.url.trim_end_matches('/');
            format!("{base}/services/collector/event")
                .parse()
                .map_err(|e| Error::Exporter {
                    exporter: config.name.clone(),
                    reason: format!("url: {e}"),
                })?
        } else {
            client.uri.clone()
        };
        let token = secret(&config.token_file, &config.name)?;
        let mut headers = HeaderMap::new();
        let (n, v) = header("authorization", &format!("Splunk {token}"), &config.name)?;
        headers.insert(n, v);
        let (n, v) = header("content-type", "application/json", &config.name)?;
        headers.insert(n, v);
        Ok(SplunkSink {
            client,
            uri,
            headers,
            config: config.clone(),
            host: super::hostname(),
        })
    }

    fn body(&self, batch: &[&Item]) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 1024);
        for item in batch {
            let time = ocsf::epoch_millis(&item.event.time).unwrap_or_default();
            let mut envelope = json!({
                "time": time as f64 / 1000.0,
                "host": self.host,
                "source": self.config.source,
                "sourcetype": self.config.sourcetype,
                "event": payload(item, self.config.format),
                "fields": {
                    "tollgate_seq": item.seq,
                    "tollgate_id": item.event.id,
                    "tollgate_priority": item.event.priority.as_str(),
                },
            });
            if let Some(index) = &self.config.index
                && let Some(map) = envelope.as_object_mut()
            {
                map.insert("index".into(), json!(index));
            }
            if self.config.format == Format::Ocsf
                && let Some(map) = envelope.as_object_mut()
            {
                map.insert(
                    "sourcetype".into(),
                    json!(format!("{}:ocsf", self.config.sourcetype)),
                );
            }
            out.extend_from_slice(envelope.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

impl Sink for SplunkSink {
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a> {
        Box::pin(async move {
            let body = self.body(batch);
            let response = self
                .client
                .post(&self.uri, &self.headers, body)
                .await
                .map_err(Failure::transient)?;
            let parsed: serde_json::Value =
                serde_json::from_slice(&response.body).unwrap_or_default();
            let code = parsed.get("code").and_then(serde_json::Value::as_i64);
            let text = parsed
                .get("text")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| excerpt(&response.body), str::to_owned);
            match classify(response.status) {
                StatusClass::Success => Ok(Delivery::default()),
                StatusClass::TooLarge => Err(Failure {
                    reason: format!("HEC 413: {text}"),
                    too_large: true,
                }),
                StatusClass::Retry => Err(Failure::transient(format!(
                    "HEC {} (code {}): {text}",
                    response.status.as_u16(),
                    code.unwrap_or(-1)
                ))),
                StatusClass::Reject => {
                    let invalid = parsed
                        .get("invalid-event-number")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok());
                    match (invalid, code) {
                        (Some(n), Some(6 | 12 | 13 | 15)) if n < batch.len() => Ok(Delivery {
                            retry: (n + 1..batch.len()).collect(),
                            rejected: vec![(n, format!("HEC code {}: {text}", code.unwrap_or(-1)))],
                        }),
                        _ => Err(Failure::transient(format!(
                            "HEC {} (code {}): {text} (check the exporter configuration)",
                            response.status.as_u16(),
                            code.unwrap_or(-1)
                        ))),
                    }
                }
            }
        })
    }
}
