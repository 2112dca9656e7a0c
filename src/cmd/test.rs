//! `tollgate test`.

use std::process::ExitCode;

/// Arguments of `tollgate test`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tollgate test`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tollgate test` is not available in this build yet")
}
