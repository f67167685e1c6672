//! Graphs: the validated description ([`spec`]) shared by the config and the engine.

pub mod spec;

pub use spec::{channel_map, ChannelMap, Endpoint, GraphSpec, Link, NodeSpec};
