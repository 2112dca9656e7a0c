//! `tollgate verify`.

use std::process::ExitCode;

/// Arguments of `tollgate verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tollgate verify`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tollgate verify` is not available in this build yet")
}
