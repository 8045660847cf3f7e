//! Explicit registration of every component type: one `#[serde(tag = "type")]`
//! enum per kind, and a `match` to each crate's validation and build. Adding
//! a component type means adding a variant here and nowhere else.

use serde::Deserialize;
use sluice_builtin::{BlackholeSinkConfig, ConsoleSinkConfig, FileSinkConfig, FileSourceConfig};
use sluice_core::component::{FunctionTransform, Sink, Source};
use sluice_core::config::{FieldError, RawComponent};
use sluice_grpc::{SluiceSink, SluiceSinkConfig, SluiceSource, SluiceSourceConfig};
use sluice_sink_elasticsearch::{ElasticsearchSink, ElasticsearchSinkConfig};
use sluice_sink_splunk_hec::{SplunkHecSink, SplunkHecSinkConfig};
use sluice_source_onepassword::{OnePasswordSource, OnePasswordSourceConfig};
use sluice_transform_vrl::VrlTransformConfig;

/// Every source type.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The 1Password Events API.
    Onepassword(OnePasswordSourceConfig),
    /// NDJSON file of raw 1Password items.
    File(FileSourceConfig),
    /// Events pushed by other sluice instances (an aggregator).
    Sluice(SluiceSourceConfig),
}

impl SourceConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Onepassword(_) => "onepassword",
            Self::File(_) => "file",
            Self::Sluice(_) => "sluice",
        }
    }

    /// Named outputs besides the default one.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Onepassword(_) | Self::Sluice(_) => Vec::new(),
            Self::File(_) => FileSourceConfig::outputs(),
        }
    }

    /// Settings that are valid but will not do what they say, to warn about
    /// at validate and start.
    pub fn warnings(&self) -> Vec<FieldError> {
        match self {
            Self::Onepassword(config) => config.warnings(chrono::Utc::now()),
            Self::File(_) | Self::Sluice(_) => Vec::new(),
        }
    }

    /// Pure validation; the result is ready to run.
    pub fn validate(self, raw: &RawComponent) -> Result<Box<dyn Source>, Vec<FieldError>> {
        match self {
            Self::Onepassword(config) => {
                Ok(Box::new(OnePasswordSource::new(config.validate(raw.dir())?)))
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
