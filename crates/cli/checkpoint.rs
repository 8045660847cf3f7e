//! `sluice checkpoint list|reset`: see and rewind where sources stand. The
//! logic lives with the source (`sluice_source_onepassword::checkpoint`);
//! this file parses the command and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use sluice_source_onepassword::Stream;
use sluice_source_onepassword::checkpoint::{self, Reset};

use sluice_topology::config::{ComponentKind, ConfigError, load_files};

use crate::error::{CliError, CliResult};
use crate::plan::data_dir_or_default;

/// `sluice checkpoint` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Show each onepassword source's position per stream.
    List {
        /// Config files, merged in order.
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
    /// Rewind a onepassword source (refused while a `sluice run` holds the
    /// data_dir's lock: stop it first). Without --start-time the checkpoint is removed
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

pub fn run(command: &CheckpointCommand) -> CliResult {
    let configs = match command {
        CheckpointCommand::List { configs } | CheckpointCommand::Reset { configs, .. } => configs,
    };
    // Only data_dir and the sources' ids are needed: a problem inside a
    // component (an unset token variable, a typo in a sink) does not stop
    // this command, so it runs without secrets.
    let mut raw = load_files(configs);
    raw.errors.retain(|e| e.component.is_none());
    if raw.incomplete || !raw.errors.is_empty() {
        return Err(ConfigError::new(raw.errors).into());
    }
    let data_dir = data_dir_or_default(raw.data_dir);
    let sources: Vec<&str> = raw
        .components
        .iter()
        .filter(|c| {
            c.kind == ComponentKind::Source && c.type_name.as_deref() == Some("onepassword")
        })
        .map(|c| c.id.as_str())
        .collect();
    match command {
        CheckpointCommand::List { .. } => {
            println!(
                "{:<16} {:<16} {:<8} {:<32} {:>10}  committed at",
                "source", "stream", "cursor", "newest delivered", "events"
            );
            for row in checkpoint::list(&data_dir, &sources)? {
                println!(
                    "{:<16} {:<16} {:<8} {:<32} {:>10}  {}",
                    row.source,
                    row.stream.as_str(),
                    row.cursor,
                    row.newest,
                    row.events,
                    row.committed_at
                );
            }
        }
        CheckpointCommand::Reset { source, stream, start_time, .. } => {
            if !sources.contains(&source.as_str()) {
                return Err(CliError::usage(format!(
                    "`{source}` is not a onepassword source of this config (it has: {})",
                    sources.join(", ")
                )));
            }
            // A running sluice would overwrite the reset at its next commit.
            let _lock = crate::lock::lock(&data_dir, "`sluice checkpoint reset`")?;
            let streams: Vec<Stream> = stream.map_or_else(|| Stream::ALL.to_vec(), |s| vec![s]);
            let now = chrono::Utc::now();
            for (stream, done) in
                checkpoint::reset(&data_dir, source, &streams, start_time.as_deref(), now)?
            {
                match done {
                    Reset::StartsFrom(start) => {
                        println!("{source} {}: will start again from {start}", stream.as_str());
                    }
                    Reset::Removed => println!(
                        "{source} {}: checkpoint removed; the next start uses the source's start_time",
                        stream.as_str()
                    ),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
