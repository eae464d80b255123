//! The agent's HTTP endpoints, on plain `http` types: served by the agent's own hyper server (see
//! [`crate::Agent`]), or, with the `axum` feature, merged into the service's own axum app. No web
//! framework is needed for seven read-only paths, so an app on another framework (or another axum
//! version) gets none through the agent.
//!
//! Paths and conventions follow Go's net/http/pprof, which go tool pprof, Pyroscope, Parca and
//! Grafana already speak. Every failure is a one-line text body with `X-Go-Pprof: 1`.

mod auth;
mod cpu;
mod error;
mod heap;
mod index;
#[cfg(feature = "axum")]
mod merge;
mod params;
mod response;
mod routes;
mod spans;

use std::sync::Arc;

use crate::spans::DiagnoseConfig;

pub use error::ApiError;
#[cfg(feature = "axum")]
pub use merge::router;
pub use params::{Format, Params};
pub(crate) use response::{respond, with_body};
pub use response::{Body, Response};
pub(crate) use routes::handle;

/// The longest window a request may ask for unless configured otherwise.
pub const DEFAULT_MAX_SECONDS: u64 = 300;

/// What the endpoints need to know.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// When set, every request must present it (Bearer, or Basic with it as password).
    pub token: Option<String>,
    /// The longest profile window a request may ask for, in seconds.
    pub max_seconds: u64,
    /// Thresholds of `/debug/pprof/diagnose`.
    pub diagnose: DiagnoseConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            max_seconds: DEFAULT_MAX_SECONDS,
            diagnose: DiagnoseConfig::default(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    config: Arc<HttpConfig>,
}

impl Shared {
    pub(crate) fn new(config: HttpConfig) -> Shared {
        Shared {
            config: Arc::new(config),
        }
    }
}

/// The name of this program, for titles.
pub(crate) fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "process".to_string())
}
