//! `sluice demo`: the first run that needs no credentials. It starts the
//! Events API simulator in-process on a free loopback port, writes its token
//! to a temporary file and runs the embedded pipelines/demo.yaml against it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sluice_onepassword_sim::{SimConfig, Simulator};
use sluice_topology::config::load_str;

use crate::plan::plan;
use crate::preflight::warn_all;
use crate::run::{block_on, run_plan};

/// The demo topology and its ECS mapping, built into the binary.
const DEMO_YAML: &str = include_str!("../../pipelines/demo.yaml");
const ECS_VRL: &str = include_str!("../../pipelines/vrl/ecs.vrl");

/// Options of `sluice demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Events the simulator backfills per stream, over the past 24 hours.
    #[arg(long, default_value_t = 100, value_name = "N")]
    events: usize,
    /// New events per second per stream while the demo runs.
    #[arg(long, default_value_t = 0.5, value_name = "R")]
    rate: f64,
    /// Where the demo serves /metrics, /health and /tap (another port when
    /// a sluice already listens on 9598).
    #[arg(
        long,
        env = "SLUICE_DEMO_API_ADDRESS",
        default_value = "127.0.0.1:9598",
        value_name = "ADDR"
    )]
    api_address: SocketAddr,
    /// How long the drain may take after SIGINT/SIGTERM.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration, value_name = "DURATION")]
    shutdown_timeout: Duration,
}

pub fn run(args: &DemoArgs) -> crate::error::CliResult {
    block_on(async move {
        let dir = tempfile::Builder::new()
            .prefix("sluice-demo-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let config = SimConfig {
            events_per_stream: args.events,
            rate_per_sec: args.rate,
            ..SimConfig::default()
        };
        // The API port is the one thing a second demo collides on: say which flag moves it.
        if let Err(e) = std::net::TcpListener::bind(args.api_address) {
            return Err(crate::error::CliError::Failed(anyhow::anyhow!(
                "cannot listen on {} for the demo's API: {e}; another sluice or demo may be running there: pass --api-address 127.0.0.1:<another port>",
                args.api_address
            )));
        }
        let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
        let sim = Simulator::start(config, listen).await?;
        let token_file = dir.path().join("op_token");
        crate::sim::write_secret(&token_file, &sim.token())?;
        let users_secret_file = dir.path().join("op_users_secret");
        crate::sim::write_secret(&users_secret_file, &sim.users_client().1)?;
        let vars = [
            ("SLUICE_DEMO_ACCOUNT_ID", sim.account_id().to_owned()),
            ("SLUICE_DEMO_USERS_SECRET_FILE", users_secret_file.display().to_string()),
            ("SLUICE_DEMO_URL", sim.url()),
            ("SLUICE_DEMO_TOKEN_FILE", token_file.display().to_string()),
            ("SLUICE_DEMO_DATA_DIR", dir.path().join("data").display().to_string()),
            ("SLUICE_DEMO_API_ADDRESS", args.api_address.to_string()),
        ];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
                .or_else(|| std::env::var(name).ok())
        };
        // The embedded files are laid out as in pipelines/, so relative paths hold.
        std::fs::create_dir_all(dir.path().join("vrl"))?;
        std::fs::write(dir.path().join("vrl/ecs.vrl"), ECS_VRL)?;
        let mut raw = load_str(&dir.path().join("demo.yaml"), DEMO_YAML, &lookup);
        raw.tests.clear();
        let plan = plan(raw, crate::plan::Files::Read)
            .map_err(|err| anyhow::anyhow!("the embedded demo pipeline is invalid:\n{err}"))?;
        warn_all(&plan);
        tracing::info!(simulator = %sim.url(), "demo: the 1Password Events API simulator is running; events follow on standard output (Ctrl-C stops)");
        let code = run_plan(plan, args.shutdown_timeout, None, false).await;
        sim.shutdown().await;
        code
    })
}
