use super::*;

#[test]
fn every_inet_aton_spelling_of_loopback_is_one_host() {
    for raw in [
        "127.0.0.1",
        "2130706433",
        "127.1",
        "127.0.1",
        "0x7f000001",
        "0X7F000001",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "0x7f.1",
        "127.000.000.001",
        "0177.0.0.01",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:FFFF:7F00:0001]",
        "%31%32%37.0.0.1",
    ] {
        assert_eq!(request_host(raw).as_deref(), Ok("127.0.0.1"), "{raw}");
    }
}

#[test]
fn the_metadata_address_has_one_spelling() {
    for raw in [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "[::ffff:a9fe:a9fe]",
    ] {
        assert_eq!(request_host(raw).as_deref(), Ok("169.254.169.254"), "{raw}");
    }
}

#[test]
fn names_are_lowercase_ascii_without_the_trailing_dot() {
    for (raw, want) in [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("ex%61mple.com", "example.com"),
        ("example.com%2e", "example.com"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("\u{ff45}xample.com", "example.com"),
        ("localhost", "localhost"),
        ("kubernetes.default.svc.", "kubernetes.default.svc"),
    ] {
        assert_eq!(request_host(raw).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn ipv6_is_compressed_and_bracketed() {
    assert_eq!(request_host("[::1]").as_deref(), Ok("[::1]"));
    assert_eq!(request_host("[0:0::1]").as_deref(), Ok("[::1]"));
    assert_eq!(
        request_host("[2001:DB8:0:0::1]").as_deref(),
        Ok("[2001:db8::1]")
    );
}

#[test]
fn ambiguous_hosts_are_refused() {
    let refused = [
        "",
        ".",
        "example.com..",
        "a..b",
        "1.2.3.256",
        "08.1",
        "1.2.3.4.5",
        "0x100000000",
        "[fe80::1%25eth0]",
        "[fe80::1%eth0]",
        "[::1",
        "::1",
        "[not-v6]",
        "0",
        "0.0.0.0",
        "0x0",
        "0.1.2.3",
        "[::]",
        "[::ffff:0.0.0.0]",
        "[::127.0.0.1]",
        "[::7f00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "exa mple.com",
        "ex%zzample.com",
        "a/b",
    ];
    for raw in refused {
        assert!(request_host(raw).is_err(), "{raw:?} was accepted");
    }
    assert!(matches!(
        request_host("[::127.0.0.1]"),
        Err(HostError::EmbeddedIpv4 { v4, .. }) if v4 == Ipv4Addr::LOCALHOST
    ));
}

#[test]
fn policy_hosts_canonicalise_without_refusing_unreachable_addresses() {
    assert_eq!(policy_host("0.0.0.0").as_deref(), Ok("0.0.0.0"));
    assert_eq!(policy_host("[::ffff:10.0.0.1]").as_deref(), Ok("10.0.0.1"));
    assert_eq!(policy_host("[::]").as_deref(), Ok("[::]"));
    assert_eq!(
        policy_host("Metadata.Google.Internal.").as_deref(),
        Ok("metadata.google.internal")
    );
    assert!(policy_host("1.2.3.999").is_err());
    assert_eq!(
        policy_host_pattern("*.Example.com.", true).as_deref(),
        Ok("*.example.com")
    );
    assert!(policy_host_pattern("*.bücher.de", true).is_err());
    assert!(policy_host_pattern("*..example.com", true).is_err());
}
