//! Listing what background audit judges, page by page, through the
//! Kubernetes API: Namespaces first, then every workload kind.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, ReplicationController};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::BackgroundError;

/// The resources listed, in order: `(plural, group)`, for messages and the
/// RBAC the chart grants.
pub const RESOURCES: [(&str, &str); 9] = [
    ("namespaces", ""),
    ("pods", ""),
    ("replicationcontrollers", ""),
    ("deployments", "apps"),
    ("replicasets", "apps"),
    ("statefulsets", "apps"),
    ("daemonsets", "apps"),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
];

/// Lists every Namespace and workload in the cluster, `page_size` objects
/// per request, handing each page (as JSON objects with `apiVersion` and
/// `kind`) to `page`. Namespaces come first.
pub async fn list_all(
    client: &Client,
    page_size: u32,
    page: &mut (dyn FnMut(Vec<Value>) + Send),
) -> Result<(), BackgroundError> {
    list::<Namespace>(client, page_size, page).await?;
    list::<Pod>(client, page_size, page).await?;
    list::<ReplicationController>(client, page_size, page).await?;
    list::<Deployment>(client, page_size, page).await?;
    list::<ReplicaSet>(client, page_size, page).await?;
    list::<StatefulSet>(client, page_size, page).await?;
    list::<DaemonSet>(client, page_size, page).await?;
    list::<Job>(client, page_size, page).await?;
    list::<CronJob>(client, page_size, page).await?;
    Ok(())
}

async fn list<K>(
    client: &Client,
    page_size: u32,
    page: &mut (dyn FnMut(Vec<Value>) + Send),
) -> Result<(), BackgroundError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let resource = K::plural(&()).into_owned();
    let mut params = ListParams::default().limit(page_size.max(1));
    loop {
        let list = api
            .list(&params)
            .await
            .map_err(|source| BackgroundError::List {
                resource: resource.clone(),
                source,
            })?;
        let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
        let mut values = Vec::with_capacity(list.items.len());
        for item in list.items {
            match serde_json::to_value(&item) {
                Ok(mut value) => {
                    // List items of built-in kinds carry no type fields.
                    if let Some(map) = value.as_object_mut() {
                        map.insert("apiVersion".into(), K::api_version(&()).into());
                        map.insert("kind".into(), K::kind(&()).into());
                    }
                    values.push(value);
                }
                Err(e) => {
                    tracing::warn!(resource, error = %e, "object skipped: cannot be re-encoded")
                }
            }
        }
        page(values);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}
