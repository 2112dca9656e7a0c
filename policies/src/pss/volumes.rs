//! Checks on the volumes a pod may mount.

use k8s_openapi::api::core::v1::Volume;

use super::pod::{PodView, Report};

/// The volume types restricted allows.
const RESTRICTED_ALLOWED: &str = "configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret";

/// `hostPathVolumes` (baseline, v1.0+): hostPath volumes are forbidden.
pub(crate) fn host_path_volumes(pod: &PodView<'_>, report: &mut Report<'_>) {
    for (i, volume) in pod.spec.volumes.iter().flatten().enumerate() {
        if volume.host_path.is_some() {
            report.pod(
                format!("spec.volumes[{i}].hostPath"),
                format_args!(
                    "volume {:?} must not use hostPath; use a persistentVolumeClaim, configMap, secret or emptyDir volume instead",
                    volume.name
                ),
            );
        }
    }
}

/// `restrictedVolumes` (restricted, v1.0+): only volume types that cannot
/// reach the node or a remote filesystem directly. Replaces
/// `hostPathVolumes` at the restricted level.
///
/// A volume that names no source at all is what the API server defaults
/// to `emptyDir` before admission runs (`SetDefaults_Volume`), and the
/// upstream fixtures rely on that, so it is judged as `emptyDir` here too.
pub(crate) fn restricted_volumes(pod: &PodView<'_>, report: &mut Report<'_>) {
    for (i, volume) in pod.spec.volumes.iter().flatten().enumerate() {
        if allowed(volume) {
            continue;
        }
        if let Some(kind) = source_type(volume) {
            report.pod(
                format!("spec.volumes[{i}].{kind}"),
                format_args!(
                    "volume {:?} must not use volume type {kind}; restricted allows only {RESTRICTED_ALLOWED} volumes",
                    volume.name
                ),
            );
        }
    }
}

fn allowed(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some()
}

/// The field name of the (forbidden) source a volume uses.
fn source_type(v: &Volume) -> Option<&'static str> {
    let sources = [
        ("hostPath", v.host_path.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
    ];
    sources
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(name, _)| name)
}
