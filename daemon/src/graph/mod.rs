//! Graphs: the validated description ([`spec`]) shared by the config and the engine.

pub mod compile;
pub mod spec;

pub use compile::{compile, CompileError, NodeInfo, Schedule};
pub use spec::{channel_map, ChannelMap, Endpoint, GraphSpec, Link, NodeSpec};
