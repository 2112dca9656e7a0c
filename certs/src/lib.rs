//! Certificates: a CA and serving certificates for the webhook, per-pod
//! interception CAs and on-the-fly leaf certificates for the sidecar, rustls
//! configurations (TLS 1.2 and 1.3 only), and hot reload of rotated files.
