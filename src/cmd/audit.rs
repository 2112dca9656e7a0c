//! `tollgate audit`.

use std::process::ExitCode;

/// Subcommands of `tollgate audit`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `tollgate audit`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {}
}
