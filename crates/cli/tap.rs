//! `sluice tap <output>`: print the events leaving a running sluice's source
//! or transform output as JSON lines, live, through its API server (as
//! `vector tap` does). The tap never slows the pipeline: copies a slow
//! terminal cannot take are dropped on the server's side and counted.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct TapArgs {
    /// The output: a source or transform id (`ecs`), or `<id>.<port>` (`ecs.dropped`).
    pub output: String,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// The running sluice's API (its `api.address`).
    #[arg(long, default_value = "http://127.0.0.1:9598", value_name = "URL")]
    pub url: String,
    /// A file holding the API's `tap_token`, sent as a bearer token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
}

pub fn run(args: &TapArgs) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(tap(args))
}

async fn tap(args: &TapArgs) -> CliResult {
    let base = args.url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/tap/"))
        .map_err(|e| CliError::usage(format!("--url `{}` is not a URL: {e}", args.url)))?
        .join(&args.output)
        .map_err(|e| CliError::usage(format!("`{}` is not an output name: {e}", args.output)))?;
    if let Some(limit) = args.limit {
        url.query_pairs_mut().append_pair("limit", &limit.to_string());
    }
    let client = reqwest::Client::builder().build().context("cannot build an HTTP client")?;
    let mut request = client.get(url);
    if let Some(path) = &args.token_file {
        let token = sluice_core::Secret::from_file(path).map_err(CliError::usage)?;
        let value = sluice_core::http::sensitive_header(&format!("Bearer {}", token.expose()));
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let mut response = request.send().await.map_err(|e| {
        CliError::Failed(anyhow::anyhow!(
            "cannot reach sluice's API at {base} ({}); is `sluice run` running there with the API enabled? (--url)",
            sluice_core::error::error_chain(&e)
        ))
    })?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"].as_str().unwrap_or("no such output").to_owned();
        return Err(CliError::usage(message));
    }
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403 | 503) {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"].as_str().unwrap_or("refused").to_owned();
        return Err(CliError::usage(format!("{base} answered {status}: {message}")));
    }
    if !status.is_success() {
        return Err(CliError::Failed(anyhow::anyhow!("{base} answered {status}")));
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("the tap was interrupted")? {
        // A closed pipe (`| head`) ends the tap quietly.
        if stdout.write_all(&chunk).and_then(|()| stdout.flush()).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
