//! Elasticsearch: the `_bulk` API with ECS-shaped documents.
//!
//! Each event is a `create` action with the event id as `_id`, so a resend
//! after a crash is answered 409 (already there) and counted as delivered:
//! the index holds each event exactly once. Per-item results are honoured:
//! 429 and 5xx items are resent (only those), other 4xx items (mapping and
//! validation errors) will never be accepted and go to the dead-letter
//! file. A whole-request 429/5xx/401/403 resends the batch later; 413
//! splits it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, Uri};
use serde_json::{Value, json};

use super::http::{HttpClient, StatusClass, classify, excerpt, header, secret};
use super::{Delivery, Failure, SendFuture, Sink, summary};
use crate::config::ElasticsearchConfig;
use crate::reader::Item;
use crate::{Error, Event, Outcome, ocsf};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// The Elasticsearch exporter.
pub(crate) struct ElasticSink {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    index: String,
}

impl ElasticSink {
    pub(crate) fn new(config: &ElasticsearchConfig) -> Result<ElasticSink, Error> {
        let client = HttpClient::new(&config.url, &config.tls, &config.name)?;
        let base = config.url.trim_end_matches('/');
        let mut url = format!("{base}/_bulk");
        if let Some(pipeline) = &config.pipeline {
            url.push_str("?pipeline=");
            url.push_str(pipeline);
        }
        let uri: Uri = url.parse().map_err(|e| Error::Exporter {
            exporter: config.name.clone(),
            reason: format!("url: {e}"),
        })?;
        let mut headers = HeaderMap::new();
        let (n, v) = header("content-type", "application/x-ndjson", &config.name)?;
        headers.insert(n, v);
        let auth = match (
            &config.api_key_file,
            &config.username,
            &config.password_file,
        ) {
            (Some(key), _, _) => Some(format!("ApiKey {}", secret(key, &config.name)?)),
            (None, Some(user), Some(password)) => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{}", secret(password, &config.name)?))
            )),
            _ => None,
        };
        if let Some(auth) = auth {
            let (n, v) = header("authorization", &auth, &config.name)?;
            headers.insert(n, v);
        }
        Ok(ElasticSink {
            client,
            uri,
            headers,
            index: config.index.clone(),
        })
    }

    fn body(&self, batch: &[&Item]) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 1200);
        for item in batch {
            let action = json!({ "create": { "_index": self.index, "_id": item.event.id } });
            out.extend_from_slice(action.to_string().as_bytes());
            out.push(b'\n');
            out.extend_from_slice(ecs_document(item).to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// The ECS document of an event: standard fields where ECS has them, the
/// native event under `tollgate`.
pub fn ecs_document(item: &Item) -> Value {
    let e: &Event = &item.event;
    let (outcome, kind) = match e.decision.outcome {
        Outcome::Allow => ("success", "allowed"),
        Outcome::Warn => ("success", "allowed"),
        Outcome::Deny => ("failure", "denied"),
    };
    let mut doc = json!({
        "@timestamp": e.time,
        "ecs": { "version": ECS_VERSION },
        "message": summary(e),
        "event": {
            "id": e.id,
            "kind": "event",
            "category": ["api"],
            "type": [kind],
            "action": e.action.verb,
            "outcome": outcome,
            "dataset": "tollgate.audit",
            "module": "tollgate",
            "provider": e.source.as_str(),
            "sequence": item.seq,
            "severity": ocsf::severity(e.priority).0,
            "duration": e.latency_us.saturating_mul(1000),
            "reason": e.decision.reason,
        },
        "rule": { "name": e.decision.rule },
        "service": { "name": "tollgate", "type": e.source.as_str() },
        "labels": {
            "priority": e.priority.as_str(),
            "protocol": e.action.protocol,
        },
        "tollgate": e,
    });
    let Some(map) = doc.as_object_mut() else {
        return doc;
    };
    if let Some(user) = &e.actor.user {
        map.insert(
            "user".into(),
            json!({ "name": user, "roles": e.actor.groups }),
        );
    }
    if e.actor.namespace.is_some() || e.actor.pod.is_some() {
        map.insert(
            "orchestrator".into(),
            json!({
                "type": "kubernetes",
                "namespace": e.actor.namespace,
                "resource": { "type": "pod", "name": e.actor.pod },
            }),
        );
    }
    if e.action.target.contains("://") {
        map.insert("url".into(), json!({ "original": e.action.target }));
    }
    if let Some(labels) = map.get_mut("labels").and_then(Value::as_object_mut) {
        for (k, v) in [
            ("owner", &e.ownership.owner),
            ("tier", &e.ownership.tier),
            ("oncall", &e.ownership.oncall),
        ] {
            if let Some(v) = v {
                labels.insert(k.into(), json!(v));
            }
        }
    }
    doc
}

impl Sink for ElasticSink {
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.uri, &self.headers, self.body(batch))
                .await
                .map_err(Failure::transient)?;
            let status = response.status;
            match classify(status) {
                StatusClass::Success => {}
                StatusClass::TooLarge => {
                    return Err(Failure {
                        reason: format!("_bulk 413: {}", excerpt(&response.body)),
                        too_large: true,
                    });
                }
                StatusClass::Retry => {
                    return Err(Failure::transient(format!(
                        "_bulk {}: {}",
                        status.as_u16(),
                        excerpt(&response.body)
                    )));
                }
                StatusClass::Reject => {
                    let reason = format!("_bulk {}: {}", status.as_u16(), excerpt(&response.body));
                    return Ok(Delivery {
                        retry: Vec::new(),
                        rejected: (0..batch.len()).map(|i| (i, reason.clone())).collect(),
                    });
                }
            }
            let parsed: Value = serde_json::from_slice(&response.body)
                .map_err(|e| Failure::transient(format!("_bulk answer is not JSON: {e}")))?;
            if parsed.get("errors").and_then(Value::as_bool) == Some(false) {
                return Ok(Delivery::default());
            }
            let items = parsed
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| Failure::transient("_bulk answer without items"))?;
            if items.len() != batch.len() {
                return Err(Failure::transient(format!(
                    "_bulk answered {} items for {} sent",
                    items.len(),
                    batch.len()
                )));
            }
            let mut delivery = Delivery::default();
            for (i, item) in items.iter().enumerate() {
                let result = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or_default();
                let code = result.get("status").and_then(Value::as_u64).unwrap_or(0);
                match code {
                    200..=299 | 409 => {}
                    429 | 500..=599 | 0 => delivery.retry.push(i),
                    _ => {
                        let error = result.get("error").cloned().unwrap_or_default();
                        let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                        let why = error.get("reason").and_then(Value::as_str).unwrap_or("");
                        delivery.rejected.push((i, format!("{code} {kind}: {why}")));
                    }
                }
            }
            Ok(delivery)
        })
    }
}
