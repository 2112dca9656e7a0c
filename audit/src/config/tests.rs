use super::*;

const FULL: &str = r#"
journal:
  groupCommitWindow: 500us
  maxBatchRecords: 2048
segment:
  maxBytes: 32MiB
  maxAge: 30m
checkpoint:
  everyRecords: 5000
  interval: 5s
spool:
  maxBytes: 2GiB
  overflow: drop-oldest-unexported
retention:
  minimumAge: 3d
archive:
  dir: /var/lib/tollgate/archive
redaction:
  patterns:
    - kind: employee-id
      regex: '\bEMP-\d{6}\b'
exporters:
  - type: syslog
    name: siem
    address: syslog.example:6514
    tls: {caFile: /etc/tollgate/siem-ca.pem}
    facility: local4
  - type: splunk-hec
    name: splunk
    url: https://splunk.example:8088
    tokenFile: /etc/tollgate/hec-token
    index: audit
    format: ocsf
  - type: elasticsearch
    name: elastic
    url: https://es.example:9200
    apiKeyFile: /etc/tollgate/es-key
  - type: webhook
    name: hook
    url: https://collector.example/ingest
    headers: {X-Tenant: platform}
  - type: file
    name: fluent
    path: /var/log/tollgate/audit.jsonl
    batch: {maxRecords: 200, maxWait: 50ms}
"#;

#[test]
fn full_example_parses_and_validates() {
    let config: AuditConfig = yaml_serde::from_str(FULL).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.journal.group_commit_window.0,
        std::time::Duration::from_micros(500)
    );
    assert_eq!(config.segment.max_bytes.0, 32 << 20);
    assert_eq!(config.spool.overflow, Overflow::DropOldestUnexported);
    assert_eq!(config.retention.minimum_age.0.as_secs(), 3 * 86_400);
    let archive = config.archive.as_ref().unwrap();
    assert_eq!(archive.retention.0.as_secs(), 7 * YEAR_SECS);
    assert_eq!(config.exporters.len(), 5);
    assert_eq!(
        config.consumers(),
        ["siem", "splunk", "elastic", "hook", "fluent", "archive"]
    );
    match &config.exporters[4] {
        ExporterConfig::File(f) => {
            assert_eq!(f.batch.max_records, 200);
            assert_eq!(f.batch.max_wait.0.as_millis(), 50);
            assert_eq!(f.max_files, 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_section_gives_documented_defaults() {
    let config: AuditConfig = yaml_serde::from_str("{}").unwrap();
    config.validate().unwrap();
    assert_eq!(config, AuditConfig::default());
    assert_eq!(config.spool.overflow, Overflow::FailClosed);
    assert_eq!(config.checkpoint.every_records, 10_000);
    assert!(config.consumers().is_empty());
}

#[test]
fn typos_and_bad_values_are_refused_with_the_field() {
    let cases = [
        ("spool: {maxbytes: 1GiB}", "unknown field"),
        ("spool: {overflow: drop-newest}", "unknown variant"),
        ("segment: {maxAge: 10 minutes}", "unknown unit"),
        ("segment: {maxBytes: 12XB}", "unknown unit"),
        ("exporters: [{type: kafka, name: k}]", "unknown variant"),
        (
            "exporters: [{type: syslog, name: s, address: h:1, facilty: local0}]",
            "unknown field",
        ),
    ];
    for (yaml, want) in cases {
        let err = yaml_serde::from_str::<AuditConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let invalid = [
        ("spool: {maxBytes: 64MiB}", "audit.spool.maxBytes"),
        (
            "exporters: [{type: webhook, name: w, url: 'http://x.example/'}]",
            "audit.exporters[0].url",
        ),
        (
            "exporters: [{type: syslog, name: s, address: nohostport}]",
            "audit.exporters[0].address",
        ),
        (
            "exporters: [{type: syslog, name: s, address: 'h:1', facility: mars}]",
            "audit.exporters[0].facility",
        ),
        (
            "exporters: [{type: file, name: a, path: x}, {type: file, name: a, path: y}]",
            "audit.exporters[1].name",
        ),
        (
            "exporters: [{type: file, name: Bad_Name, path: x}]",
            "audit.exporters[0].name",
        ),
        (
            "exporters: [{type: file, name: archive, path: x}]",
            "audit.exporters[0].name",
        ),
        (
            "redaction: {patterns: [{kind: x, regex: '('}]}",
            "audit.redaction.patterns[0].regex",
        ),
        (
            "checkpoint: {everyRecords: 0}",
            "audit.checkpoint.everyRecords",
        ),
    ];
    for (yaml, field) in invalid {
        let config: AuditConfig = yaml_serde::from_str(yaml).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field, "{yaml}: {err}");
    }
}

#[test]
fn durations_and_sizes_round_trip() {
    for (text, secs) in [
        ("10s", 10),
        ("1h30m", 5400),
        ("7d", 604_800),
        ("2y", 2 * YEAR_SECS),
    ] {
        let d = parse_duration(text).unwrap();
        assert_eq!(d.as_secs(), secs, "{text}");
        assert_eq!(Duration(d).to_string(), text.replace("1h30m", "90m"));
    }
    assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
    assert_eq!(parse_duration("0").unwrap(), std::time::Duration::ZERO);
    assert!(parse_duration("").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("99999999999999999999999s").is_err());
    assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
    assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
    assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    assert!(parse_size("99999999999TiB").is_err());
    assert!(parse_size("MiB").is_err());
}

#[test]
fn the_documented_example_configuration_is_valid() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/audit/tollgate.yaml");
    let doc: serde_json::Value =
        yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["kind"], "TollgateConfig");
    let config: AuditConfig = serde_json::from_value(doc["audit"].clone()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.exporters.len(), 5);
    assert_eq!(
        config,
        {
            let mut defaults = config.clone();
            defaults.journal = JournalSettings::default();
            defaults.segment = SegmentSettings::default();
            defaults.checkpoint = CheckpointSettings::default();
            defaults.spool = SpoolSettings::default();
            defaults.retention = RetentionSettings::default();
            defaults
        },
        "the example documents the defaults"
    );
}
