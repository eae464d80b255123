//! The library behind the `pyrometer` command: reading profiles from any producer, and the
//! commands over them. The binary is a thin clap layer: each command here takes a loaded profile
//! and an options struct and returns what to write, so tests and other tools can call the same
//! code (as inferno's library does for its binaries).
//!
//! - [`input`] reads pprof (gzip-compressed or not), folded stacks and dhat JSON, detected from
//!   the content, with errors that name the file and the position.
//! - [`graph`], [`top`], [`diff`], [`record`] and [`convert`] are the commands; [`describe`],
//!   [`filter`] and [`table`] are what they share.

pub mod convert;
pub mod describe;
pub mod diff;
pub mod error;
pub mod filter;
pub mod graph;
pub mod input;
pub mod output;
pub mod record;
pub mod table;
pub mod top;

pub use error::{Error, Position};
