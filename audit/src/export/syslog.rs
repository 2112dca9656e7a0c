//! Syslog: RFC 5424 messages over TLS (RFC 5425), octet-counting framing.
//!
//! RFC 5425 has no application-level acknowledgement, so a batch counts as
//! delivered only when the receiver has provably read all of it: after the
//! last frame the exporter sends TLS `close_notify` and half-closes, and
//! waits for the receiver to close its side. A receiver closes in answer to
//! our close only after reading every byte before it; a receiver that dies
//! first resets the connection instead, and the batch is sent again.
//! What the receiver does after reading (its own queue and disk) is its
//! responsibility: give rsyslog a disk-assisted queue for crash safety.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Delivery, Failure, SendFuture, Sink, payload};
use crate::config::{Format, SyslogConfig, facility_code};
use crate::reader::Item;
use crate::{Error, Event, Priority};

/// The syslog exporter.
pub struct SyslogSink {
    address: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    header: Header,
    format: Format,
}

/// The fixed parts of every message.
#[derive(Debug, Clone)]
pub struct Header {
    /// Facility code (0..=23).
    pub facility: u8,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: String,
    /// Private enterprise number of the SD-ID.
    pub enterprise_id: u32,
}

impl SyslogSink {
    /// Builds the exporter (loads its TLS material).
    pub fn new(config: &SyslogConfig) -> Result<SyslogSink, Error> {
        let host = config
            .address
            .rsplit_once(':')
            .map_or(config.address.as_str(), |(h, _)| h);
        let tls = super::tls::client_config(&config.tls, &config.name)?;
        Ok(SyslogSink {
            address: config.address.clone(),
            server_name: super::tls::server_name(&config.tls, host, &config.name)?,
            connector: TlsConnector::from(Arc::new(tls)),
            header: Header {
                facility: facility_code(&config.facility).unwrap_or(13),
                hostname: sanitize(config.hostname.clone().unwrap_or_else(super::hostname), 255),
                app_name: sanitize(config.app_name.clone(), 48),
                procid: std::process::id().to_string(),
                enterprise_id: config.enterprise_id,
            },
            format: config.format,
        })
    }

    async fn deliver(&self, frames: Vec<u8>) -> std::io::Result<()> {
        let tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        let mut tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await?;
        tls.write_all(&frames).await?;
        tls.flush().await?;
        // close_notify + FIN, then wait for the receiver's close.
        tls.shutdown().await?;
        let mut scratch = [0u8; 1024];
        loop {
            match tls.read(&mut scratch).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // The receiver closed without close_notify: still a close.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Sink for SyslogSink {
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a> {
        Box::pin(async move {
            let mut frames = Vec::with_capacity(batch.len() * 768);
            for item in batch {
                let message = format_message(&self.header, item, self.format);
                frames.extend_from_slice(message.len().to_string().as_bytes());
                frames.push(b' ');
                frames.extend_from_slice(&message);
            }
            self.deliver(frames)
                .await
                .map_err(|e| Failure::transient(format!("{}: {e}", self.address)))?;
            Ok(Delivery::default())
        })
    }
}

/// RFC 5424 severity for a routing priority.
pub fn severity(priority: Priority) -> u8 {
    match priority {
        Priority::P0Escalate => 2,
        Priority::P1Warn | Priority::P1Inform => 4,
        Priority::P2Log => 5,
        Priority::Observe => 6,
    }
}

/// Printable US-ASCII only (RFC 5424 header fields), at most `max` long.
fn sanitize(value: String, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// RFC 5424 TIMESTAMP with at most 6 fractional digits, or NILVALUE.
fn timestamp(time: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(time, &Rfc3339) else {
        return "-".into();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let micros = t.microsecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn escape_param(value: &str, out: &mut String) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn structured_data(header: &Header, item: &Item) -> String {
    let e: &Event = &item.event;
    let mut sd = format!("[tollgate@{}", header.enterprise_id);
    let seq = item.seq.to_string();
    let params: [(&str, Option<&str>); 8] = [
        ("id", Some(&e.id)),
        ("seq", Some(&seq)),
        ("source", Some(e.source.as_str())),
        ("outcome", Some(e.decision.outcome.as_str())),
        ("priority", Some(e.priority.as_str())),
        ("namespace", e.actor.namespace.as_deref()),
        ("owner", e.ownership.owner.as_deref()),
        ("tier", e.ownership.tier.as_deref()),
    ];
    for (name, value) in params {
        if let Some(value) = value {
            sd.push(' ');
            sd.push_str(name);
            sd.push_str("=\"");
            escape_param(value, &mut sd);
            sd.push('"');
        }
    }
    sd.push(']');
    sd
}

/// One RFC 5424 message (without framing): header, structured data with
/// the event id and sequence number, and the JSON event as MSG.
pub fn format_message(header: &Header, item: &Item, format: Format) -> Vec<u8> {
    let e = &item.event;
    let pri = u16::from(header.facility) * 8 + u16::from(severity(e.priority));
    let msgid = sanitize(e.source.as_str().to_owned(), 32);
    let mut out = format!(
        "<{pri}>1 {} {} {} {} {msgid} {} ",
        timestamp(&e.time),
        header.hostname,
        header.app_name,
        header.procid,
        structured_data(header, item)
    )
    .into_bytes();
    let body = serde_json::to_vec(&payload(item, format)).unwrap_or_default();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, Decision, EventAction, Outcome, Ownership, Source};

    #[test]
    fn message_follows_rfc5424() {
        let mut event = Event::new(
            Source::Webhook,
            Actor {
                namespace: Some("pay\"ments]".into()),
                ..Actor::default()
            },
            Ownership {
                tier: Some("critical".into()),
                ..Ownership::default()
            },
            EventAction::default(),
            Decision {
                outcome: Outcome::Deny,
                rule: None,
                reason: None,
                controls: vec![],
            },
            1,
        );
        event.time = "2025-11-24T10:15:30.123456789Z".into();
        let header = Header {
            facility: 13,
            hostname: "node-1".into(),
            app_name: "tollgate".into(),
            procid: "42".into(),
            enterprise_id: 32473,
        };
        let item = Item { seq: 7, event };
        let msg = String::from_utf8(format_message(&header, &item, Format::Native)).unwrap();
        // audit facility (13) * 8 + critical (2) = 106
        let expected_prefix = format!(
            "<106>1 2025-11-24T10:15:30.123456Z node-1 tollgate 42 webhook [tollgate@32473 id=\"{}\" seq=\"7\" source=\"webhook\" outcome=\"deny\" priority=\"p0-escalate\" namespace=\"pay\\\"ments\\]\" tier=\"critical\"] {{",
            item.event.id
        );
        assert!(msg.starts_with(&expected_prefix), "{msg}");
        let json: serde_json::Value =
            serde_json::from_str(&msg[msg.find("] {").unwrap() + 2..]).unwrap();
        assert_eq!(json["id"], item.event.id);
        assert_eq!(timestamp("not a time"), "-");
        assert_eq!(sanitize("a b\u{7f}c".into(), 10), "abc");
    }
}
