//! Reading LLM token usage from responses as they stream past, for token
//! budgets. The response is forwarded unchanged, frame by frame; a copy is
//! decoded (gzip, deflate, br) and scanned on the side: whole JSON bodies
//! up to a bound, SSE streams event by event (OpenAI's final `usage` chunk,
//! the Responses API's `response.completed`, Anthropic's `message_start`
//! and `message_delta`).

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::BoxError;

/// The largest non-streamed response body scanned for usage.
const MAX_JSON_BYTES: usize = 4 << 20;
/// The longest SSE line scanned; longer lines are skipped.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Called once with the tokens used (`None`: the response reported none).
pub type OnUsage = Box<dyn FnOnce(Option<u64>) + Send + Sync>;

/// A response body passed through while its usage is read.
pub struct UsageTap {
    inner: Incoming,
    scanner: Scanner,
    on_usage: Option<OnUsage>,
}

impl std::fmt::Debug for UsageTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageTap").finish_non_exhaustive()
    }
}

impl UsageTap {
    /// Taps `inner`, a response with `content_type` and `Content-Encoding`
    /// `codings`; `on_usage` runs when the body ends (or is dropped).
    pub fn new(
        inner: Incoming,
        content_type: &str,
        codings: &[String],
        on_usage: OnUsage,
    ) -> UsageTap {
        UsageTap {
            inner,
            scanner: Scanner::new(content_type.starts_with("text/event-stream"), codings),
            on_usage: Some(on_usage),
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_usage.take() {
            f(self.scanner.finish());
        }
    }
}

impl Drop for UsageTap {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for UsageTap {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.scanner.feed(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    fn for_codings(codings: &[String]) -> Result<Option<Decoder>, ()> {
        match codings {
            [] => Ok(None),
            [one] => match one.as_str() {
                "gzip" | "x-gzip" => Ok(Some(Decoder::Gzip(flate2::write::MultiGzDecoder::new(
                    Vec::new(),
                )))),
                "deflate" => Ok(Some(Decoder::Deflate(flate2::write::ZlibDecoder::new(
                    Vec::new(),
                )))),
                "br" => Ok(Some(Decoder::Br(Box::new(
                    brotli::DecompressorWriter::new(Vec::new(), 4096),
                )))),
                _ => Err(()),
            },
            _ => Err(()),
        }
    }

    /// Decodes `chunk`, returning what came out.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, ()> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(chunk).map_err(|_| ())?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(chunk).map_err(|_| ())?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Br(d) => {
                d.write_all(chunk).map_err(|_| ())?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Usage {
    input: u64,
    output: u64,
    total: Option<u64>,
    found: bool,
}

impl Usage {
    /// Merges a `usage` object. Streams report cumulative figures, so the
    /// largest seen counts.
    fn merge(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        let input = n("input_tokens").or_else(|| n("prompt_tokens"));
        let cache = n("cache_creation_input_tokens").unwrap_or(0)
            + n("cache_read_input_tokens").unwrap_or(0);
        let output = n("output_tokens").or_else(|| n("completion_tokens"));
        if input.is_none() && output.is_none() && n("total_tokens").is_none() {
            return;
        }
        self.found = true;
        if let Some(i) = input {
            self.input = self.input.max(i.saturating_add(cache));
        }
        if let Some(o) = output {
            self.output = self.output.max(o);
        }
        if let Some(t) = n("total_tokens") {
            self.total = Some(self.total.unwrap_or(0).max(t));
        }
    }

    fn tokens(&self) -> Option<u64> {
        self.found.then(|| {
            self.total
                .unwrap_or(0)
                .max(self.input.saturating_add(self.output))
        })
    }
}

/// Scans decoded bytes for usage.
struct Scanner {
    sse: bool,
    decoder: Option<Decoder>,
    broken: bool,
    buf: Vec<u8>,
    skipping_line: bool,
    usage: Usage,
}

impl Scanner {
    fn new(sse: bool, codings: &[String]) -> Scanner {
        let (decoder, broken) = match Decoder::for_codings(codings) {
            Ok(d) => (d, false),
            Err(()) => (None, true),
        };
        Scanner {
            sse,
            decoder,
            broken,
            buf: Vec::new(),
            skipping_line: false,
            usage: Usage::default(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.broken {
            return;
        }
        let decoded;
        let data: &[u8] = match &mut self.decoder {
            Some(d) => match d.feed(chunk) {
                Ok(out) => {
                    decoded = out;
                    &decoded
                }
                Err(()) => {
                    self.broken = true;
                    return;
                }
            },
            None => chunk,
        };
        if self.sse {
            self.feed_sse(data);
        } else if self.buf.len() + data.len() > MAX_JSON_BYTES {
            self.broken = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    fn feed_sse(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let (line, rest) = data.split_at(i);
                    data = rest.get(1..).unwrap_or_default();
                    if self.skipping_line {
                        self.skipping_line = false;
                        self.buf.clear();
                        continue;
                    }
                    self.buf.extend_from_slice(line);
                    let line = std::mem::take(&mut self.buf);
                    self.sse_line(&line);
                }
                None => {
                    if !self.skipping_line {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > MAX_LINE_BYTES {
                            self.buf.clear();
                            self.skipping_line = true;
                        }
                    }
                    return;
                }
            }
        }
    }

    fn sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(payload) = line.strip_prefix(b"data:") else {
            return;
        };
        if let Ok(value) = serde_json::from_slice::<Value>(payload) {
            self.extract(&value);
        }
    }

    fn extract(&mut self, value: &Value) {
        for u in [
            value.get("usage"),
            value.pointer("/response/usage"),
            value.pointer("/message/usage"),
        ]
        .into_iter()
        .flatten()
        {
            self.usage.merge(u);
        }
    }

    fn finish(&mut self) -> Option<u64> {
        if !self.sse && !self.broken && !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            if let Ok(value) = serde_json::from_slice::<Value>(&buf) {
                self.extract(&value);
            }
        }
        self.usage.tokens()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(sse: bool, codings: &[String], chunks: &[&[u8]]) -> Option<u64> {
        let mut s = Scanner::new(sse, codings);
        for c in chunks {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn openai_json_and_stream() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#;
        let (a, b) = body.split_at(20);
        assert_eq!(scan(false, &[], &[a, b]), Some(42));
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
        let parts: Vec<&[u8]> = stream.chunks(9).collect();
        assert_eq!(scan(true, &[], &parts), Some(12));
    }

    #[test]
    fn responses_and_anthropic_streams() {
        let responses = b"event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4,\"total_tokens\":7}}}\r\n\r\n";
        assert_eq!(scan(true, &[], &[responses]), Some(7));
        let anthropic = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        assert_eq!(scan(true, &[], &[anthropic]), Some(45));
    }

    #[test]
    fn compressed_bodies_are_scanned_and_unknown_codings_give_up() {
        let body = br#"{"usage":{"input_tokens":2,"output_tokens":3}}"#;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        let gz = e.finish().unwrap();
        let parts: Vec<&[u8]> = gz.chunks(5).collect();
        assert_eq!(scan(false, &["gzip".into()], &parts), Some(5));
        assert_eq!(scan(false, &["zstd".into()], &[body]), None);
        assert_eq!(scan(false, &[], &[b"{\"no\":\"usage\"}"]), None);
    }

    #[test]
    fn oversized_lines_are_skipped() {
        let mut stream = b"data: ".to_vec();
        stream.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        stream.extend_from_slice(b"\ndata: {\"usage\":{\"total_tokens\":9}}\n");
        let parts: Vec<&[u8]> = stream.chunks(64 << 10).collect();
        assert_eq!(scan(true, &[], &parts), Some(9));
    }
}
