use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::*;
use crate::{Authority, CertifiedPair};

fn pair(ca: &Authority, name: &str) -> CertifiedPair {
    ca.issue_server(&[name.to_owned()], time::Duration::days(1))
        .unwrap()
}

fn write(dir: &Path, p: &CertifiedPair) {
    std::fs::write(dir.join("tls.crt"), &p.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &p.key_pem).unwrap();
}

fn served_cert(r: &ReloadingResolver) -> Vec<u8> {
    r.current_key().cert[0].as_ref().to_vec()
}

fn der(p: &CertifiedPair) -> Vec<u8> {
    pem::parse_certs(p.cert_pem.as_bytes(), "t").unwrap()[0]
        .as_ref()
        .to_vec()
}

#[test]
fn swaps_only_complete_matching_pairs_and_reports_failures_once() {
    let ca = Authority::generate("ca", time::Duration::days(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (pair(&ca, "one.example"), pair(&ca, "two.example"));
    write(dir.path(), &one);
    let r =
        ReloadingResolver::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    assert!(matches!(r.check(), ReloadOutcome::Unchanged));
    assert_eq!(served_cert(&r), der(&one));

    // Half a rotation: the new certificate with the old key.
    std::fs::write(dir.path().join("tls.crt"), &two.cert_pem).unwrap();
    match r.check() {
        ReloadOutcome::Failed(e) => assert!(e.to_string().to_lowercase().contains("key"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(r.check(), ReloadOutcome::Unchanged),
        "reported once"
    );
    assert_eq!(served_cert(&r), der(&one), "old pair still served");

    std::fs::write(dir.path().join("tls.key"), &two.key_pem).unwrap();
    assert!(matches!(
        r.check(),
        ReloadOutcome::Reloaded { not_after: Some(_) }
    ));
    assert_eq!(served_cert(&r), der(&two));

    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    assert!(matches!(r.check(), ReloadOutcome::Failed(_)));
    std::fs::remove_file(dir.path().join("tls.key")).unwrap();
    assert!(matches!(
        r.check(),
        ReloadOutcome::Failed(CertError::Io { .. })
    ));
    assert!(matches!(r.check(), ReloadOutcome::Unchanged));
    assert_eq!(served_cert(&r), der(&two));
}

#[test]
fn refuses_to_start_without_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "x").unwrap();
    std::fs::write(dir.path().join("tls.key"), "y").unwrap();
    assert!(
        ReloadingResolver::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).is_err()
    );
    assert!(
        ReloadingResolver::load(&dir.path().join("none.crt"), &dir.path().join("tls.key")).is_err()
    );
}

/// Lays out a directory the way the kubelet mounts a Secret:
/// `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`.
#[cfg(unix)]
fn kubelet_publish(dir: &Path, version: &str, p: &CertifiedPair) {
    use std::os::unix::fs::symlink;
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    write(&versioned, p);
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn watching_sees_the_kubelet_symlink_swap() {
    let ca = Authority::generate("ca", time::Duration::days(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (pair(&ca, "one.example"), pair(&ca, "two.example"));
    kubelet_publish(dir.path(), "v1", &one);
    let r =
        ReloadingResolver::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let reloads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reloads);
    // A poll interval far beyond the test: only the watcher can see it.
    let _handle = r.watch(Duration::from_secs(3600), move |o| {
        if matches!(o, ReloadOutcome::Reloaded { .. }) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    kubelet_publish(dir.path(), "v2", &two);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no reload seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_cert(&r), der(&two));
}

#[tokio::test]
async fn polling_catches_changes_without_events() {
    let ca = Authority::generate("ca", time::Duration::days(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (pair(&ca, "one.example"), pair(&ca, "two.example"));
    write(dir.path(), &one);
    let r =
        ReloadingResolver::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let handle = r.watch(Duration::from_millis(50), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    write(dir.path(), &two);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cert(&r) != der(&two) {
        assert!(Instant::now() < deadline, "no reload seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(handle);
    assert!(seen.load(Ordering::SeqCst) >= 1);
}
