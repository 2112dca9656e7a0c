//! A real rsyslog (Debian packages `rsyslog` and `rsyslog-gnutls`) started
//! on a loopback port with a test CA: `imtcp` with the `gtls` stream driver
//! (RFC 5425 over TLS, octet-counted framing), every message written raw to
//! a file. Self-contained, so benchmarks can include it too.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Polls `check` every 20 ms until true or `timeout`.
fn wait_for<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running rsyslogd.
pub struct Rsyslog {
    dir: PathBuf,
    conf: PathBuf,
    pub port: u16,
    /// Where received messages are written, one per line.
    pub out: PathBuf,
    /// The CA that signed rsyslog's certificate (PEM).
    pub ca: PathBuf,
    child: Option<Child>,
}

fn rsyslogd() -> PathBuf {
    for candidate in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v rsyslogd"])
        .output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).trim().into();
    }
    panic!(
        "rsyslogd is not installed: run `make test-deps` (Debian packages rsyslog and rsyslog-gnutls)"
    );
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` (created) on a free port.
    pub fn start(dir: &Path) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let ca = tollgate_certs::Authority::generate("rsyslog test CA", time::Duration::days(1))
            .unwrap();
        let pair = ca
            .issue_server(
                &["localhost".into(), "127.0.0.1".into()],
                time::Duration::days(1),
            )
            .unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), &pair.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pair.key_pem).unwrap();
        let port = free_port();
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{d}/work" maxMessageSize="256k"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{d}/ca.pem"
  DefaultNetstreamDriverCertFile="{d}/cert.pem"
  DefaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon" MaxSessions="1000")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="received") {{
  action(type="omfile" file="{out}" template="raw")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="received")
"#,
                out = out.display()
            ),
        )
        .unwrap();
        let check = Command::new(rsyslogd())
            .args(["-N1", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rsyslog rejects the test configuration (is rsyslog-gnutls installed? run `make test-deps`): {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut r = Rsyslog {
            dir: dir.to_owned(),
            conf,
            port,
            out,
            ca: ca_path,
            child: None,
        };
        r.launch();
        r
    }

    fn launch(&mut self) {
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), "rsyslog listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops rsyslogd gracefully (SIGTERM: it drains its queue) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The JSON payload of a received RFC 5424 message (after the structured
/// data).
pub fn payload(message: &str) -> Option<serde_json::Value> {
    let start = message.find("] {")? + 2;
    serde_json::from_str(message.get(start..)?).ok()
}
