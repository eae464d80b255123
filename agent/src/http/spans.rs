//! `GET /debug/pprof/spans` (wall time of request spans, busy and waiting) and
//! `GET /debug/pprof/diagnose` (per-route latency and the problems found), over a window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;

use super::error::ApiError;
use super::{process_name, respond, with_body, Params, Response, Shared};
use crate::spans::{self, report, Recording, Window};

const SAMPLE_TYPES: &[&str] = &["wall", "busy", "waiting"];

/// Opens a window, waits it out, and returns what it recorded. Dropping the future (the client
/// went away) closes the window.
async fn record(shared: &Shared, params: &Params) -> Result<(Recording, u64), ApiError> {
    let seconds = params.number("seconds", 30, 1..=shared.config.max_seconds)?;
    let window = Window::open().map_err(|e| ApiError::not_enabled(e.to_string()))?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok((window.finish(), seconds))
}

pub(super) async fn spans(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, &["seconds", "format", "sample_index"])?;
    let format = params.format()?;
    let index = params.sample_index(SAMPLE_TYPES, 0)?;
    let (recording, seconds) = record(shared, &params).await?;
    let started = SystemTime::now()
        .checked_sub(recording.duration)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    let requests = recording
        .traces
        .iter()
        .filter(|t| !t.nested && t.request().is_some())
        .count();
    let profile = tokio::task::spawn_blocking(move || spans::profile::build(&recording, started))
        .await
        .map_err(|e| ApiError::internal(format!("building the span profile failed: {e}")))?;
    let title = format!(
        "{} time of request spans of {} (pid {}): {seconds} s, {requests} requests",
        SAMPLE_TYPES[index],
        process_name(),
        std::process::id()
    );
    respond(&profile, format, index, title, "spans")
}

pub(super) async fn diagnose(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, &["seconds", "format"])?;
    let format = params.choice("format", &["text", "json", "html"], "text")?;
    let (recording, _) = record(shared, &params).await?;
    let config = shared.config.diagnose.clone();
    let report = tokio::task::spawn_blocking(move || spans::diagnose(&recording, &config))
        .await
        .map_err(|e| ApiError::internal(format!("the diagnosis failed: {e}")))?;
    let (body, content_type) = match format {
        "json" => (report::json(&report), "application/json"),
        "html" => (report::html(&report), "text/html; charset=utf-8"),
        _ => (report::text(&report), "text/plain; charset=utf-8"),
    };
    Ok(with_body(StatusCode::OK, content_type, body))
}

/// For the index page.
pub(super) fn status() -> &'static str {
    if spans::is_installed() {
        "installed"
    } else {
        "not installed (add pyrometer::spans::SpansLayer to the tracing subscriber)"
    }
}
