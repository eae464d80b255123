//! Runnable services that embed the pyrometer agent (see `examples/`), and the parts they share.
//!
//! - [`shop`]: a realistic service over a real SQLite database with the classic backend killers
//!   planted, each switchable to its fixed form;
//! - [`load`]: a bounded, loopback-only load generator with HDR-histogram percentiles per route;
//! - [`profiles`]: taking profiles through the agent's HTTP endpoints and reading them;
//! - [`evidence`]: where each planted problem shows in a profile;
//! - [`demo`]: the one-command demo that ties them together;
//! - [`background`]: a shop and agent on a thread of their own, for tests.

pub mod background;
pub mod demo;
pub mod evidence;
pub mod load;
pub mod profiles;
pub mod shop;
