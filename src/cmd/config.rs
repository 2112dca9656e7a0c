//! `tollgate config check FILE`: validate a config file without starting
//! anything (what a Helm chart, a GitOps pipeline or an editor hook runs
//! before a config reaches the webhook).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::TollgateConfig;

/// `tollgate config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a config file: YAML syntax, apiVersion and kind, every field
    /// known and every value valid. Exit status 0 when valid, 1 when not.
    Check(CheckArgs),
}

/// Arguments of `tollgate config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The config file (apiVersion: tollgate.dev/v1alpha1, kind: TollgateConfig).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs a `tollgate config` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => match TollgateConfig::load(&args.file) {
            Ok(_) => {
                println!("{}: valid", args.file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("{}: invalid: {err:#}", args.file.display());
                Ok(ExitCode::from(1))
            }
        },
    }
}
