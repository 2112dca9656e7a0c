//! Request and response bodies: the one body type the proxy sends both
//! ways, bounded collection of request bodies for inspection, and bounded
//! `Content-Encoding` decoding (gzip, deflate, br) so a compressed body is
//! judged on what it says and a zip bomb cannot exhaust memory.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::usage::UsageTap;

/// The boxed error of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body the proxy sends: nothing, a buffer, a stream passed through
/// unchanged, or a stream whose LLM token usage is read on the way.
#[derive(Debug)]
pub enum Payload {
    /// No body.
    Empty,
    /// A complete body.
    Full(Option<Bytes>),
    /// A streamed body, passed through frame by frame.
    Stream(Incoming),
    /// A streamed LLM response, passed through while its usage is read.
    Tapped(Box<UsageTap>),
}

impl Payload {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Payload {
        Payload::Full(Some(bytes.into()))
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Payload::Empty => Poll::Ready(None),
            Payload::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Payload::Stream(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            Payload::Tapped(tap) => Pin::new(tap.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Payload::Empty => true,
            Payload::Full(b) => b.is_none(),
            Payload::Stream(inner) => inner.is_end_stream(),
            Payload::Tapped(tap) => tap.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Payload::Empty => SizeHint::with_exact(0),
            Payload::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Payload::Stream(inner) => inner.size_hint(),
            Payload::Tapped(tap) => tap.size_hint(),
        }
    }
}

/// Why a request body could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the policy's `maxBodyBytes`.
    #[error(
        "request body is larger than the inspection limit of {0} bytes (spec.limits.maxBodyBytes)"
    )]
    TooLarge(u64),
    /// Larger than `maxDecodedBodyBytes` once decoded.
    #[error(
        "decoded request body is larger than the limit of {0} bytes (spec.limits.maxDecodedBodyBytes)"
    )]
    DecodedTooLarge(u64),
    /// The client did not send the body in time.
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    /// The client's stream failed (reset, closed early).
    #[error("request body could not be read: {0}")]
    Read(String),
    /// A `Content-Encoding` the sidecar cannot decode.
    #[error("Content-Encoding {0:?} cannot be inspected; send identity, gzip, deflate or br")]
    UnknownEncoding(String),
    /// The body does not decode.
    #[error("request body does not decode as {encoding}: {reason}")]
    Corrupt {
        /// The encoding.
        encoding: String,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Reads a whole request body, refusing more than `limit` bytes and
/// giving up after `timeout`.
pub async fn collect(
    mut body: Incoming,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let capacity = usize::try_from(body.size_hint().exact().unwrap_or(0).min(limit)).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(capacity);
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(deadline, frame).await {
            Err(_) => return Err(BodyError::Timeout(timeout)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > limit {
                        return Err(BodyError::TooLarge(limit));
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(buf.freeze())
}

/// The codings listed in `Content-Encoding`, in the order they were
/// applied (all header lines, comma-separated, lowercase, `identity`
/// dropped).
pub fn content_codings(headers: &HeaderMap) -> Result<Vec<String>, BodyError> {
    let mut codings = Vec::new();
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            BodyError::UnknownEncoding(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        for coding in text.split(',') {
            let coding = coding.trim().to_ascii_lowercase();
            if !coding.is_empty() && coding != "identity" {
                codings.push(coding);
            }
        }
    }
    Ok(codings)
}

/// Decodes `body` through `codings` (last applied first), refusing more
/// than `limit` decoded bytes.
pub fn decode(body: Bytes, codings: &[String], limit: u64) -> Result<Bytes, BodyError> {
    let mut current = body;
    for coding in codings.iter().rev() {
        let corrupt = |e: std::io::Error| BodyError::Corrupt {
            encoding: coding.clone(),
            reason: e.to_string(),
        };
        let mut out = Vec::new();
        let input: &[u8] = &current;
        let read = match coding.as_str() {
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(input)
                .take(limit + 1)
                .read_to_end(&mut out),
            "deflate" => {
                // RFC 9110 says zlib-wrapped; some clients send raw deflate.
                let zlib = flate2::read::ZlibDecoder::new(input)
                    .take(limit + 1)
                    .read_to_end(&mut out);
                if zlib.is_err() {
                    out.clear();
                    flate2::read::DeflateDecoder::new(input)
                        .take(limit + 1)
                        .read_to_end(&mut out)
                } else {
                    zlib
                }
            }
            "br" => brotli::Decompressor::new(input, 4096)
                .take(limit + 1)
                .read_to_end(&mut out),
            other => return Err(BodyError::UnknownEncoding(other.to_owned())),
        };
        read.map_err(corrupt)?;
        if out.len() as u64 > limit {
            return Err(BodyError::DecodedTooLarge(limit));
        }
        current = Bytes::from(out);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn decodes_stacked_codings() {
        let plain = br#"{"jsonrpc":"2.0"}"#;
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&gzip(plain)).unwrap();
        }
        let codings = vec!["gzip".to_owned(), "br".to_owned()];
        assert_eq!(&decode(Bytes::from(br), &codings, 1024).unwrap()[..], plain);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(plain).unwrap();
        let zlib = Bytes::from(zlib.finish().unwrap());
        assert_eq!(&decode(zlib, &["deflate".into()], 1024).unwrap()[..], plain);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(plain).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert_eq!(&decode(raw, &["deflate".into()], 1024).unwrap()[..], plain);
    }

    #[test]
    fn zip_bombs_are_bounded() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            decode(bomb, &["gzip".into()], 1 << 20),
            Err(BodyError::DecodedTooLarge(_))
        ));
    }

    #[test]
    fn unknown_and_corrupt_codings_are_refused() {
        assert!(matches!(
            decode(Bytes::from_static(b"x"), &["zstd".into()], 10),
            Err(BodyError::UnknownEncoding(_))
        ));
        assert!(matches!(
            decode(Bytes::from_static(b"not gzip"), &["gzip".into()], 10),
            Err(BodyError::Corrupt { .. })
        ));
        let mut headers = HeaderMap::new();
        headers.append("content-encoding", "Identity, GZIP".parse().unwrap());
        headers.append("content-encoding", "br".parse().unwrap());
        assert_eq!(content_codings(&headers).unwrap(), vec!["gzip", "br"]);
    }
}
