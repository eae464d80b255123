//! `GET /debug/pprof/profile`: a CPU profile over a window.

use std::time::Duration;

use super::error::ApiError;
use super::limits::Kind;
use super::{encode, process_name, Params, Response, Shared};
use crate::build::{self, Priority};
use crate::cpu::{self, CpuError, MAX_FREQUENCY};

const PARAMS: &[&str] = &["seconds", "frequency", "format", "threads", "names", "trim"];

pub(super) async fn profile(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    let params = Params::parse(query, PARAMS)?;
    let seconds = params.number("seconds", 30, 1..=shared.config.max_seconds)?;
    let frequency = params.number("frequency", 99, 1..=u64::from(MAX_FREQUENCY))? as u32;
    let format = params.format()?;
    let presentation = params.presentation(format)?;
    let per_thread = params.flag("threads")?;
    let window = Duration::from_secs(seconds);
    let _claim = shared.windows.claim(Kind::Cpu, window)?;

    // Never queued behind builds, and no build begins meanwhile (see crate::build). Starting
    // loads the unwinder's tables (pprof resolves a first backtrace), which can take a while: off
    // the agent's only runtime thread, so other requests are still answered.
    let paused = build::pause()?;
    let session = tokio::task::spawn_blocking(move || cpu::start(frequency, window))
        .await
        .map_err(|e| ApiError::internal(format!("starting the CPU profiler failed: {e}")))?
        .map_err(|e| match e {
            busy @ CpuError::Busy { ends_in, .. } => {
                ApiError::busy(busy.to_string(), ends_in.as_secs() + 1)
            }
            other => ApiError::internal(other.to_string()),
        })?;
    drop(paused);
    // If the client goes away, hyper drops this future and the session with it, which stops
    // sampling and frees the profiler at once.
    tokio::time::sleep(window).await;
    let encoded = build::run(Priority::Urgent, move || {
        let profile = session
            .finish(per_thread)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let profile = presentation.apply(profile);
        let samples = profile.total(0);
        let title = format!(
            "CPU profile of {} (pid {}): {seconds} s at {frequency} Hz, {samples} samples",
            process_name(),
            std::process::id(),
        );
        encode(&profile, format, 1, title, "cpu")
    })
    .await??;
    Ok(encoded.response())
}
