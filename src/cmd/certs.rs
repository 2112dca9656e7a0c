//! `tollgate certs`: issue the webhook's CA and serving certificate for a
//! cluster (stored as a `kubernetes.io/tls` Secret).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use tollgate_certs::state::{Action, Lifetimes};

/// Subcommands of `tollgate certs`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a CA and a serving certificate for the webhook's Service
    /// (writes ca.crt, ca.key, tls.crt, tls.key; an existing CA in --out is
    /// reused, so the caBundle stays the same).
    Issue(IssueArgs),
}

/// Arguments of `tollgate certs issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// DNS names (or IP addresses) the certificate covers, e.g.
    /// tollgate-webhook.tollgate.svc; the first is the common name.
    #[arg(long = "dns", value_name = "NAME", required = true, num_args = 1..)]
    pub dns: Vec<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Name of the Secret in the printed kubectl command.
    #[arg(long, value_name = "NAME", default_value = "tollgate-webhook-tls")]
    pub secret_name: String,
    /// Namespace in the printed kubectl command [default: from a NAME.NAMESPACE.svc name, else tollgate].
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// Runs `tollgate certs`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Issue(args) => issue(args),
    }
}

fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let lifetimes = Lifetimes {
        serving: time::Duration::days(i64::from(args.days)),
        ..Lifetimes::default()
    };
    let (ca, _pair, ca_action) = tollgate_certs::issue_bundle(&args.out, &args.dns, &lifetimes)
        .with_context(|| format!("cannot issue certificates into {}", args.out.display()))?;
    let out = args.out.display();
    let namespace = args
        .namespace
        .clone()
        .or_else(|| namespace_of(&args.dns))
        .unwrap_or_else(|| "tollgate".to_owned());
    println!(
        "CA: {out}/ca.crt, {out}/ca.key ({})",
        match ca_action {
            Action::Reused => "reused".to_owned(),
            Action::Generated => "generated".to_owned(),
            Action::Renewed(why) => format!("renewed: {why}"),
        }
    );
    println!(
        "serving certificate for {}: {out}/tls.crt, {out}/tls.key (valid {} days)",
        args.dns.join(", "),
        args.days
    );
    println!();
    println!("Create the Secret the webhook mounts (keep ca.key out of the cluster):");
    println!(
        "  kubectl -n {namespace} create secret generic {} --type=kubernetes.io/tls \\\n    --from-file=tls.crt={out}/tls.crt --from-file=tls.key={out}/tls.key --from-file=ca.crt={out}/ca.crt",
        args.secret_name
    );
    println!();
    println!("caBundle for the Validating/MutatingWebhookConfiguration:");
    println!(
        "  {}",
        base64::engine::general_purpose::STANDARD.encode(ca.cert_pem().as_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

/// `NAMESPACE` from the first `NAME.NAMESPACE.svc[.cluster.local]` name.
fn namespace_of(names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        let mut parts = n.split('.');
        let (_svc, ns, svc) = (parts.next()?, parts.next()?, parts.next()?);
        (svc == "svc" && !ns.is_empty()).then(|| ns.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_namespace_in_a_service_name() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            namespace_of(&names(&["tollgate-webhook.security.svc"])).as_deref(),
            Some("security")
        );
        assert_eq!(
            namespace_of(&names(&["x.example.com", "a.b.svc.cluster.local"])).as_deref(),
            Some("b")
        );
        assert_eq!(namespace_of(&names(&["localhost"])), None);
    }
}
