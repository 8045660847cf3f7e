//! What a command fails with. Commands return [`CliError`]; `main` alone
//! prints it and turns it into the exit code (2 invalid, 1 failed).

use std::fmt;

/// A command's failure.
#[derive(Debug)]
pub enum CliError {
    /// An invalid config or bad usage: exit 2. The text is complete (it may
    /// span several lines, as a config error with every problem does).
    Invalid(String),
    /// A runtime failure: exit 1.
    Failed(anyhow::Error),
}

impl CliError {
    /// Bad usage, printed as `error: <message>`.
    pub fn usage(message: impl fmt::Display) -> Self {
        Self::Invalid(format!("error: {message}\n"))
    }
}

impl From<sluice_topology::config::ConfigError> for CliError {
    fn from(err: sluice_topology::config::ConfigError) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        Self::Failed(err)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::Failed(err.into())
    }
}

impl From<sluice_onepassword_sim::SimError> for CliError {
    fn from(err: sluice_onepassword_sim::SimError) -> Self {
        Self::Failed(err.into())
    }
}

impl From<sluice_source_onepassword::Error> for CliError {
    fn from(err: sluice_source_onepassword::Error) -> Self {
        match err {
            sluice_source_onepassword::Error::Usage(message) => Self::usage(message),
            other => Self::Failed(other.into()),
        }
    }
}

/// What a command returns: its exit code when it ran (a failed test run is
/// an exit code, not an error), or why it could not.
pub type CliResult = Result<std::process::ExitCode, CliError>;
