//! `tollgate sidecar`.

use std::process::ExitCode;

/// Arguments of `tollgate sidecar`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tollgate sidecar`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tollgate sidecar` is not available in this build yet")
}
