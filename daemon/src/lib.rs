//! `ballastd`: the ballast audio server. Graph description, config, engine, backends.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod backend;
pub mod config;
pub mod control_api;
pub mod dbus;
pub mod engine;
pub mod graph;
pub mod logging;
pub mod notify;
pub mod offline;
pub mod paths;
pub mod presets;
pub mod service;
pub mod state;
pub mod workers;
