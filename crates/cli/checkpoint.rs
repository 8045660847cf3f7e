//! `sluice checkpoint list|reset`: see and rewind where sources stand.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use sluice_core::Stream;
use sluice_source_onepassword::checkpoint::{self, StreamCheckpoint};
use sluice_source_onepassword::config::parse_start_time;

use crate::EXIT_INVALID;
use crate::run::load;

/// `sluice checkpoint` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Show each onepassword source's position per stream.
    List {
        /// Config files, merged in order.
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
    /// Rewind a onepassword source (stop sluice first: a running sluice
    /// overwrites checkpoints). Without --start-time the checkpoint is removed
    /// and the next start uses the source's `start_time`.
    Reset {
        /// Config files, merged in order.
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
        /// The source id.
        #[arg(long, value_name = "ID")]
        source: String,
        /// Only this stream (signin_attempts, item_usages, audit_events).
        #[arg(long, value_name = "STREAM")]
        stream: Option<Stream>,
        /// Start again from here: RFC 3339, or a duration ago like 3d.
        #[arg(long, value_name = "TIME")]
        start_time: Option<String>,
    },
}

pub fn run(command: &CheckpointCommand) -> anyhow::Result<ExitCode> {
    let configs = match command {
        CheckpointCommand::List { configs } | CheckpointCommand::Reset { configs, .. } => configs,
    };
    let plan = match load(configs) {
        Ok(plan) => plan,
        Err(err) => {
            eprint!("{err}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let data_dir = plan.data_dir();
    let sources: Vec<&str> = plan
        .sources
        .iter()
        .filter(|s| s.type_name == "onepassword")
        .map(|s| s.id.as_str())
        .collect();
    match command {
        CheckpointCommand::List { .. } => {
            println!(
                "{:<16} {:<16} {:<8} {:<32} {:>10}  committed at",
                "source", "stream", "cursor", "newest delivered", "events"
            );
            for source in &sources {
                for stream in Stream::ALL {
                    let path = checkpoint::path(&data_dir, source, stream);
                    let (cursor, newest, events, at) = match checkpoint::load(&path)? {
                        None => ("none", "-".to_owned(), 0, "-".to_owned()),
                        Some(cp) => (
                            if cp.cursor.is_some() { "yes" } else { "reset" },
                            cp.newest_timestamp
                                .or(cp.start_time.map(|t| format!("(from {t})")))
                                .unwrap_or_else(|| "-".into()),
                            cp.events,
                            cp.committed_at,
                        ),
                    };
                    println!(
                        "{source:<16} {:<16} {cursor:<8} {newest:<32} {events:>10}  {at}",
                        stream.as_str()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointCommand::Reset { source, stream, start_time, .. } => {
            if !sources.contains(&source.as_str()) {
                eprintln!(
                    "error: `{source}` is not a onepassword source of this config (it has: {})",
                    sources.join(", ")
                );
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            let start = match start_time.as_deref().map(parse_start_time) {
                None => None,
                Some(Ok(start)) => {
                    Some(start.resolve(Utc::now()).to_rfc3339_opts(SecondsFormat::Secs, true))
                }
                Some(Err(message)) => {
                    eprintln!("error: {message}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let streams: Vec<Stream> = stream.map_or_else(|| Stream::ALL.to_vec(), |s| vec![s]);
            for stream in streams {
                let path = checkpoint::path(&data_dir, source, stream);
                match &start {
                    Some(start) => {
                        let previous = checkpoint::load(&path)?.unwrap_or_default();
                        let reset = StreamCheckpoint {
                            cursor: None,
                            start_time: Some(start.clone()),
                            committed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                            ..previous
                        };
                        checkpoint::save(&path, &reset)?;
                        println!("{source} {}: will start again from {start}", stream.as_str());
                    }
                    None => {
                        match std::fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                            Err(err) => anyhow::bail!("cannot remove {}: {err}", path.display()),
                        }
                        println!(
                            "{source} {}: checkpoint removed; the next start uses the source's start_time",
                            stream.as_str()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
