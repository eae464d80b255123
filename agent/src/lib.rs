//! pyrometer: an in-process profiler for Rust services.
//!
//! Add the crate and one line to `main`, and the running service answers the paths that
//! `go tool pprof`, Pyroscope, Parca and Grafana already speak:
//!
//! ```no_run
//! # fn main() -> Result<(), pyrometer::StartError> {
//! let _agent = pyrometer::Agent::builder().start()?; // serves 127.0.0.1:6060 until dropped
//! # Ok(()) }
//! ```
//!
//! then `curl -o cpu.pb.gz 'http://127.0.0.1:6060/debug/pprof/profile?seconds=30'`.
//!
//! The crate is split by concern: [`profile`] (the model and its codecs, always built, and all the
//! viewer uses), `cpu` (the sampling engine), and `http` (the endpoints and the server, on hyper).
//! The runtime parts sit behind the default features `cpu` and `http`; the optional feature `axum`
//! adds `AgentBuilder::router()`, the endpoints as an axum 0.8 Router to merge into an app.

pub mod profile;

#[cfg(feature = "cpu")]
pub mod cpu;
#[cfg(feature = "heap")]
pub mod heap;
#[cfg(feature = "spans")]
pub mod spans;
#[cfg(feature = "symbolize")]
mod symbolize;

#[cfg(feature = "http")]
mod agent;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
mod server;

#[cfg(feature = "http")]
pub use agent::{Agent, AgentBuilder, AgentHandle, StartError};
#[cfg(feature = "heap")]
pub use heap::SamplingAllocator;
