//! The ownership requirements of one workload, for callers that measure
//! rather than enforce (the agent-readiness score of background audit and
//! `tollgate doctor`): the same required keys and value validation as the
//! admission rule, without its enablement, exemption and action settings.

use super::{Key, OwnershipConfig, Tier, validate};

impl OwnershipConfig {
    /// The keys a workload must carry in `namespace`: the namespace's
    /// `required` list (else the cluster-wide one) plus the keys its tier
    /// requires there (none when the tier is unknown). In [`Key::ALL`]
    /// order, without repeats. Whether ownership is enabled or exempt in the
    /// namespace does not change the answer.
    pub fn required_keys(&self, namespace: &str, tier: Option<Tier>) -> Vec<Key> {
        let resolved = self.resolve(namespace);
        let tier_keys = tier.map(|t| resolved.tier_keys(t)).unwrap_or_default();
        Key::ALL
            .into_iter()
            .filter(|k| resolved.required.contains(k) || tier_keys.contains(k))
            .collect()
    }

    /// True when `namespace` is in `exemptNamespaces` (never checked nor
    /// mutated).
    pub fn is_exempt(&self, namespace: &str) -> bool {
        self.exempt_namespaces.iter().any(|n| n == namespace)
    }
}

/// What is wrong with `value` as the annotation `key`, or `None` when the
/// admission rule accepts it.
pub fn value_problem(key: Key, value: &str) -> Option<String> {
    validate::problem(key, value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ownership::NamespaceOwnership;

    #[test]
    fn tier_and_namespace_requirements() {
        let mut config = OwnershipConfig::default();
        assert_eq!(config.required_keys("a", None), [Key::Owner, Key::Tier]);
        assert_eq!(
            config.required_keys("a", Some(Tier::Critical)),
            [
                Key::Owner,
                Key::Tier,
                Key::Oncall,
                Key::GitopsRepo,
                Key::GitopsPath,
                Key::Runbook
            ]
        );
        config.namespaces.insert(
            "b".into(),
            NamespaceOwnership {
                required: Some(vec![Key::Owner]),
                tiers: BTreeMap::from([(Tier::Standard, vec![Key::Oncall, Key::Owner])]),
                ..NamespaceOwnership::default()
            },
        );
        assert_eq!(
            config.required_keys("b", Some(Tier::Standard)),
            [Key::Owner, Key::Oncall]
        );
        assert!(config.is_exempt("kube-system"));
        assert!(!config.is_exempt("b"));
        assert!(value_problem(Key::Tier, "gold").is_some());
        assert!(value_problem(Key::Tier, "critical").is_none());
    }
}
