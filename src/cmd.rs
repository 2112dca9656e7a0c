//! One module per subcommand: its arguments and the call into a library.

pub mod audit;
pub mod certs;
pub mod check;
pub mod cluster;
pub mod config;
pub mod doctor;
pub mod sidecar;
pub mod test;
pub mod verify;
pub mod wait_ready;
pub mod webhook;
