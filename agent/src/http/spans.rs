//! `GET /debug/pprof/spans` (wall time of request spans, busy and waiting) and
//! `GET /debug/pprof/diagnose` (per-route latency and the problems found), over a window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;

use super::error::ApiError;
use super::limits::Kind;
use super::{encode, process_name, with_body, Params, Response, Shared};
use crate::build::{self, Priority};
use crate::spans::budget::Held;
use crate::spans::{self, report, Recording, Window};

const SAMPLE_TYPES: &[&str] = &["wall", "busy", "waiting"];

/// Opens a window, waits it out, and returns what it recorded, still charged against the span
/// windows' budget until the [`Held`] is dropped. Dropping the future (the client went away)
/// closes the window.
async fn record(
    shared: &Shared,
    params: &Params,
    kind: Kind,
) -> Result<(Recording, Held, u64), ApiError> {
    let seconds = params.number("seconds", 30, 1..=shared.config.max_seconds)?;
    let _claim = shared.windows.claim(kind, Duration::from_secs(seconds))?;
    let window = Window::open().map_err(|e| ApiError::not_enabled(e.to_string()))?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let recording = window.finish();
    let held = Held::new(&recording);
    Ok((recording, held, seconds))
}

pub(super) async fn spans(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, &["seconds", "format", "sample_index"])?;
    let format = params.format()?;
    let index = params.sample_index(SAMPLE_TYPES, 0)?;
    let (recording, held, seconds) = record(shared, &params, Kind::Spans).await?;
    let started = SystemTime::now()
        .checked_sub(recording.duration)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    let requests = recording
        .traces
        .iter()
        .filter(|t| !t.nested && t.request().is_some())
        .count();
    let encoded = build::run(Priority::Normal, move || {
        let profile = spans::profile::build(&recording, started);
        drop((recording, held));
        let title = format!(
            "{} time of request spans of {} (pid {}): {seconds} s, {requests} requests",
            SAMPLE_TYPES[index],
            process_name(),
            std::process::id()
        );
        encode(&profile, format, index, title, "spans")
    })
    .await??;
    Ok(encoded.response())
}

pub(super) async fn diagnose(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, &["seconds", "format"])?;
    let format = params.choice("format", &["text", "json", "html"], "text")?;
    let (recording, held, _) = record(shared, &params, Kind::Diagnose).await?;
    let config = shared.config.diagnose.clone();
    let (body, content_type) = build::run(Priority::Normal, move || {
        let report = spans::diagnose(&recording, &config);
        drop((recording, held));
        match format {
            "json" => (report::json(&report), "application/json"),
            "html" => (report::html(&report), "text/html; charset=utf-8"),
            _ => (report::text(&report), "text/plain; charset=utf-8"),
        }
    })
    .await?;
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
