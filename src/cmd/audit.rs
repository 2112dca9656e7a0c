//! `tollgate audit`: verify, read and key the audit journal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tollgate_audit::keys::{SigningKey, VerifyingKey};
use tollgate_audit::reader::Reader;
use tollgate_audit::verify::{Report, Verdict, VerifyOptions};
use tollgate_audit::{AuditConfig, AuditOptions, ocsf, text};

/// Subcommands of `tollgate audit`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain, checkpoints and signatures of a journal (live
    /// and archived segments). Exit 0 intact, 1 tampered, 2 unreadable.
    Verify(VerifyArgs),
    /// Print journal events, oldest first; `-f` follows new ones.
    Tail(TailArgs),
    /// Generate an Ed25519 checkpoint signing key (PKCS#8 PEM) and its
    /// public key (`FILE.pub`), e.g. to store as a Secret.
    Keygen(KeygenArgs),
    /// Produce synthetic events through the full audit pipeline and print
    /// each id once it is durable (fault and load testing).
    #[command(hide = true)]
    Loadgen(LoadgenArgs),
}

/// Output of `verify`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// One JSON report.
    Json,
}

/// Arguments of `tollgate audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The journal directory (`--audit-dir` of the webhook or sidecar).
    pub dir: PathBuf,
    /// Trusted public key (PEM); repeat for rotated keys. Without it, the
    /// keys stored in the journal's `keys/` directory are trusted.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// The archive directory (default: the one the journal records).
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// An external anchor: a checkpoint published outside the journal's
    /// volume (the `anchor.file` copy, or a `checkpoint` notice exported to
    /// a SIEM). The journal must reach it and contain it. Repeatable.
    #[arg(long = "anchor", value_name = "FILE")]
    pub anchors: Vec<PathBuf>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        alias = "format",
        value_enum,
        default_value = "text"
    )]
    pub format: ReportFormat,
}

/// Output of `tail`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TailFormat {
    /// One `key=value` line per event (grep-friendly).
    Text,
    /// The native `tollgate.audit/v1` JSON, one per line.
    Json,
    /// OCSF API Activity JSON, one per line.
    Ocsf,
}

/// Arguments of `tollgate audit tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The journal directory.
    pub dir: PathBuf,
    /// Keep printing events as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        alias = "format",
        value_enum,
        default_value = "text"
    )]
    pub format: TailFormat,
    /// Start with the last N records (default 10; 0 with `-f` prints only
    /// new ones).
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,
    /// Start at this sequence number instead (1: everything still there).
    #[arg(long, conflicts_with = "lines")]
    pub from: Option<u64>,
}

/// Arguments of `tollgate audit keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (mode 0600); the public key goes to
    /// the same path with the extension `.pub`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of the hidden `tollgate audit loadgen`.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// The journal directory.
    pub dir: PathBuf,
    /// Tollgate configuration file (its `audit:` section is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State directory (signing key).
    #[arg(long, default_value = ".tollgate")]
    pub state_dir: PathBuf,
    /// Signing key file.
    #[arg(long)]
    pub audit_signing_key: Option<PathBuf>,
    /// Events to produce (per source).
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Distinct sources (pods); each produces its events in order.
    #[arg(long, default_value_t = 1)]
    pub sources: u64,
    /// Events per second per source (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// After producing, wait up to this many seconds for every exporter to
    /// acknowledge everything before shutting down.
    #[arg(long, default_value_t = 0)]
    pub wait_export: u64,
    /// Delete this file after `--release-after` refused events (frees disk
    /// space in a full-disk test).
    #[arg(long)]
    pub release_file: Option<PathBuf>,
    /// See `--release-file`.
    #[arg(long, default_value_t = 5)]
    pub release_after: u64,
}

/// Runs `tollgate audit`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify(args) => Ok(verify(&args)),
        Command::Tail(args) => tail(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Loadgen(args) => loadgen(args),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let mut keys = Vec::new();
    for path in &args.public_keys {
        match VerifyingKey::load(path) {
            Ok(k) => keys.push(k),
            Err(e) => {
                eprintln!("UNREADABLE: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if keys.is_empty() {
        eprintln!(
            "note: trusting the public keys stored in {}/keys; pass --public-key with a trusted copy for an independent check",
            args.dir.display()
        );
    }
    let report = tollgate_audit::verify::verify(&VerifyOptions {
        dir: args.dir.clone(),
        archive: args.archive.clone(),
        public_keys: keys,
        anchors: args.anchors.clone(),
    });
    match args.format {
        ReportFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        ReportFormat::Text => print_report(&args.dir, &report),
    }
    ExitCode::from(report.verdict.exit_code())
}

fn print_report(dir: &Path, report: &Report) {
    let dir = dir.display();
    match report.verdict {
        Verdict::Unreadable => {
            println!(
                "UNREADABLE  {dir}: {}",
                report.error.as_deref().unwrap_or("unknown error")
            );
            return;
        }
        Verdict::Intact => println!("INTACT  {dir}"),
        Verdict::Tampered => println!("TAMPERED  {dir}"),
    }
    if let Some(first) = report.first_seq {
        println!(
            "  records {first}..{} ({} events, {} signed checkpoints) in {} segment(s), {} from the archive",
            report.head_seq,
            report.events,
            report.checkpoints,
            report.segments,
            report.archived_segments
        );
        println!("  head {} {}", report.head_seq, report.head_hash);
    } else {
        println!("  no records");
    }
    match report.last_checkpoint {
        Some(cp) => println!(
            "  last signed checkpoint covers record {cp}; {} record(s) after it not yet under a signature",
            report.uncovered
        ),
        None if report.records > 0 => println!("  no signed checkpoint yet"),
        None => {}
    }
    if let Some((first, rest)) = report.problems.split_first() {
        let id = first.id.as_deref().unwrap_or("-");
        let seq = first.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
        println!(
            "  first bad record: segment {} offset {} record {seq} id {id}",
            first.segment, first.offset
        );
        println!("    {}", first.reason);
        if !rest.is_empty() {
            println!("  {} more problem(s):", rest.len());
            for p in rest.iter().take(20) {
                let seq = p.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
                println!(
                    "    - {} offset {} record {seq}: {}",
                    p.segment, p.offset, p.reason
                );
            }
        }
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}

/// The sequence number of the last complete record in the journal.
fn last_seq(dir: &Path) -> anyhow::Result<u64> {
    use tollgate_audit::journal::segment;
    let segs = segment::list(&dir.join(segment::SEGMENTS_DIR))
        .with_context(|| format!("reading {}", dir.display()))?;
    for seg in segs.iter().rev() {
        if let Some(summary) = segment::summarize(seg)? {
            return Ok(summary.last_seq);
        }
    }
    Ok(0)
}

fn tail(args: &TailArgs) -> anyhow::Result<ExitCode> {
    let seg_dir = args
        .dir
        .join(tollgate_audit::journal::segment::SEGMENTS_DIR);
    anyhow::ensure!(
        seg_dir.is_dir(),
        "{} is not an audit journal (no segments/ directory)",
        args.dir.display()
    );
    let from = match args.from {
        Some(seq) => seq,
        None => (last_seq(&args.dir)? + 1).saturating_sub(args.lines).max(1),
    };
    let start = if args.from.is_none() && args.lines == 0 {
        last_seq(&args.dir)? + 1
    } else {
        from
    };
    let mut reader = Reader::new(&args.dir, start);
    // Records are redacted when written; redacting again on the way out
    // covers journals written before a pattern existed.
    let redactor = tollgate_audit::redact::Redactor::new(&[])?;
    let stdout = std::io::stdout();
    loop {
        let mut items = reader.read(u64::MAX, 1000, 4 << 20)?;
        for item in &mut items {
            redactor.redact_event(&mut item.event);
        }
        let mut out = stdout.lock();
        for item in &items {
            let line = match args.format {
                TailFormat::Text => text::line(item.seq, &item.event),
                TailFormat::Json => serde_json::to_string(&item.event)?,
                TailFormat::Ocsf => ocsf::to_ocsf(&item.event, Some(item.seq)).to_string(),
            };
            if writeln!(out, "{line}").is_err() {
                // Closed pipe (`| head`): stop quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        let _ = out.flush();
        if items.is_empty() {
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.out.exists(),
        "{} exists; refusing to overwrite a signing key",
        args.out.display()
    );
    let key = SigningKey::generate(&args.out)?;
    println!(
        "wrote {} (private, 0600) and {} (public); key id {}",
        args.out.display(),
        args.out.with_extension("pub").display(),
        key.id()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads the `audit:` section of a Tollgate configuration file.
fn audit_config(path: Option<&Path>) -> anyhow::Result<AuditConfig> {
    let Some(path) = path else {
        return Ok(AuditConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        yaml_serde::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let section = doc.get("audit").cloned().unwrap_or(serde_json::json!({}));
    let config: AuditConfig = serde_json::from_value(section)
        .with_context(|| format!("{}: audit section", path.display()))?;
    config.validate()?;
    Ok(config)
}

fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let config = audit_config(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(loadgen_async(args, config))
}

async fn loadgen_async(args: LoadgenArgs, config: AuditConfig) -> anyhow::Result<ExitCode> {
    use tollgate_audit::{Actor, Decision, Event, EventAction, Outcome, Ownership, Source};
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: args.dir.clone(),
        state_dir: args.state_dir.clone(),
        signing_key: args.audit_signing_key.clone(),
        config,
    })
    .await?;
    let out = Arc::new(std::sync::Mutex::new(std::io::LineWriter::new(
        std::io::stdout(),
    )));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut producers = Vec::new();
    for source in 0..args.sources {
        let recorder = recorder.clone();
        let out = out.clone();
        let refused = refused.clone();
        let release = args.release_file.clone();
        let release_after = args.release_after;
        let (count, rate) = (args.count, args.rate);
        producers.push(tokio::spawn(async move {
            let pod = format!("src-{source}");
            let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
            for n in 0..count {
                let mut attributes = serde_json::Map::new();
                attributes.insert("n".into(), serde_json::json!(n));
                attributes.insert("src".into(), serde_json::json!(pod));
                let event = Event::new(
                    Source::Sidecar,
                    Actor {
                        pod: Some(pod.clone()),
                        namespace: Some("load".into()),
                        agent: Some("loadgen".into()),
                        ..Actor::default()
                    },
                    Ownership {
                        owner: Some("team-load".into()),
                        tier: Some("standard".into()),
                        oncall: None,
                    },
                    EventAction {
                        protocol: "mcp".into(),
                        verb: "tools/call".into(),
                        target: format!("load-server/tool-{}", n % 5),
                        attributes,
                    },
                    Decision {
                        outcome: if n % 10 == 0 {
                            Outcome::Deny
                        } else {
                            Outcome::Allow
                        },
                        rule: Some("load-rule".into()),
                        reason: Some("synthetic load".into()),
                        controls: vec!["SOC2 CC6.1".into()],
                    },
                    50,
                );
                let id = event.id.clone();
                let line = match recorder.record(event).await {
                    Ok(()) => format!("acked {id} {pod} {n}"),
                    Err(e) => {
                        let total = refused.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
                        if total == release_after
                            && let Some(path) = &release
                        {
                            let _ = std::fs::remove_file(path);
                        }
                        format!("refused {id} {pod} {n} {e}")
                    }
                };
                if let Ok(mut w) = out.lock() {
                    let _ = writeln!(w, "{line}");
                }
                if let Some(d) = interval {
                    tokio::time::sleep(d).await;
                }
            }
        }));
    }
    for p in producers {
        p.await?;
    }
    if args.wait_export > 0 {
        let journal = handle.journal().clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_export);
        journal.flush().await.ok();
        loop {
            let head = journal.head().seq;
            let caught_up = journal.cursors().min().is_none_or(|m| m >= head);
            if caught_up || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    handle.shutdown().await?;
    if let Ok(mut w) = out.lock() {
        let _ = writeln!(w, "done");
    }
    Ok(ExitCode::SUCCESS)
}
