//! `tollgate check`.

use std::process::ExitCode;

/// Arguments of `tollgate check`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tollgate check`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tollgate check` is not available in this build yet")
}
