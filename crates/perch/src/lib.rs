//! The one Perch binary: command line, configuration, telemetry and the
//! composition of every service crate's router. This is the only crate that
//! reads the environment; everything below it takes its configuration as
//! values.

pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod dev;
pub mod metrics;
pub mod postgres;
pub mod sandbox_consumers;
pub mod server;
pub mod telemetry;
