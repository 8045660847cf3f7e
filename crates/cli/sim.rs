//! `sluice sim`: the 1Password Events API simulator as a server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sluice_onepassword_sim::{Faults, RateLimits, SimConfig, SimStream, Simulator};

/// Options of `sluice sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Seed of the generated events, the token signing key and the cursor key:
    /// the same seed makes the same events, and tokens and cursors survive a restart.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events generated per stream at start, spread over the past 24 hours.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    events: usize,
    /// People of the Users API beyond the twelve the events name (`/_sim/users`
    /// tells the OAuth client's credentials).
    #[arg(long, default_value_t = 0, value_name = "N")]
    users: usize,
    /// New events per second per stream while running (0 for none).
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    rate: f64,
    /// Write a token with all three features to this file (mode 0600) before serving.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Write the Users API's OAuth client secret to this file (mode 0600).
    #[arg(long, value_name = "PATH")]
    users_secret_file: Option<PathBuf>,
    /// The token audience (`aud`), i.e. the host:port clients reach the simulator at
    /// (default: the listen address). In docker-compose: `simulator:8080`.
    #[arg(long, value_name = "HOST:PORT")]
    audience: Option<String>,
    /// Serve raw events from NDJSON files in this folder instead of generating them:
    /// signin_attempts.ndjson, item_usages.ndjson, audit_events.ndjson (any of them).
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Requests per minute per account before 429.
    #[arg(long, default_value_t = 600, value_name = "N")]
    rate_limit_per_minute: u32,
    /// Requests per hour per account before 429.
    #[arg(long, default_value_t = 30_000, value_name = "N")]
    rate_limit_per_hour: u32,
    /// Turn rate limiting off.
    #[arg(long)]
    no_rate_limit: bool,
    /// Do not send RateLimit-Limit/Remaining/Reset headers (Retry-After on 429 stays).
    #[arg(long)]
    no_rate_limit_headers: bool,
    /// Fraction (0-1) of event requests answered 500, 502 or 503.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    error_rate: f64,
    /// Fraction of event requests answered after --slow-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    slow_rate: f64,
    /// Delay of a slow answer, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    slow_ms: u64,
    /// Fraction of event requests answered with truncated JSON.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    malformed_rate: f64,
    /// Fraction of event requests whose connection is reset mid-answer.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    reset_rate: f64,
    /// Fraction of event requests answered with an empty page and `has_more: true`.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    empty_page_rate: f64,
    /// HMAC key of cursors (default: derived from --seed).
    #[arg(long, env = "SLUICE_SIM_CURSOR_KEY", hide_env_values = true, value_name = "KEY")]
    cursor_key: Option<String>,
}

impl SimArgs {
    fn config(&self) -> anyhow::Result<SimConfig> {
        for (name, p) in [
            ("--error-rate", self.error_rate),
            ("--slow-rate", self.slow_rate),
            ("--malformed-rate", self.malformed_rate),
            ("--reset-rate", self.reset_rate),
            ("--empty-page-rate", self.empty_page_rate),
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&p), "{name} must be between 0 and 1, not {p}");
        }
        let mut fixtures = Vec::new();
        if let Some(dir) = &self.fixtures {
            for stream in SimStream::ALL {
                let path = dir.join(format!("{}.ndjson", stream.name()));
                if path.exists() {
                    fixtures.push((stream, path));
                }
            }
            anyhow::ensure!(
                !fixtures.is_empty(),
                "{} holds none of signin_attempts.ndjson, item_usages.ndjson, audit_events.ndjson",
                dir.display()
            );
        }
        Ok(SimConfig {
            seed: self.seed,
            events_per_stream: self.events,
            users: self.users,
            rate_per_sec: self.rate,
            rate_limits: (!self.no_rate_limit).then_some(RateLimits {
                per_minute: self.rate_limit_per_minute,
                per_hour: self.rate_limit_per_hour,
            }),
            rate_limit_headers: !self.no_rate_limit_headers,
            faults: Faults {
                error_rate: self.error_rate,
                slow_rate: self.slow_rate,
                slow_ms: self.slow_ms,
                malformed_rate: self.malformed_rate,
                reset_rate: self.reset_rate,
                empty_page_rate: self.empty_page_rate,
            },
            fixtures,
            audience: self.audience.clone(),
            cursor_key: self.cursor_key.clone(),
            ..SimConfig::default()
        })
    }
}

pub fn run(args: &SimArgs) -> crate::error::CliResult {
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut signals = crate::signals::Signals::new()?;
        let sim = Simulator::start(config, args.listen).await?;
        if let Some(path) = &args.token_file {
            write_secret(path, &sim.token()).with_context(|| format!("cannot write the token to {}", path.display()))?;
            tracing::info!(path = %path.display(), "wrote a token with all three features");
        }
        let (client_id, secret) = sim.users_client();
        if let Some(path) = &args.users_secret_file {
            write_secret(path, &secret).with_context(|| format!("cannot write the client secret to {}", path.display()))?;
            tracing::info!(path = %path.display(), "wrote the Users API's client secret");
        }
        tracing::info!(url = %sim.url(), audience = sim.audience(), account_id = sim.account_id(), users_client_id = client_id, "serving the 1Password Events API simulator, and its Users API");
        let signal = signals.next().await;
        tracing::info!(signal = signal.name(), "stopping");
        sim.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Write `secret` readable by the owner only.
pub fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created: an existing file keeps
    // its mode unless it is set here.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_file_is_readable_by_its_owner_only_even_if_it_existed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        super::write_secret(&path, "new-secret").expect("written");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new-secret\n");
    }
}
