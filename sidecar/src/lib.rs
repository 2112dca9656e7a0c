//! The agent action proxy: classify every request into a typed action,
//! allow or deny it by the pod's action policy, forward or refuse, record it.

pub mod classify;
pub mod json;
