//! tracing setup: human text or JSON lines on standard error (standard output
//! belongs to the `console` sink), level from RUST_LOG. Colours only on a
//! terminal and without `NO_COLOR`, so log files and journald get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The default filter turns off rustls_platform_verifier, whose ERROR line
/// repeats the certificate refusal the component itself reports.
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,vrl::compiler::unused_expression_checker=error,rustls_platform_verifier=off",
        )
    });
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        Format::Text => builder.init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
}
