//! `tollgate webhook`.

use std::process::ExitCode;

/// Arguments of `tollgate webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tollgate webhook`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tollgate webhook` is not available in this build yet")
}
