//! `tollgate`: one CLI for the admission webhook, the action sidecar, offline
//! checks and the audit trail. Parses arguments and dispatches; the work is
//! done by the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod config;
mod constraints;
mod files;

/// Tollgate: the enforcement layer for AI agents on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the validating and mutating admission webhook over HTTPS.
    Webhook(cmd::webhook::Args),
    /// Run the agent action proxy beside an agent container.
    Sidecar(Box<cmd::sidecar::Args>),
    /// Evaluate manifests offline, as the webhook would.
    Check(cmd::check::Args),
    /// Score how ready a cluster or manifests are for agents (ownership annotations, failing controls).
    Doctor(cmd::doctor::Args),
    /// Run Gatekeeper `suite.yaml` test suites.
    Verify(cmd::verify::Args),
    /// Run Rego unit tests (`test_*` rules), like `opa test`.
    Test(cmd::test::Args),
    /// Issue certificates.
    #[command(subcommand)]
    Certs(cmd::certs::Command),
    /// Inspect and verify the audit journal.
    #[command(subcommand)]
    Audit(cmd::audit::Command),
    /// Print the TollgatePolicy CustomResourceDefinition (YAML).
    Crd,
    /// Check config files.
    #[command(subcommand)]
    Config(cmd::config::Command),
    /// Wait until an HTTP endpoint answers 200 (the legacy sidecar's startup gate).
    WaitReady(cmd::wait_ready::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Webhook(args) => cmd::webhook::run(args),
        Command::Sidecar(args) => cmd::sidecar::run(*args),
        Command::Check(args) => cmd::check::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Certs(command) => cmd::certs::run(command),
        Command::Audit(command) => cmd::audit::run(command),
        Command::Crd => cmd::cluster::print_crd(),
        Command::Config(command) => cmd::config::run(command),
        Command::WaitReady(args) => cmd::wait_ready::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
