//! Explicit registration of every component type: one `#[serde(tag = "type")]`
//! enum per kind, and a `match` to each crate's validation and build. Adding
//! a component type means adding a variant here and nowhere else.

use serde::Deserialize;
use sluice_builtin::{BlackholeSinkConfig, ConsoleSinkConfig, FileSinkConfig, FileSourceConfig};
use sluice_core::component::{FunctionTransform, Sink, Source};
use sluice_grpc::{SluiceSink, SluiceSinkConfig, SluiceSource, SluiceSourceConfig};
use sluice_sink_elasticsearch::{ElasticsearchSink, ElasticsearchSinkConfig};
use sluice_sink_splunk_hec::{SplunkHecSink, SplunkHecSinkConfig};
use sluice_source_onepassword::{OnePasswordSource, OnePasswordSourceConfig};
use sluice_source_onepassword_users::{UsersSource, UsersSourceConfig};
use sluice_topology::config::{FieldError, RawComponent};
use sluice_transform_vrl::VrlTransformConfig;

/// Every source type.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The 1Password Events API.
    Onepassword(OnePasswordSourceConfig),
    /// The 1Password Users API: the account's people, and what changed.
    OnepasswordUsers(UsersSourceConfig),
    /// NDJSON file of raw 1Password items.
    File(FileSourceConfig),
    /// Events pushed by other sluice instances (an aggregator).
    Sluice(SluiceSourceConfig),
}

impl SourceConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Onepassword(_) => "onepassword",
            Self::OnepasswordUsers(_) => "onepassword_users",
            Self::File(_) => "file",
            Self::Sluice(_) => "sluice",
        }
    }

    /// Named outputs besides the default one.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Onepassword(_) | Self::OnepasswordUsers(_) | Self::Sluice(_) => Vec::new(),
            Self::File(_) => FileSourceConfig::outputs(),
        }
    }

    /// Settings that are valid but will not do what they say, to warn about
    /// at validate and start.
    pub fn warnings(&self) -> Vec<FieldError> {
        match self {
            Self::Onepassword(config) => config.warnings(chrono::Utc::now()),
            Self::OnepasswordUsers(_) | Self::File(_) | Self::Sluice(_) => Vec::new(),
        }
    }

    /// Pure validation; the result is ready to run.
    pub fn validate(self, raw: &RawComponent) -> Result<Box<dyn Source>, Vec<FieldError>> {
        match self {
            Self::Onepassword(config) => {
                Ok(Box::new(OnePasswordSource::new(config.validate(raw.dir())?)))
            }
            Self::OnepasswordUsers(config) => {
                Ok(Box::new(UsersSource::new(config.validate(raw.dir())?)))
            }
            Self::File(config) => Ok(Box::new(config.validate(raw.dir())?)),
            Self::Sluice(config) => Ok(Box::new(SluiceSource::new(config.validate(raw.dir())?))),
        }
    }
}

/// Every transform type.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransformConfig {
    /// A VRL program (the ECS mapping is one).
    Vrl(VrlTransformConfig),
}

impl TransformConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Vrl(_) => "vrl",
        }
    }

    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Vrl(_) => sluice_transform_vrl::config::outputs(),
        }
    }

    pub fn validate(
        self,
        raw: &RawComponent,
    ) -> Result<Box<dyn FunctionTransform>, Vec<FieldError>> {
        match self {
            Self::Vrl(config) => Ok(Box::new(config.validate(raw.dir(), &raw.id)?)),
        }
    }
}

/// Every sink type.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Elasticsearch `_bulk` into the 1Password data streams.
    Elasticsearch(Box<ElasticsearchSinkConfig>),
    /// Splunk's HTTP Event Collector, with indexer acknowledgements.
    SplunkHec(Box<SplunkHecSinkConfig>),
    /// Other sluice instances (an edge forwarding to aggregators).
    Sluice(Box<SluiceSinkConfig>),
    /// NDJSON on standard output.
    Console(ConsoleSinkConfig),
    /// NDJSON appended to a file, fsynced before acknowledging.
    File(FileSinkConfig),
    /// Counts and acknowledges.
    Blackhole(BlackholeSinkConfig),
}

impl SinkConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Elasticsearch(_) => "elasticsearch",
            Self::SplunkHec(_) => "splunk_hec",
            Self::Sluice(_) => "sluice",
            Self::Console(_) => "console",
            Self::File(_) => "file",
            Self::Blackhole(_) => "blackhole",
        }
    }

    /// Settings that are valid but unsafe, to warn about at validate and start.
    pub fn warnings(&self) -> Vec<FieldError> {
        let unverified = match self {
            Self::Elasticsearch(config) => !config.tls.verify,
            Self::SplunkHec(config) => !config.tls.verify,
            _ => false,
        };
        if unverified {
            vec![FieldError::new(
                "tls",
                "tls.verify is false: the server's certificate is not checked, so anyone on the network path can read the credentials; trust its CA with tls.ca_file instead",
            )]
        } else {
            Vec::new()
        }
    }

    pub fn validate(self, raw: &RawComponent) -> Result<Box<dyn Sink>, Vec<FieldError>> {
        Ok(match self {
            Self::Elasticsearch(config) => {
                Box::new(ElasticsearchSink::new(config.validate(raw.dir())?))
            }
            Self::SplunkHec(config) => {
                Box::new(SplunkHecSink::new(config.validate(raw.dir())?, &raw.id))
            }
            Self::Sluice(config) => Box::new(SluiceSink::new(config.validate(raw.dir())?)),
            Self::Console(config) => Box::new(config.validate()?),
            Self::File(config) => Box::new(config.validate(raw.dir())?),
            Self::Blackhole(config) => Box::new(config.validate()?),
        })
    }
}

/// HELP text for every metric family: core's and each plugin's that has
/// families of its own (call once, after the recorder is installed).
pub fn describe_metrics() {
    sluice_core::metrics::describe();
    sluice_source_onepassword::describe_metrics();
    sluice_sink_splunk_hec::describe_metrics();
    sluice_grpc::source::describe_metrics();
}

/// Every component type, for `sluice list`: kind, type, what it does. A
/// test checks each one is a variant of its kind's enum.
pub const TYPES: &[(&str, &str, &str)] = &[
    (
        "source",
        "onepassword",
        "The 1Password Events API: sign-in attempts, item usages, audit events",
    ),
    (
        "source",
        "onepassword_users",
        "The 1Password Users API: the account's people, in full and then what changed",
    ),
    (
        "source",
        "file",
        "An NDJSON file of raw 1Password items, or a sink's dead letter (replays, backfills, tests)",
    ),
    ("source", "sluice", "Events pushed by other sluice instances over gRPC (an aggregator)"),
    (
        "transform",
        "vrl",
        "A VRL program (pipelines/vrl/ecs.vrl maps events onto ECS); failures go to <id>.dropped",
    ),
    (
        "sink",
        "elasticsearch",
        "The Elasticsearch bulk API, into logs-1password.<stream>-<namespace> data streams",
    ),
    ("sink", "splunk_hec", "Splunk's HTTP Event Collector, with indexer acknowledgements"),
    ("sink", "sluice", "Another sluice instance's `sluice` source over gRPC (an edge forwarding)"),
    ("sink", "console", "JSON lines on standard output"),
    ("sink", "file", "NDJSON appended to a file, fsynced before acknowledging"),
    ("sink", "blackhole", "Counts and acknowledges (benchmarks)"),
];

/// The settings a component type takes besides `type` and `inputs`, as
/// its config struct declares them (serde names every field it expects
/// when it meets one it does not).
pub fn settings(kind: &str, type_name: &str) -> Vec<String> {
    let probe = format!("type: {type_name}\n__sluice_list__: 0\n");
    let error = match kind {
        "source" => serde_yaml_ng::from_str::<SourceConfig>(&probe).err(),
        "transform" => serde_yaml_ng::from_str::<TransformConfig>(&probe).err(),
        _ => serde_yaml_ng::from_str::<SinkConfig>(&probe).err(),
    }
    .map(|e| e.to_string())
    .unwrap_or_default();
    // "expected one of `a`, `b`", or "expected `a`" for a single field.
    let Some((_, expected)) = error.split_once("expected ") else { return Vec::new() };
    let expected = expected.trim_start_matches("one of ");
    expected
        .split(", ")
        .map(|name| name.trim_matches(|c| c == '`' || c == ' ').to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_registered_and_names_its_settings() {
        for (kind, type_name, _) in TYPES {
            let probe = format!("type: {type_name}\n");
            let error = match *kind {
                "source" => serde_yaml_ng::from_str::<SourceConfig>(&probe).err(),
                "transform" => serde_yaml_ng::from_str::<TransformConfig>(&probe).err(),
                _ => serde_yaml_ng::from_str::<SinkConfig>(&probe).err(),
            }
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(!error.contains("unknown variant"), "{kind} {type_name}: {error}");
        }
        assert!(settings("sink", "elasticsearch").contains(&"endpoints".to_owned()));
        assert!(settings("source", "onepassword").contains(&"token_file".to_owned()));
        assert_eq!(settings("sink", "console"), Vec::<String>::new());
        assert_eq!(settings("sink", "file"), ["path"], "one field: serde says `expected`");
        // And no variant is missing from the list.
        let unknown = serde_yaml_ng::from_str::<SinkConfig>("type: nope\n").expect_err("unknown");
        for listed in TYPES.iter().filter(|(k, _, _)| *k == "sink").map(|(_, t, _)| *t) {
            assert!(unknown.to_string().contains(&format!("`{listed}`")), "{unknown}");
        }
        let variants = unknown.to_string().matches('`').count() / 2 - 1;
        assert_eq!(variants, TYPES.iter().filter(|(k, _, _)| *k == "sink").count(), "{unknown}");
    }
}
