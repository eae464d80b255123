//! Request spans and per-request query counts.
//!
//! Every request runs in a server span carrying OpenTelemetry's HTTP fields (`http.route` is the
//! route template, so requests for different ids group together; `http.request.method`;
//! `http.response.status_code` once known). Database and upstream spans (see `db` and `outbound`)
//! nest inside it, which is what a span profile needs to attribute waiting to a route.
//!
//! The middleware also counts the queries a request ran and returns the count in the
//! `x-db-queries` header: the number that makes an N+1 pattern obvious without a profiler.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::db;

/// The response header that carries the number of queries the request ran.
pub const QUERIES_HEADER: &str = "x-db-queries";

/// Axum middleware: a server span around the request, and the query count header.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http.server",
        http.route = %route,
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let (mut response, queries) = db::count_queries(next.run(request))
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    response
        .headers_mut()
        .insert(QUERIES_HEADER, HeaderValue::from(queries));
    response
}

/// Installs the shop's tracing: logs to standard error at the level given by `RUST_LOG` (default:
/// info, as `tracing_subscriber::fmt().init()` has it, except sqlx's slow-statement warnings, which
/// seeding and the planted problems trigger on purpose), and, with `spans`, the agent's span layer, which records the request,
/// query and upstream spans above for `/debug/pprof/spans` and `/debug/pprof/diagnose`. The filter
/// sits on the fmt layer only: on the registry it would hide the spans from the span layer.
pub fn init_tracing(spans: bool) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::query=error"));
    // The shop's own info-level spans, not sqlx's debug-level statement events (which would count
    // every query twice), and only while a window is open.
    let span_layer = spans.then(|| {
        pyrometer::spans::SpansLayer::new()
            .with_filter(pyrometer::spans::WhileRecording.and(LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(span_layer)
        .try_init();
}

/// The thresholds of `/debug/pprof/diagnose` for the shop. Sentry's defaults (see
/// `pyrometer::spans::DiagnoseConfig`) are for production data: the shop's tables and upstream
/// latency are small enough to run in seconds on a laptop, so the time-based thresholds are
/// scaled to them. The counts (5 repeats, 10x the median, half the requests) stay as they are.
pub fn diagnose_config() -> pyrometer::spans::DiagnoseConfig {
    use std::time::Duration;
    pyrometer::spans::DiagnoseConfig {
        n_plus_one_min_total: Duration::from_millis(1),
        consecutive_http_min_saved: Duration::from_millis(15),
        slow_query_p95: Duration::from_millis(SLOW_QUERY_MS),
        ..Default::default()
    }
}

/// A statement slower than this at p95 is reported as slow in the shop: an indexed lookup takes
/// well under a millisecond and the export's join of a page of orders a few, while a scan of the
/// orders table takes several and, with clients queueing for the two cores, tens.
pub const SLOW_QUERY_MS: u64 = 30;
