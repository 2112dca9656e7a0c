//! A2A method names across protocol generations. A2A 0.3 names JSON-RPC
//! methods with slashes (`tasks/cancel`); A2A 1.0 uses the gRPC service's
//! names (`CancelTask`) over JSON-RPC and maps the same operations onto
//! HTTP+JSON paths. An [`A2aCall`](super::A2aCall) always carries the 0.3
//! name (the canonical one), and a rule's `methods` pattern matches a call
//! when it matches either name, so a rule written in one generation's
//! spelling covers both.

/// Every A2A operation: its canonical (0.3) name and its 1.0 name.
pub const A2A_METHODS: &[(&str, &str)] = &[
    ("message/send", "SendMessage"),
    ("message/stream", "SendStreamingMessage"),
    ("tasks/get", "GetTask"),
    ("tasks/list", "ListTasks"),
    ("tasks/cancel", "CancelTask"),
    ("tasks/resubscribe", "SubscribeToTask"),
    (
        "tasks/pushNotificationConfig/set",
        "CreateTaskPushNotificationConfig",
    ),
    (
        "tasks/pushNotificationConfig/get",
        "GetTaskPushNotificationConfig",
    ),
    (
        "tasks/pushNotificationConfig/list",
        "ListTaskPushNotificationConfigs",
    ),
    (
        "tasks/pushNotificationConfig/delete",
        "DeleteTaskPushNotificationConfig",
    ),
    ("agent/getAuthenticatedExtendedCard", "GetExtendedAgentCard"),
];

/// The canonical name of an A2A method given in either spelling, or `None`
/// when it is no A2A method.
pub fn canonical_a2a_method(method: &str) -> Option<&'static str> {
    A2A_METHODS
        .iter()
        .find(|(old, new)| *old == method || *new == method)
        .map(|(old, _)| *old)
}

/// The A2A 1.0 name of a canonical method, if it has one.
pub fn a2a_method_alias(canonical: &str) -> Option<&'static str> {
    A2A_METHODS
        .iter()
        .find(|(old, _)| *old == canonical)
        .map(|(_, new)| *new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_map_to_one_name() {
        assert_eq!(canonical_a2a_method("CancelTask"), Some("tasks/cancel"));
        assert_eq!(canonical_a2a_method("tasks/cancel"), Some("tasks/cancel"));
        assert_eq!(a2a_method_alias("tasks/cancel"), Some("CancelTask"));
        assert_eq!(canonical_a2a_method("canceltask"), None);
        assert_eq!(a2a_method_alias("CancelTask"), None);
        for (old, new) in A2A_METHODS {
            assert_eq!(canonical_a2a_method(new), Some(*old));
            assert_eq!(a2a_method_alias(old), Some(*new));
        }
    }
}
