//! The HTTP layer of the HTTPS port: routes `POST /validate` and
//! `POST /mutate`, refuses everything else with a JSON `Status` (404, 405,
//! 415, 413, 408, 400), reads the body within its size and time limits, and
//! hands it to the [`AdmissionHandler`]. Generic over the body type so tests
//! drive it in-process without sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::pin::Pin;

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
    /// Set at shutdown: every answer asks the client to close.
    closing: AtomicBool,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}

/// How much of a refused request's body is read and discarded, as a
/// multiple of the body limit, before the connection is given up instead.
const DRAIN_FACTOR: u64 = 4;

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
            closing: AtomicBool::new(false),
        }
    }

    /// From now on every answer carries `Connection: close`, so HTTP/1.1
    /// clients take their next request elsewhere (shutdown).
    pub fn close_connections(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
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
            Err(refusal) => {
                // Answering while the client still sends makes HTTP/2
                // reset the stream, and clients then report a framing
                // error instead of this answer: read what is bounded.
                let drained = self.drain(request.into_body()).await;
                return self.refuse(Refusal {
                    close: refusal.close || !drained,
                    ..refusal
                });
            }
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
        response(reply, self.closing(), None)
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

    /// Reads and discards the rest of a refused request's body, up to
    /// [`DRAIN_FACTOR`] times the body limit and within the body timeout, so
    /// the answer reaches HTTP/2 clients intact. False when the body was
    /// not read to its end.
    async fn drain<B>(&self, body: B) -> bool
    where
        B: http_body::Body<Data = Bytes>,
    {
        let body = std::pin::pin!(body);
        tokio::time::timeout(self.body_timeout, self.discard(body, 0))
            .await
            .unwrap_or(false)
    }

    /// Discards frames until the end of the body (true) or until more than
    /// the drain budget was read in all (false).
    async fn discard<B>(&self, mut body: Pin<&mut B>, mut read: u64) -> bool
    where
        B: http_body::Body<Data = Bytes>,
    {
        let budget = self.max_body.saturating_mul(DRAIN_FACTOR);
        while let Some(frame) = body.as_mut().frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                read = read.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
                if read > budget {
                    return false;
                }
            }
        }
        true
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, Refusal>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut body = std::pin::pin!(body);
        let read = async {
            let mut buf = BytesMut::new();
            while let Some(frame) = body.as_mut().frame().await {
                let frame = frame.map_err(Into::into)?;
                if let Ok(data) = frame.into_data() {
                    if u64::try_from(buf.len().saturating_add(data.len())).unwrap_or(u64::MAX)
                        > self.max_body
                    {
                        return Ok(Err(u64::try_from(buf.len()).unwrap_or(u64::MAX)));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Ok(buf.freeze()))
        };
        match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(seen))) => {
                // Refused whatever comes next, and the connection closed
                // afterwards: only HTTP/2 needs the rest read.
                let _ = tokio::time::timeout(self.body_timeout, self.discard(body.as_mut(), seen))
                    .await;
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
            refusal.close || self.closing(),
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
