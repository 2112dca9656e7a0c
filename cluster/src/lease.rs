//! Leader election over a `coordination.k8s.io/v1` Lease, the way
//! client-go's leaderelection does it: the holder renews `renewTime` well
//! within `leaseDurationSeconds`; anyone may take the Lease over once it
//! has not been renewed for that long. Every write is conditional on the
//! resource version read, so two candidates never both win.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::ClusterError;

/// One candidate for a Lease.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    leading: Arc<AtomicBool>,
}

impl LeaderElector {
    /// A candidate `identity` for Lease `namespace/name`, held for
    /// `duration` after each renewal.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            leading: Arc::new(AtomicBool::new(false)),
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether the last attempt left this candidate holding the Lease.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Acquires the Lease when free or expired, renews it when held;
    /// returns whether this candidate now leads. API errors count as not
    /// leading (a leader that cannot renew must stop acting as one).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, ClusterError> {
        let result = self.attempt().await;
        let leading = matches!(result, Ok(true));
        let was = self.leading.swap(leading, Ordering::SeqCst);
        if leading != was {
            if leading {
                tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            } else {
                tracing::info!(lease = %self.name, identity = %self.identity, "no longer leader");
            }
        }
        result
    }

    async fn attempt(&self) -> Result<bool, ClusterError> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        let held_for = spec
            .lease_duration_seconds
            .map(|s| SignedDuration::from_secs(i64::from(s)))
            .unwrap_or_else(|| SignedDuration::from_secs(i64::from(seconds)));
        let expired = match (&holder, &spec.renew_time) {
            (None, _) | (_, None) => true,
            (Some(_), Some(renewed)) => renewed
                .0
                .saturating_add(held_for)
                .is_ok_and(|until| until < now),
        };
        if !ours && !expired {
            return Ok(false);
        }
        let mut next = current.clone();
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..spec
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up (on shutdown) so another candidate takes over
    /// without waiting for it to expire.
    pub async fn release(&self) {
        if !self.leading.swap(false, Ordering::SeqCst) {
            return;
        }
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        if let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(e) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(error = %e, "could not release the lease");
            }
        }
    }
}
