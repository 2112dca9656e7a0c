//! Requests the HTTP layer refuses before the proxy sees them (a garbage
//! request line, `Transfer-Encoding: identity`, too many or too large
//! headers, an oversize URI, bad HTTP/2 frames): hyper answers them itself
//! (400, 414, 431, or a GOAWAY) and ends the connection with an error. Each
//! is still a refusal, so each becomes an audit event, but a flood must not
//! fill the spool: at most [`BURST`] events are recorded per second, and
//! the rest are counted and recorded as one summary event per second
//! (attribute `coalesced`).

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;

/// Refusals recorded one by one per [`WINDOW`]; beyond that they are
/// coalesced.
pub(crate) const BURST: u32 = 5;

/// The coalescing window.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// What the HTTP layer refused, for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The status hyper answered with (HTTP/2: 400 for the stream or
    /// connection error).
    pub(crate) status: StatusCode,
    /// A short name: `malformed-request`, `headers-too-large`,
    /// `http2-protocol-error`.
    pub(crate) kind: &'static str,
    /// hyper's own description.
    pub(crate) reason: String,
}

/// Whether the error a connection ended with is a refused request (and not
/// a timeout, a client that went away, or an I/O failure).
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> Option<Refused> {
    let hyper_error = error.downcast_ref::<hyper::Error>()?;
    if hyper_error.is_timeout()
        || hyper_error.is_closed()
        || hyper_error.is_canceled()
        || hyper_error.is_incomplete_message()
        || hyper_error.is_body_write_aborted()
        || hyper_error.is_user()
    {
        return None;
    }
    // A reset or broken pipe is the network, not a refusal.
    let mut source = hyper_error.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return None;
        }
        source = s.source();
    }
    let reason = error_chain(hyper_error);
    // hyper tells an oversize URI from oversize headers only in its text.
    let (status, kind) = if hyper_error.is_parse_too_large() && reason.contains("URI too long") {
        (StatusCode::URI_TOO_LONG, "uri-too-long")
    } else if hyper_error.is_parse_too_large() {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
        )
    } else if hyper_error.is_parse() || hyper_error.is_parse_status() {
        (StatusCode::BAD_REQUEST, "malformed-request")
    } else {
        (StatusCode::BAD_REQUEST, "http2-protocol-error")
    };
    Some(Refused {
        status,
        kind,
        reason: format!("the request was refused by the HTTP layer: {reason}"),
    })
}

fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    recorded: u32,
    coalesced: u64,
    kinds: BTreeMap<&'static str, u64>,
}

/// The rate limit on refusal events.
#[derive(Debug)]
pub(crate) struct Coalescer {
    window: Mutex<Window>,
}

impl Default for Coalescer {
    fn default() -> Coalescer {
        Coalescer {
            window: Mutex::new(Window {
                start: None,
                recorded: 0,
                coalesced: 0,
                kinds: BTreeMap::new(),
            }),
        }
    }
}

impl Coalescer {
    /// Whether a refusal of `kind` at `now` is recorded on its own (`true`)
    /// or counted for the next summary (`false`).
    pub(crate) fn admit(&self, kind: &'static str, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let start = *w.start.get_or_insert(now);
        if now.saturating_duration_since(start) >= WINDOW {
            w.start = Some(now);
            w.recorded = 0;
        }
        if w.recorded < BURST {
            w.recorded += 1;
            return true;
        }
        w.coalesced = w.coalesced.saturating_add(1);
        *w.kinds.entry(kind).or_insert(0) += 1;
        false
    }

    /// The refusals counted since the last summary, by kind (`None`: none).
    pub(crate) fn take(&self) -> Option<(u64, BTreeMap<&'static str, u64>)> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.coalesced == 0 {
            return None;
        }
        let n = std::mem::take(&mut w.coalesced);
        Some((n, std::mem::take(&mut w.kinds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_as_a_burst_and_a_count() {
        let c = Coalescer::default();
        let t0 = Instant::now();
        let recorded = (0..1000)
            .filter(|_| c.admit("malformed-request", t0))
            .count();
        assert_eq!(recorded, BURST as usize);
        let (n, kinds) = c.take().unwrap();
        assert_eq!(n, 1000 - u64::from(BURST));
        assert_eq!(kinds.get("malformed-request"), Some(&n));
        assert!(c.take().is_none());
        // The next window records again.
        assert!(c.admit("headers-too-large", t0 + WINDOW));
    }
}
