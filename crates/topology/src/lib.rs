//! sluice-topology: the runtime only the `sluice` binary uses. It sits
//! above `sluice-core` and every plugin is beside it, never on top of it:
//! plugins build against core's contracts alone and do not compile the YAML
//! loader.
//!
//! - [`config`]: loading YAML files (several, merged), `${VAR}`
//!   substitution, file:line:column diagnostics, the top-level settings
//!   (`data_dir`, `api`, `buffer`);
//! - [`check`] and [`GraphCheck`]: the component graph's inputs, outputs and
//!   cycles, checked before anything runs;
//! - [`start`] and [`RunningTopology`]: wiring components with bounded
//!   queues and fan-out, running them, reloading what changed ([`Changes`]),
//!   and the drain at shutdown;
//! - [`diff`]: field-by-field differences between JSON documents (for
//!   `sluice test`).
#![deny(missing_docs)]

pub mod config;
pub mod diff;
mod graph;
mod running;

pub use graph::{GraphCheck, Node, check};
pub use running::{
    Changes, ComponentExit, RunningTopology, SinkPiece, SourcePiece, StopReport, TopologyOptions,
    TransformPiece, start,
};
