//! The `sluice` binary: command line, logging, wiring and signals.
//!
//! sluice collects 1Password Business activity into SIEMs. This crate is the
//! only one that sees every component: [`registry`] names each component type
//! explicitly, [`plan`] turns config files into built components, [`run`]
//! runs them with `/metrics` and `/health` ([`api`]) until a signal, then drains.

/// jemalloc instead of glibc's allocator: chosen by measurement
/// (scripts/bench.sh; figures in the README's benchmark section).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: freed pages go back to the system after about a
/// second instead of ten (`dirty_decay_ms`), and are not kept in the muzzy
/// state at all. Events are allocated by one thread and freed by another,
/// so a pipeline frees a steady stream of pages; at the default decay they
/// stayed resident and peak RSS was 40 % higher for the same throughput
/// (scripts/bench.sh). `_RJEM_MALLOC_CONF` in the environment still
/// overrides this.
// The one unsafe item: jemalloc reads this NUL-terminated string by its
// symbol name when it starts; nothing else refers to the symbol.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

mod api;
mod checkpoint;
mod demo;
mod error;
mod graph;
mod limits;
mod lock;
mod logging;
mod plan;
mod preflight;
mod registry;
mod reload;
mod run;
mod shard;
mod signals;
mod sim;
mod tap;
mod top;
mod unit_test;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Exit code of an invalid config or bad usage.
const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Collects 1Password Business activity into Elasticsearch, Splunk and other SIEMs."
)]
struct Cli {
    /// Log format on standard error: `text` for people, `json` for log collectors.
    /// The level comes from RUST_LOG (default `info`), e.g. RUST_LOG=debug.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text, env = "SLUICE_LOG_FORMAT")]
    log_format: logging::Format,

    /// Run only this replica's share of the 1Password account sources
    /// (`onepassword`, `onepassword_users`): `<index>/<replicas>`, or
    /// `auto/<replicas>` for the ordinal at the end of the pod's hostname (a
    /// StatefulSet's). Applies to run, validate and graph.
    #[arg(long, global = true, env = "SLUICE_SHARD", value_parser = shard::parse, value_name = "INDEX/REPLICAS")]
    shard: Option<shard::Shard>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a topology until SIGINT or SIGTERM, then drain in-flight events and
    /// commit checkpoints. SIGHUP reloads the config files: components whose
    /// settings changed are replaced, the others keep running.
    Run {
        /// Config files, merged in order (at least one).
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
        /// How long a drain may take after SIGINT/SIGTERM before the remaining
        /// components are stopped (e.g. `30s`, `2m`; a bare number is seconds).
        /// Nothing is lost past it: uncommitted events are read again at the next start.
        #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
        shutdown_timeout: Duration,
        /// Also reload when a config file changes (checked every 2 s), as on SIGHUP.
        #[arg(long)]
        watch_config: bool,
        /// All or nothing: a source refused at start stops the start (exit 2),
        /// and a source that fails while running stops the process. Without
        /// it, such a source fails alone: it is named on /health, the others go on.
        #[arg(long, env = "SLUICE_STRICT")]
        strict: bool,
    },
    /// Check config files without running them: YAML, every component's
    /// settings, the files they name (token files: read and decoded), the
    /// graph; no network unless --network. Exits 0 if valid, 2 if not.
    Validate {
        /// Config files, merged in order (at least one).
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
        /// Also run each component's network checks: ask the 1Password API
        /// which streams a token permits, reach every sink's endpoint with its
        /// credentials. Unreachable or refused: exit 2.
        #[arg(long, conflicts_with = "skip_files")]
        network: bool,
        /// Do not read the files components name (token files, certificates):
        /// check the config alone, e.g. in CI where the secrets are not mounted.
        #[arg(long)]
        skip_files: bool,
    },
    /// Run the `tests:` blocks of configs: raw events inserted at a transform,
    /// checked with VRL conditions or an expected document. Exits 1 if any fails.
    Test {
        /// Config files, merged in order (at least one).
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
    /// Serve a simulator of the 1Password Events API (for tests, demos and
    /// docker-compose): generated or fixture events, tokens, cursors, rate
    /// limits and faults. Runs until SIGINT or SIGTERM.
    Sim(sim::SimArgs),
    /// The first run, without credentials: the Events API simulator plus the
    /// embedded pipelines/demo.yaml, printing events until Ctrl-C.
    Demo(demo::DemoArgs),
    /// See or rewind where the onepassword sources stand.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Print the topology of config files as a DOT graph (sources, transforms,
    /// sinks and the edges between them; named outputs label their edges),
    /// e.g. `sluice graph pipelines/demo.yaml | dot -Tsvg > demo.svg`.
    /// Token files are not read.
    Graph {
        /// Config files, merged in order (at least one).
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
    /// List every component type, what it does and the settings it takes.
    List,
    /// Print the events leaving a running sluice's source or transform
    /// output as JSON lines, live, through its API server (`--limit N` to stop).
    Tap(tap::TapArgs),
    /// A live table of a running sluice's components, through its API:
    /// events in and out with their rates, errors, rejections, input queue
    /// fill and health (as `vector top`). `--count N` stops after N refreshes.
    Top(top::TopArgs),
}

/// The longest `--shutdown-timeout`: a day (a larger one would overflow the clock).
const MAX_DURATION: Duration = Duration::from_secs(86_400);

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("`{text}` is not a duration like 30s or 2m: {e}"))?,
    };
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is longer than a day"));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    shard::set(cli.shard);
    let result = match cli.command {
        Command::Run { configs, shutdown_timeout, watch_config, strict } => {
            run::run(&configs, shutdown_timeout, watch_config, strict)
        }
        Command::Validate { configs, network, skip_files } => {
            run::validate(&configs, network, skip_files)
        }
        Command::Sim(args) => sim::run(&args),
        Command::Test { configs } => unit_test::run(&configs),
        Command::Demo(args) => demo::run(&args),
        Command::Checkpoint(command) => checkpoint::run(&command),
        Command::Tap(args) => tap::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Graph { configs } => graph::graph(&configs),
        Command::List => graph::list(),
    };
    match result {
        Ok(code) => code,
        Err(error::CliError::Invalid(text)) => {
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(EXIT_INVALID)
        }
        Err(error::CliError::Failed(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
