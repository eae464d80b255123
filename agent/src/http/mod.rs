//! The agent's HTTP endpoints, as an axum [`Router`] that can be served on its own listener (see
//! [`crate::Agent`]) or merged into the service's own app.
//!
//! Paths and conventions follow Go's net/http/pprof, which go tool pprof, Pyroscope, Parca and
//! Grafana already speak. Every failure is a one-line text body with `X-Go-Pprof: 1`.

mod auth;
mod cpu;
mod error;
mod heap;
mod index;
mod limits;
mod params;
mod spans;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};

use crate::build::BuildError;
use crate::profile::flamegraph::{self, FlamegraphOptions};
use crate::profile::{folded, pprof, Profile};
use crate::spans::DiagnoseConfig;

pub use error::ApiError;
pub use limits::{LimitError, Limits};
pub use params::{Format, Params};

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
    /// How many windows may be open, and the span windows' memory budget.
    pub limits: Limits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            max_seconds: DEFAULT_MAX_SECONDS,
            diagnose: DiagnoseConfig::default(),
            limits: Limits::default(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    config: Arc<HttpConfig>,
    windows: Arc<limits::OpenWindows>,
}

/// The `/debug/pprof/...` endpoints. Merge it into an app with `app.merge(router(config))`.
pub fn router(config: HttpConfig) -> Router {
    crate::spans::budget::set_budget(config.limits.span_memory_bytes());
    let shared = Shared {
        windows: limits::OpenWindows::new(config.limits),
        config: Arc::new(config),
    };
    Router::new()
        .route("/debug/pprof", get(index::redirect))
        .route("/debug/pprof/", get(index::page))
        .route("/debug/pprof/profile", get(cpu::profile))
        .route("/debug/pprof/heap", get(heap::heap))
        .route("/debug/pprof/allocs", get(heap::allocs))
        .route("/debug/pprof/spans", get(spans::spans))
        .route("/debug/pprof/diagnose", get(spans::diagnose))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ))
        .with_state(shared)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {}; see /debug/pprof/ for the list",
            uri.path()
        ),
    )
}

/// The name of this program, for titles.
pub(crate) fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "process".to_string())
}

/// A profile encoded for its response, built on the build thread and shareable between requests.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    body: Vec<u8>,
    content_type: &'static str,
    disposition: String,
}

impl IntoResponse for Encoded {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::from_str(&self.disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// A profile in the asked-for format. `stem` names the downloaded file (`cpu` gives `cpu.pb.gz`).
pub(crate) fn encode(
    profile: &Profile,
    format: Format,
    sample_index: usize,
    title: String,
    stem: &str,
) -> Result<Encoded, ApiError> {
    let (body, content_type, filename) = match format {
        Format::Pprof => (
            pprof::encode(profile),
            "application/octet-stream",
            format!("{stem}.pb.gz"),
        ),
        Format::Folded => (
            folded::write(profile, sample_index).into_bytes(),
            "text/plain; charset=utf-8",
            format!("{stem}.folded"),
        ),
        Format::Svg => {
            let svg = flamegraph::render(profile, &FlamegraphOptions::new(title, sample_index))
                .map_err(|e| {
                    ApiError::internal(format!("rendering the flame graph failed: {e}"))
                })?;
            (svg, "image/svg+xml", format!("{stem}.svg"))
        }
    };
    let disposition = match format {
        Format::Svg => format!("inline; filename=\"{filename}\""),
        _ => format!("attachment; filename=\"{filename}\""),
    };
    Ok(Encoded {
        body,
        content_type,
        disposition,
    })
}
