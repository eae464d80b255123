//! `GET /debug/pprof/profile`: a CPU profile over a window.

use std::time::Duration;

use super::error::ApiError;
use super::{process_name, respond, Params, Response, Shared};
use crate::cpu::{self, CpuError, MAX_FREQUENCY};

const PARAMS: &[&str] = &["seconds", "frequency", "format", "threads"];

pub(super) async fn profile(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, PARAMS)?;
    let seconds = params.number("seconds", 30, 1..=shared.config.max_seconds)?;
    let frequency = params.number("frequency", 99, 1..=u64::from(MAX_FREQUENCY))? as u32;
    let format = params.format()?;
    let per_thread = params.flag("threads")?;
    let window = Duration::from_secs(seconds);

    // Starting loads the unwinder's tables (pprof resolves a first backtrace), which can take a
    // while: off the agent's only runtime thread, so other requests are still answered.
    let session = tokio::task::spawn_blocking(move || cpu::start(frequency, window))
        .await
        .map_err(|e| ApiError::internal(format!("starting the CPU profiler failed: {e}")))?
        .map_err(|e| match e {
            busy @ CpuError::Busy { ends_in, .. } => {
                ApiError::busy(busy.to_string(), ends_in.as_secs() + 1)
            }
            other => ApiError::internal(other.to_string()),
        })?;
    // If the client goes away, hyper drops this future and the session with it, which stops
    // sampling and frees the profiler at once.
    tokio::time::sleep(window).await;
    let profile = tokio::task::spawn_blocking(move || session.finish(per_thread))
        .await
        .map_err(|e| ApiError::internal(format!("building the profile failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;

    let samples = profile.total(0);
    let title = format!(
        "CPU profile of {} (pid {}): {seconds} s at {frequency} Hz, {samples} samples",
        process_name(),
        std::process::id(),
    );
    respond(&profile, format, 1, title, "cpu")
}
