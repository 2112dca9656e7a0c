//! Reading a TLS ClientHello off a tunnel, far enough to learn the SNI,
//! without terminating TLS: the bytes read are replayed to the upstream.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes read while looking for the ClientHello.
pub(crate) const MAX_HELLO_BYTES: usize = 64 << 10;

/// What the first bytes of a tunnel turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A TLS ClientHello, with its SNI host name if it has one.
    Tls(Option<String>),
    /// Not TLS.
    NotTls,
}

/// Why the ClientHello could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// The client closed the tunnel first.
    #[error("the client closed the tunnel before sending a TLS ClientHello")]
    Closed,
    /// Nothing usable arrived in time.
    #[error("no TLS ClientHello within {0:?}")]
    Timeout(Duration),
    /// The read failed.
    #[error("reading the TLS ClientHello failed: {0}")]
    Io(String),
    /// It does not parse.
    #[error("malformed TLS ClientHello: {0}")]
    Malformed(&'static str),
}

/// Reads from `io` until the ClientHello is complete. Returns the bytes
/// read (to replay) and what they are.
pub(crate) async fn read_hello<R: AsyncRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<(Vec<u8>, Hello), HelloError> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match parse(&buf) {
            Ok(Some(hello)) => return Ok((buf, hello)),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        if buf.len() >= MAX_HELLO_BYTES {
            return Err(HelloError::Malformed("ClientHello too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => return Err(HelloError::Timeout(timeout)),
            Ok(Err(e)) => return Err(HelloError::Io(e.to_string())),
            Ok(Ok(0)) => return Err(HelloError::Closed),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Parses what has arrived: `Ok(None)` when more bytes are needed.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Hello>, HelloError> {
    match buf.first() {
        None => return Ok(None),
        Some(0x16) => {}
        Some(_) => return Ok(Some(Hello::NotTls)),
    }
    // Reassemble the handshake layer from as many records as it spans.
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        let Some(&[kind, major, _minor, hi, lo]) = rest.get(..5) else {
            return Ok(None);
        };
        if kind != 0x16 {
            return Err(HelloError::Malformed(
                "a non-handshake record before the ClientHello ended",
            ));
        }
        if major != 3 {
            return Ok(Some(Hello::NotTls));
        }
        let len = usize::from(hi) << 8 | usize::from(lo);
        if len == 0 || len > 16384 + 2048 {
            return Err(HelloError::Malformed("bad record length"));
        }
        let Some(body) = rest.get(5..5 + len) else {
            return Ok(None);
        };
        handshake.extend_from_slice(body);
        rest = rest.get(5 + len..).unwrap_or_default();
        if let Some(&[msg_type, a, b, c]) = handshake.get(..4) {
            if msg_type != 1 {
                return Err(HelloError::Malformed(
                    "the first handshake message is not a ClientHello",
                ));
            }
            let msg_len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if msg_len > MAX_HELLO_BYTES {
                return Err(HelloError::Malformed("ClientHello too large"));
            }
            if let Some(body) = handshake.get(4..4 + msg_len) {
                return sni(body).map(|name| Some(Hello::Tls(name)));
            }
        }
    }
}

/// A cursor over a byte slice that never panics.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        let head = self.0.get(..n).ok_or(HelloError::Malformed("truncated"))?;
        self.0 = self.0.get(n..).unwrap_or_default();
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, HelloError> {
        Ok(usize::from(
            *self
                .take(1)?
                .first()
                .ok_or(HelloError::Malformed("truncated"))?,
        ))
    }

    fn u16(&mut self) -> Result<usize, HelloError> {
        let b = self.take(2)?;
        match b {
            [hi, lo] => Ok(usize::from(*hi) << 8 | usize::from(*lo)),
            _ => Err(HelloError::Malformed("truncated")),
        }
    }
}

/// The `host_name` of the server_name extension of a ClientHello body.
fn sni(body: &[u8]) -> Result<Option<String>, HelloError> {
    let mut c = Cursor(body);
    c.take(2 + 32)?; // legacy_version, random
    let session = c.u8()?;
    c.take(session)?;
    let suites = c.u16()?;
    c.take(suites)?;
    let compression = c.u8()?;
    c.take(compression)?;
    if c.0.is_empty() {
        return Ok(None);
    }
    let ext_len = c.u16()?;
    let mut exts = Cursor(c.take(ext_len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = exts.u16()?;
        let data = exts.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(data);
        let list_len = list.u16()?;
        let mut names = Cursor(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let len = names.u16()?;
            let name = names.take(len)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name)
                    .map_err(|_| HelloError::Malformed("SNI is not UTF-8"))?;
                return Ok(Some(name.trim_end_matches('.').to_ascii_lowercase()));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn finds_the_sni_of_a_real_client_hello() {
        let hello = client_hello("API.Example.com");
        assert_eq!(
            parse(&hello).unwrap(),
            Some(Hello::Tls(Some("api.example.com".into())))
        );
        // Byte by byte, it needs more until the end.
        for cut in [0, 1, 5, 40, hello.len() - 1] {
            assert_eq!(parse(&hello[..cut]).unwrap(), None, "cut at {cut}");
        }
        // rustls sends no SNI for IP addresses.
        assert_eq!(
            parse(&client_hello("127.0.0.1")).unwrap(),
            Some(Hello::Tls(None))
        );
    }

    #[test]
    fn plain_text_and_garbage() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n").unwrap(), Some(Hello::NotTls));
        assert!(parse(&[0x16, 3, 1, 0, 0]).is_err());
        assert!(parse(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]).is_err());
        assert!(parse(&[0x16, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3]).is_err());
    }

    #[tokio::test]
    async fn reads_from_a_stream_and_times_out() {
        let hello = client_hello("a.example");
        let (mut client, mut server) = tokio::io::duplex(1024);
        let sent = hello.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in sent.chunks(100) {
                client.write_all(chunk).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let (bytes, got) = read_hello(&mut server, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(bytes, hello);
        assert_eq!(got, Hello::Tls(Some("a.example".into())));
        let (_c, mut silent) = tokio::io::duplex(64);
        assert_eq!(
            read_hello(&mut silent, Duration::from_millis(50)).await,
            Err(HelloError::Timeout(Duration::from_millis(50)))
        );
    }
}
