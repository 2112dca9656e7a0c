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
    #[arg(long = "dns", value_name = "NAME", required = true, num_args = 1.., value_parser = parse_san)]
    pub dns: Vec<String>,
    /// Directory to write the files into (created if missing). Refused inside a git work tree,
    /// where a private key is one `git add` away from being published, unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write the private keys even inside a git work tree (make sure git ignores them).
    #[arg(long)]
    pub force: bool,
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
    if !args.force
        && let Some(root) = git_work_tree(&args.out)
    {
        eprintln!(
            "error: refusing to write private keys (ca.key, tls.key) into {}: it is inside the git work tree {}, where one `git add` publishes them; choose a directory outside it, or pass --force and make sure git ignores the files",
            args.out.display(),
            root.display()
        );
        return Ok(ExitCode::from(2));
    }
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

/// A certificate subject alternative name: an IP address, or a DNS name
/// (at most 253 characters of dot-separated labels of 1 to 63 letters,
/// digits and `-`, not starting or ending with `-`; the first label may be
/// the wildcard `*`).
fn parse_san(text: &str) -> Result<String, String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |(i, label): (usize, &str)| {
        (i == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').enumerate().all(label_ok) {
        return Err(format!(
            "{text:?} is not a DNS name or IP address (DNS names are dot-separated labels of letters, digits and '-', e.g. tollgate-webhook.tollgate.svc)"
        ));
    }
    if name == "*" {
        return Err(format!(
            "{text:?}: a wildcard needs a domain, e.g. *.example.com"
        ));
    }
    Ok(text.to_owned())
}

/// The root of the git work tree `dir` would be in (looking from `dir`, or
/// its nearest existing ancestor, upwards for `.git`).
fn git_work_tree(dir: &std::path::Path) -> Option<PathBuf> {
    let absolute = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    let mut existing = absolute.as_path();
    while !existing.exists() {
        existing = existing.parent()?;
    }
    let start = existing.canonicalize().ok()?;
    start
        .ancestors()
        .find(|a| a.join(".git").exists())
        .map(std::path::Path::to_owned)
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

    #[test]
    fn subject_names_are_dns_names_or_addresses() {
        for ok in [
            "tollgate-webhook.tollgate.svc",
            "localhost",
            "127.0.0.1",
            "::1",
            "*.example.com",
            "a.b.svc.cluster.local.",
            "X1.Example.COM",
        ] {
            assert_eq!(parse_san(ok).as_deref(), Ok(ok), "{ok}");
        }
        let long_label = format!("{}.svc", "a".repeat(64));
        for bad in [
            "bad name!",
            "",
            "-x.svc",
            "x-.svc",
            "a..b",
            "*",
            "a.*.b",
            "under_score.svc",
            "http://x.svc",
            long_label.as_str(),
        ] {
            assert!(parse_san(bad).is_err(), "{bad:?}");
        }
    }
}
