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
/// warnings only, except sqlx's slow-statement warnings, which seeding and the planted problems
/// trigger on purpose), and the agent's span layer, which records the request, query and upstream
/// spans above for `/debug/pprof/spans` and `/debug/pprof/diagnose`.
pub fn init_tracing() {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,sqlx::query=error"));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(pyrometer::spans::SpansLayer::new().with_filter(LevelFilter::INFO))
        .try_init();
}
