//! One spelling per host: the canonical form every host is reduced to before
//! it is matched against routes, host rules or the well-known hosts, and
//! before it is dialled.
//!
//! A host reaches the sidecar in many spellings that the resolver and the
//! operating system treat as the same address: `2130706433`, `127.1`,
//! `0x7f000001`, `0177.0.0.1` and `127.000.000.001` are all `127.0.0.1` to
//! `inet_aton`; `[::ffff:127.0.0.1]` and `[::ffff:7f00:1]` are `127.0.0.1`
//! to the kernel; `Example.COM.` is `example.com` to DNS; `bücher.de` is
//! `xn--bcher-kva.de`. Parsing follows the WHATWG URL host parser (the `url`
//! crate), whose IPv4 grammar is `inet_aton`'s (one to four parts, each
//! decimal, octal with a leading `0`, or hexadecimal with `0x`), plus
//! percent-decoding and IDNA (UTS #46) mapping to ASCII.
//!
//! The canonical form is: an IPv4 address in dotted decimal, an IPv6
//! address compressed and bracketed (`[2001:db8::1]`; an IPv4-mapped one
//! becomes its IPv4 address), or a lowercase ASCII (punycode) name without
//! a trailing dot.
//!
//! Requests whose host cannot be reduced to one address unambiguously are
//! refused ([`request_host`]): numeric hosts that are not valid addresses
//! (`1.2.3.256`, `08.1`), IPv6 zone identifiers, the unspecified addresses
//! (`0`, `0.0.0.0`, `[::]`, which Linux connects to the local host) and the
//! rest of `0.0.0.0/8`, IPv4-compatible (`[::127.0.0.1]`) and NAT64
//! (`[64:ff9b::7f00:1]`) addresses, and names with empty labels.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a host has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing to parse.
    #[error("the host is empty")]
    Empty,
    /// An IPv6 literal with a zone identifier (`[fe80::1%25eth0]`).
    #[error(
        "the host {0:?} carries an IPv6 zone identifier, which names an interface of this machine; use the address without it"
    )]
    ZoneId(String),
    /// A bracketed literal that is not an IPv6 address, or an unbracketed
    /// IPv6 address.
    #[error(
        "the host {0:?} is not a valid IPv6 literal (write IPv6 addresses bracketed, e.g. [2001:db8::1])"
    )]
    BadIpv6(String),
    /// A host that ends in a number but is not a valid IPv4 address in any
    /// spelling `inet_aton` accepts.
    #[error("the host {0:?} looks numeric but is not a valid IPv4 address")]
    BadIpv4(String),
    /// A name the URL host parser rejects (forbidden characters, invalid
    /// IDNA, bad percent-escapes).
    #[error("the host {host:?} is not a valid host name: {reason}")]
    BadName {
        /// The host as given.
        host: String,
        /// What the parser said.
        reason: String,
    },
    /// A name with an empty label (`a..b`, `example.com..`).
    #[error("the host {0:?} has an empty label")]
    EmptyLabel(String),
    /// An address that is no destination: unspecified or in `0.0.0.0/8`.
    #[error(
        "the host {host:?} is {canonical}, the unspecified/this-network address, which connects to this machine; name the destination instead"
    )]
    Unspecified {
        /// The host as given.
        host: String,
        /// Its canonical form.
        canonical: String,
    },
    /// An IPv6 address that embeds an IPv4 address in a way that depends on
    /// the network (IPv4-compatible, NAT64).
    #[error(
        "the host {host:?} embeds the IPv4 address {v4} (IPv4-compatible or NAT64 form); use {v4} itself"
    )]
    EmbeddedIpv4 {
        /// The host as given.
        host: String,
        /// The embedded IPv4 address.
        v4: Ipv4Addr,
    },
}

/// The canonical form of a host a request names, or why it is refused.
///
/// `raw` is the host part of an authority (IPv6 bracketed), a `CONNECT`
/// target's host or an SNI name.
pub fn request_host(raw: &str) -> Result<String, HostError> {
    match parse(raw)? {
        Parsed::V4(ip) => check_v4(raw, ip).map(|ip| ip.to_string()),
        Parsed::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return check_v4(raw, v4).map(|ip| ip.to_string());
            }
            if ip.is_unspecified() {
                return Err(HostError::Unspecified {
                    host: raw.to_owned(),
                    canonical: "[::]".into(),
                });
            }
            if let Some(v4) = embedded_v4(ip) {
                return Err(HostError::EmbeddedIpv4 {
                    host: raw.to_owned(),
                    v4,
                });
            }
            Ok(format!("[{ip}]"))
        }
        Parsed::Name(name) => Ok(name),
    }
}

/// The canonical form of a host written in a policy (an exact host, not a
/// glob): the same reduction as [`request_host`], without refusing
/// addresses that no request can reach (a rule naming `0.0.0.0` is legal,
/// it just never matches).
pub fn policy_host(raw: &str) -> Result<String, HostError> {
    Ok(match parse(raw)? {
        Parsed::V4(ip) => ip.to_string(),
        Parsed::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{ip}]"),
        },
        Parsed::Name(name) => name,
    })
}

/// The canonical form of a host glob written in a policy: lowercase, one
/// trailing dot dropped; exact hosts go through [`policy_host`]. Globs must
/// be ASCII (write internationalised names in their `xn--` form), and match
/// the canonical form of request hosts (`10.*` matches `012.1`, which is
/// `10.0.0.1`).
pub fn policy_host_pattern(raw: &str, is_glob: bool) -> Result<String, HostError> {
    if !is_glob {
        return policy_host(raw);
    }
    if !raw.is_ascii() {
        return Err(HostError::BadName {
            host: raw.to_owned(),
            reason: "a host glob must be ASCII; write internationalised names in their xn-- (punycode) form".into(),
        });
    }
    let lower = raw.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed.is_empty() || trimmed.ends_with('.') || trimmed.contains("..") {
        return Err(HostError::EmptyLabel(raw.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// A parsed host, before the request-only checks.
enum Parsed {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(String),
}

fn parse(raw: &str) -> Result<Parsed, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| HostError::BadIpv6(raw.to_owned()))?;
        if inner.contains('%') {
            return Err(HostError::ZoneId(raw.to_owned()));
        }
        return inner
            .parse::<Ipv6Addr>()
            .map(Parsed::V6)
            .map_err(|_| HostError::BadIpv6(raw.to_owned()));
    }
    if raw.contains(':') {
        return Err(HostError::BadIpv6(raw.to_owned()));
    }
    // The resolver treats one trailing dot as "fully qualified": the same
    // name. Two are an empty label.
    let one_dot = raw.strip_suffix('.').unwrap_or(raw);
    if one_dot.is_empty() || one_dot.ends_with('.') {
        return Err(HostError::EmptyLabel(raw.to_owned()));
    }
    match url::Host::parse(one_dot) {
        Ok(url::Host::Ipv4(ip)) => Ok(Parsed::V4(ip)),
        Ok(url::Host::Ipv6(ip)) => Ok(Parsed::V6(ip)),
        Ok(url::Host::Domain(d)) => {
            // Percent-escapes may have spelled a trailing dot (`%2e`).
            let name = d.strip_suffix('.').unwrap_or(&d);
            if name.is_empty() || name.split('.').any(str::is_empty) {
                return Err(HostError::EmptyLabel(raw.to_owned()));
            }
            Ok(Parsed::Name(name.to_owned()))
        }
        Err(url::ParseError::InvalidIpv4Address) => Err(HostError::BadIpv4(raw.to_owned())),
        Err(url::ParseError::InvalidIpv6Address) => Err(HostError::BadIpv6(raw.to_owned())),
        Err(e) => Err(HostError::BadName {
            host: raw.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn check_v4(raw: &str, ip: Ipv4Addr) -> Result<Ipv4Addr, HostError> {
    if ip.octets().first() == Some(&0) {
        return Err(HostError::Unspecified {
            host: raw.to_owned(),
            canonical: ip.to_string(),
        });
    }
    Ok(ip)
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`, deprecated by
/// RFC 4291) or NAT64 well-known-prefix (`64:ff9b::a.b.c.d`, RFC 6052)
/// address; `::1` is the IPv6 loopback and embeds nothing.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [a, b, c, d, e, f, g, h] = ip.segments();
    let tail = Ipv4Addr::from((u32::from(g) << 16) | u32::from(h));
    let zero_middle = [c, d, e, f].iter().all(|&x| x == 0);
    let compatible = a == 0 && b == 0 && zero_middle && !ip.is_loopback();
    let nat64 = a == 0x64 && b == 0xff9b && zero_middle;
    (compatible || nat64).then_some(tail)
}

#[cfg(test)]
mod tests;
