use super::*;

#[test]
fn empty_section_is_the_built_in_policy() {
    let config = PolicyConfig::from_yaml("{}").unwrap();
    assert_eq!(config, PolicyConfig::default());
    let ps = &config.pod_security;
    assert!(ps.enabled);
    assert_eq!(ps.enforce.level, Level::Restricted);
    assert_eq!(ps.enforce.version, Version::Latest);
    assert!(ps.enforce.applies_to(WorkloadKind::CronJob));
    assert_eq!(ps.exemptions.namespaces, vec!["kube-system".to_owned()]);
}

#[test]
fn reads_every_knob() {
    let config = PolicyConfig::from_yaml(
        r#"
podSecurity:
  enforce: {level: baseline, version: v1.29, kinds: [Pod]}
  warn: {level: restricted}
  audit: {level: privileged, kinds: []}
  exemptions:
    namespaces: [kube-system, infra]
    usernames: ["system:serviceaccount:infra:deployer"]
    runtimeClasses: [kata]
namespaces:
  team-a:
    labels: {pss.tollgate.dev/enforce: privileged}
    annotations: {deployscope.dev/owner: team-a}
"#,
    )
    .unwrap();
    let ps = &config.pod_security;
    assert_eq!(ps.enforce.level, Level::Baseline);
    assert_eq!(ps.enforce.version, Version::Minor(29));
    assert!(ps.enforce.applies_to(WorkloadKind::Pod));
    assert!(!ps.enforce.applies_to(WorkloadKind::Deployment));
    assert_eq!(
        ps.warn.version,
        Version::Latest,
        "unset fields keep defaults"
    );
    assert!(ps.warn.applies_to(WorkloadKind::Deployment));
    assert_eq!(ps.exemptions.runtime_classes, vec!["kata".to_owned()]);
    let ns = config.static_namespaces();
    use crate::NamespaceSource as _;
    let team = ns.namespace("team-a").unwrap();
    assert_eq!(team.labels["pss.tollgate.dev/enforce"], "privileged");
    assert_eq!(team.annotations["deployscope.dev/owner"], "team-a");
    assert!(ns.namespace("team-b").is_none());
}

#[test]
fn errors_name_the_field_and_the_accepted_values() {
    let cases = [
        ("podSecurity: {enforse: {}}", "unknown field `enforse`"),
        (
            "podSecurity: {enforce: {level: strict}}",
            "privileged, baseline or restricted",
        ),
        (
            "podSecurity: {enforce: {version: '1.30'}}",
            "latest or v1.N",
        ),
        (
            "podSecurity: {warn: {kinds: [Deploymnet]}}",
            "unknown kind \"Deploymnet\"",
        ),
        (
            "podSecurity: {enforce: {kinds: []}}",
            "podSecurity.enforce.kinds",
        ),
        (
            "podSecurity: {exemptions: {usernames: ['']}}",
            "podSecurity.exemptions.usernames",
        ),
        ("namespaces: {a: {label: {}}}", "unknown field `label`"),
        ("defaults: [1]", "invalid type"),
        ("podSecurity: 3", "invalid type"),
    ];
    for (text, want) in cases {
        let err = PolicyConfig::from_yaml(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err} should mention {want}");
    }
}

#[test]
fn round_trips_through_serde() {
    let config = PolicyConfig::from_yaml(
        "podSecurity: {enforce: {level: baseline, version: v1.0, kinds: [Job, CronJob]}}",
    )
    .unwrap();
    let text = yaml_serde::to_string(&config).unwrap();
    assert_eq!(PolicyConfig::from_yaml(&text).unwrap(), config);
}
