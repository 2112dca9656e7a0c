//! `tollgate certs`.

use std::process::ExitCode;

/// Subcommands of `tollgate certs`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `tollgate certs`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {}
}
