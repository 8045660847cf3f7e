//! The topology: checking the component graph, then wiring and running it.

mod graph;
mod running;

pub use graph::{GraphCheck, Node, check};
pub use running::{
    Changes, ComponentExit, RunningTopology, SinkPiece, SourcePiece, StopReport, TopologyOptions,
    TransformPiece, start,
};
