//! Forwarding an allowed request: rebuild it for the upstream (hop-by-hop
//! headers dropped, `Host` set to where it goes), send it on the pooled
//! client, and stream the response back unchanged. LLM responses are
//! tapped for token usage; upgrades (WebSocket, SPDY) are joined into a
//! byte tunnel; upstream failures become 502/504 with an incident event.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tollgate_audit::Outcome;
use tollgate_policies::action::{ActionDecision, ActionKind, ActionPolicy};

use super::{Destination, Outgoing, Shared};
use crate::audit::Decided;
use crate::body::{self, Payload};
use crate::classify::Classified;
use crate::deny::{Refusal, Shape, refuse};
use crate::metrics::{Metrics, TokenLabels};
use crate::upstream::strip_hop_by_hop;
use crate::usage::UsageTap;

/// An allowed request, ready to forward.
pub(crate) struct Forward<'a> {
    pub(crate) parts: Parts,
    pub(crate) dest: Destination,
    pub(crate) body: Outgoing,
    pub(crate) upgrade: Option<String>,
    pub(crate) client_upgrade: Option<OnUpgrade>,
    pub(crate) classified: &'a Classified,
    pub(crate) decisions: &'a [ActionDecision],
    pub(crate) policy: Option<Arc<ActionPolicy>>,
    pub(crate) shape: Shape<'a>,
}

pub(crate) async fn forward(shared: &Shared, f: Forward<'_>) -> Response<Payload> {
    let Forward {
        mut parts,
        dest,
        body,
        upgrade,
        client_upgrade,
        classified,
        decisions,
        policy,
        shape,
    } = f;
    let failed = Failed {
        classified,
        decisions,
        shape,
    };
    let authority = dest.authority();
    parts.uri =
        match format!("{}://{}{}", dest.scheme, authority, dest.path_and_query).parse::<Uri>() {
            Ok(u) => u,
            Err(e) => {
                let reason = format!("cannot build the upstream URL: {e}");
                return failed
                    .answer(
                        shared,
                        StatusCode::BAD_GATEWAY,
                        "tollgate/upstream-error",
                        &reason,
                    )
                    .await;
            }
        };
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, upgrade.is_some());
    if let Ok(host) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, host);
    }
    let body = match body {
        Outgoing::Empty => Payload::Empty,
        Outgoing::Buffered(bytes) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            // The body is already here: the upstream need not ask for it.
            parts.headers.remove(header::EXPECT);
            Payload::full(bytes)
        }
        Outgoing::Streamed(incoming) => Payload::Stream(incoming),
    };
    let req = Request::from_parts(parts, body);
    // From here the provider may generate: a token reservation left
    // unsettled is charged in full.
    for r in decisions.iter().filter_map(|d| d.reservation.as_deref()) {
        r.mark_sent();
    }
    let started = Instant::now();
    let result = tokio::time::timeout(
        shared.config.timeouts.upstream,
        shared.clients.get().request(req),
    )
    .await;
    let mut resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            if e.is_connect() {
                // The request never left: nothing was generated.
                for r in decisions.iter().filter_map(|d| d.reservation.as_deref()) {
                    r.mark_unsent();
                }
            }
            let kind = error_kind(&e);
            Metrics::count(&shared.metrics.upstream_errors, kind);
            let reason = format!(
                "the upstream {authority} could not be reached ({kind}): {}",
                error_chain(&e)
            );
            return failed
                .answer(
                    shared,
                    StatusCode::BAD_GATEWAY,
                    "tollgate/upstream-error",
                    &reason,
                )
                .await;
        }
        Err(_) => {
            Metrics::count(&shared.metrics.upstream_errors, "timeout");
            let reason = format!(
                "the upstream {authority} did not answer within {:?}",
                shared.config.timeouts.upstream
            );
            return failed
                .answer(
                    shared,
                    StatusCode::GATEWAY_TIMEOUT,
                    "tollgate/upstream-timeout",
                    &reason,
                )
                .await;
        }
    };
    Metrics::observe_since(&shared.metrics.upstream_seconds, started);

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::join!(client_upgrade, upstream_upgrade) {
                    (Ok(client), Ok(upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    (c, u) => {
                        tracing::debug!(client = ?c.err(), upstream = ?u.err(), "upgrade did not complete");
                    }
                }
            });
        }
        let (mut parts, _) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, Payload::Empty);
    }

    let (mut parts, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    parts.version = Version::HTTP_11;
    let body = match llm_tap(shared, classified, decisions, policy, parts.status) {
        Some(on_usage) => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let codings = body::content_codings(&parts.headers).unwrap_or_default();
            Payload::Tapped(Box::new(UsageTap::new(
                incoming,
                content_type,
                &codings,
                on_usage,
            )))
        }
        None => Payload::Stream(incoming),
    };
    Response::from_parts(parts, body)
}

/// For an allowed LLM call, the callback that settles its token
/// reservation on the reported usage. A response that reports none is
/// charged the whole reservation, unless the provider refused the request
/// (4xx: nothing was generated).
fn llm_tap(
    shared: &Shared,
    classified: &Classified,
    decisions: &[ActionDecision],
    policy: Option<Arc<ActionPolicy>>,
    status: StatusCode,
) -> Option<crate::usage::OnUsage> {
    let [call] = classified.calls.as_slice() else {
        return None;
    };
    let ActionKind::Llm(llm) = &call.action.kind else {
        return None;
    };
    let decision = decisions.first()?;
    let rule = decision.rule.clone()?;
    let index = decision.rule_index?;
    let policy = policy?;
    let reservation = decision.reservation.clone();
    let budgeted = policy.has_token_budget(index);
    let refused = status.is_client_error();
    let provider = llm.provider.as_str();
    let metrics = Arc::clone(&shared.metrics);
    Some(Box::new(move |tokens: Option<u64>| {
        let charged = match (tokens, &reservation) {
            (Some(n), _) => Some(n),
            (None, Some(_)) if refused => Some(0),
            (None, Some(r)) => {
                metrics.llm_usage_unreported.inc();
                tracing::warn!(rule = %rule, "an LLM response under a token budget reported no usage; charging its whole reservation");
                Some(r.amount())
            }
            (None, None) => None,
        };
        let Some(n) = charged else {
            return;
        };
        metrics
            .llm_tokens
            .get_or_create(&TokenLabels {
                provider,
                rule: Arc::clone(&rule),
            })
            .inc_by(n);
        match &reservation {
            Some(r) => r.settle(n, Instant::now()),
            None if budgeted => policy.charge_tokens(index, n, Instant::now()),
            None => {}
        }
    }))
}

/// What is needed to answer an allowed request that failed upstream.
struct Failed<'a> {
    classified: &'a Classified,
    decisions: &'a [ActionDecision],
    shape: Shape<'a>,
}

impl Failed<'_> {
    /// Answers with `status` and records an incident event for each action
    /// (outcome `warn`: the policy allowed it, the proxy could not complete
    /// it).
    async fn answer(
        &self,
        shared: &Shared,
        status: StatusCode,
        rule: &'static str,
        reason: &str,
    ) -> Response<Payload> {
        tracing::warn!(%status, reason, "upstream failure");
        for (call, decision) in self.classified.calls.iter().zip(self.decisions) {
            let decided = Decided {
                outcome: Outcome::Warn,
                rule: Arc::from(rule),
                reason: Arc::from(reason),
                controls: Arc::from(Vec::new()),
            };
            let mut extra = Map::new();
            extra.insert(
                "incident".into(),
                Value::String(rule.trim_start_matches("tollgate/").into()),
            );
            extra.insert("status".into(), Value::from(status.as_u16()));
            if let Some(r) = &decision.rule {
                extra.insert("allowedBy".into(), Value::String(r.to_string()));
            }
            let event = shared.auditor.event(&call.action, &decided, 0, Some(extra));
            let _ = shared.auditor.record(event).await;
        }
        refuse(
            self.shape,
            &Refusal {
                status,
                rule,
                reason,
                retry_after: None,
            },
        )
    }
}

fn error_kind(e: &hyper_util::client::legacy::Error) -> &'static str {
    let chain = error_chain(e);
    if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
        "tls"
    } else if e.is_connect() {
        "connect"
    } else {
        "protocol"
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
