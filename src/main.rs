//! `tollgate`: one CLI for the admission webhook, the action sidecar, offline
//! checks and the audit trail. Parses arguments and dispatches; the work is
//! done by the library crates.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

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
    /// Print a shell completion script, e.g. `source <(tollgate completion bash)`.
    Completion {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
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
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tollgate",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// `tollgate audit verify DIR | head -1`: when the reader goes away, Rust's
/// `println!` panics on the broken pipe. A CLI should end quietly instead,
/// with the exit status a shell gives a process killed by SIGPIPE (141);
/// every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The error and its causes, joined by `: `, each cause said once: a cause
/// whose text the message already holds (an error that prints its source,
/// wrapped by one that prints it too) is not repeated.
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source and also returns it, as many do.
    #[derive(Debug)]
    struct Bind(std::io::Error);

    impl std::fmt::Display for Bind {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot bind 127.0.0.1:8443: {}", self.0)
        }
    }

    impl std::error::Error for Bind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err = anyhow::Error::new(Bind(io)).context("webhook");
        assert_eq!(
            error_chain(&err),
            "webhook: cannot bind 127.0.0.1:8443: Address already in use"
        );
        let plain = anyhow::anyhow!("a").context("b");
        assert_eq!(error_chain(&plain), "b: a");
    }
}
