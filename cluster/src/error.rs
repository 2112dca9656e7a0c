//! Errors of the cluster integration.

/// What can go wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Kubernetes API answered with an error or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Certificates could not be generated, parsed or written.
    #[error("certificates: {0}")]
    Certs(#[from] tollgate_certs::CertError),
    /// The certificate Secret exists but is not usable.
    #[error("Secret {namespace}/{name}: {reason}")]
    BadSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No kube client configuration was found (neither in-cluster nor KUBECONFIG).
    #[error("no Kubernetes client configuration: {0}")]
    Config(String),
    /// A cluster-held policy could not be loaded.
    #[error("cluster policy: {0}")]
    Policy(String),
    /// Writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
