//! `tollgate wait-ready`: returns once an HTTP endpoint answers 200. The
//! legacy (non-native) sidecar's `postStart` hook runs it, so the kubelet
//! does not start the agent containers before the proxy is ready.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tollgate_policies::action::spec::parse_duration;

/// Arguments of `tollgate wait-ready`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The readiness URL (plain HTTP).
    #[arg(
        long,
        default_value = "http://127.0.0.1:15090/readyz",
        value_name = "URL"
    )]
    url: String,
    /// Give up (exit 1) after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    /// Time between attempts.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    interval: Duration,
}

/// Runs `tollgate wait-ready`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (authority, path) = split_url(&args.url)?;
    let deadline = Instant::now() + args.timeout;
    loop {
        let last = match probe(
            &authority,
            &path,
            args.interval.max(Duration::from_millis(100)),
        ) {
            Ok(200) => return Ok(ExitCode::SUCCESS),
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            eprintln!(
                "{} was not ready within {:?} (last: {last})",
                args.url, args.timeout
            );
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(args.interval);
    }
}

fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url {url:?}: only http:// URLs are supported");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("--url {url:?}: no host");
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

fn probe(authority: &str, path: &str, timeout: Duration) -> anyhow::Result<u16> {
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(head.get(..n).unwrap_or_default());
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {line:?}"))
}
