//! The HTTP layer of the HTTPS port: routes `POST /validate` and
//! `POST /mutate`, refuses everything else with a JSON `Status` (404, 405,
//! 415, 413, 408, 400), reads the body within its size and time limits, and
//! hands it to the [`AdmissionHandler`]. Generic over the body type so tests
//! drive it in-process without sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use crate::handler::endpoint_metric;
use crate::metrics::{EndpointLabels, GaugeGuard, Metrics};
use crate::settings::Limits;
use crate::{AdmissionHandler, Endpoint, Reply};

/// The HTTP service of the HTTPS port.
pub struct Service {
    handler: Arc<dyn AdmissionHandler>,
    metrics: Arc<Metrics>,
    max_body: u64,
    body_timeout: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused before reaching the handler.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    label: &'static str,
    message: String,
    /// Close the connection after answering (the body was not read).
    close: bool,
}

impl Service {
    /// A service handing admission bodies to `handler`.
    pub fn new(
        handler: Arc<dyn AdmissionHandler>,
        metrics: Arc<Metrics>,
        limits: &Limits,
    ) -> Service {
        Service {
            handler,
            metrics,
            max_body: limits.max_request_bytes,
            body_timeout: limits.body_read_timeout,
        }
    }

    /// Answers one HTTP request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let _in_flight = GaugeGuard::new(&self.metrics.in_flight);
        let endpoint = match self.route(&request) {
            Ok(endpoint) => endpoint,
            Err(refusal) => return self.refuse(refusal),
        };
        let body = match self.read_body(request.into_body()).await {
            Ok(body) => body,
            Err(refusal) => return self.refuse(refusal),
        };
        let reply = self.handler.handle(endpoint, body).await;
        self.metrics
            .duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint_metric(endpoint),
            })
            .observe(started.elapsed().as_secs_f64());
        response(reply, false, None)
    }

    fn route<B>(&self, request: &Request<B>) -> Result<Endpoint, Refusal> {
        let path = request.uri().path();
        let endpoint = match path {
            "/validate" => Endpoint::Validate,
            "/mutate" => Endpoint::Mutate,
            _ => {
                return Err(Refusal {
                    status: StatusCode::NOT_FOUND,
                    reason: "NotFound",
                    label: "not_found",
                    message: format!(
                        "no such path {path:?}: this port serves POST /validate and POST /mutate"
                    ),
                    close: false,
                });
            }
        };
        if request.method() != Method::POST {
            return Err(Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                reason: "MethodNotAllowed",
                label: "method_not_allowed",
                message: format!(
                    "{} {path} is not allowed: send the AdmissionReview with POST",
                    request.method()
                ),
                close: false,
            });
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Refusal {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason: "UnsupportedMediaType",
                label: "unsupported_media_type",
                message: format!(
                    "content type {content_type:?} is not served: send application/json"
                ),
                close: false,
            });
        }
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(self.too_large());
        }
        Ok(endpoint)
    }

    fn too_large(&self) -> Refusal {
        Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: "RequestEntityTooLarge",
            label: "body_too_large",
            message: format!(
                "request body exceeds the limit of {} bytes (limits.maxRequestBytes)",
                self.max_body
            ),
            close: true,
        }
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, Refusal>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        let collect = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.body_timeout, collect).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                Err(self.too_large())
            }
            Ok(Err(err)) => Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                reason: "BadRequest",
                label: "body_read",
                message: format!("could not read the request body: {err}"),
                close: true,
            }),
            Err(_) => Err(Refusal {
                status: StatusCode::REQUEST_TIMEOUT,
                reason: "Timeout",
                label: "body_timeout",
                message: format!(
                    "request body not received within {:?} (limits.bodyReadTimeout)",
                    self.body_timeout
                ),
                close: true,
            }),
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response<Full<Bytes>> {
        self.metrics.error(refusal.label);
        tracing::debug!(status = %refusal.status, reason = refusal.label, "refused a request");
        let allow = (refusal.status == StatusCode::METHOD_NOT_ALLOWED)
            .then_some(HeaderValue::from_static("POST"));
        response(
            Reply::error(refusal.status, refusal.reason, &refusal.message),
            refusal.close,
            allow,
        )
    }
}

fn response(reply: Reply, close: bool, allow: Option<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(allow) = allow {
        headers.insert(ALLOW, allow);
    }
    response
}

#[cfg(test)]
mod tests;
