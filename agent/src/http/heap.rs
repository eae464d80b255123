//! `GET /debug/pprof/heap` and `GET /debug/pprof/allocs`: heap profiles from the sampling
//! allocator, as Go's net/http/pprof serves them.
//!
//! Both carry the same four sample types; they differ in the one shown first. `heap` is about
//! memory held (`inuse_space`), `allocs` about allocation pressure (`alloc_space`). Without
//! `seconds`, the profile covers the live heap now and every allocation since sampling began;
//! with `seconds=N`, the change over the next N seconds: what was allocated in the window, and how
//! the live heap grew or shrank. Several heap windows may run at once: each is just two copies of
//! the sampler's running sums.

use super::error::ApiError;
use super::{Response, Shared};

#[cfg(feature = "heap")]
const PARAMS: &[&str] = &["seconds", "format", "sample_index"];

pub(super) async fn heap(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    serve(shared, query, Kind::Heap).await
}

pub(super) async fn allocs(shared: &Shared, query: Option<&str>) -> Result<Response, ApiError> {
    serve(shared, query, Kind::Allocs).await
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Heap,
    Allocs,
}

#[cfg(not(feature = "heap"))]
async fn serve(_: &Shared, _: Option<&str>, _: Kind) -> Result<Response, ApiError> {
    Err(ApiError::not_enabled(
        "heap profiling is not built in: enable the `heap` feature of the pyrometer crate \
         (it is on by default) and install pyrometer::heap::SamplingAllocator",
    ))
}

#[cfg(feature = "heap")]
async fn serve(shared: &Shared, query: Option<&str>, kind: Kind) -> Result<Response, ApiError> {
    use std::time::Duration;

    use super::{process_name, respond, Format, Params};
    use crate::heap::{self, Snapshot, SAMPLE_TYPES};

    let params = Params::parse(query, PARAMS)?;
    // An empty value is what the index page's form sends for "now".
    let seconds = match params.get("seconds") {
        None | Some("") => None,
        Some(_) => Some(params.number("seconds", 0, 1..=shared.config.max_seconds)?),
    };
    let format = params.format()?;
    let default_type = match kind {
        Kind::Heap => "inuse_space",
        Kind::Allocs => "alloc_space",
    };
    let kinds = SAMPLE_TYPES.map(|(kind, _)| kind);
    let default_index = kinds.iter().position(|k| *k == default_type).unwrap_or(0);
    let index = params.sample_index(&kinds, default_index)?;
    let shown = SAMPLE_TYPES[index].0;

    match heap::sample_rate() {
        None => {
            return Err(ApiError::not_enabled(
                "heap profiling is not enabled: the sampling allocator is not installed; add \
                 `#[global_allocator] static ALLOC: pyrometer::heap::SamplingAllocator = \
                 pyrometer::heap::SamplingAllocator::system();` to the service's main.rs",
            ))
        }
        Some(0) => {
            return Err(ApiError::not_enabled(
                "heap profiling is off: the sample rate is 0; turn it on with \
                 pyrometer::heap::set_sample_rate(512 * 1024) or SamplingAllocator::with_sample_rate",
            ))
        }
        Some(_) => {}
    }

    let snapshot = match seconds {
        None => Snapshot::take(),
        Some(seconds) => {
            let before = Snapshot::take();
            // A client that disconnects drops this future: nothing is left running.
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            Snapshot::take().since(&before)
        }
    };
    let (rate, window) = (snapshot.rate(), snapshot.window());
    let mut profile = tokio::task::spawn_blocking(move || snapshot.profile(shown))
        .await
        .map_err(|e| ApiError::internal(format!("building the heap profile failed: {e}")))?;

    let what = match (kind, window) {
        (Kind::Heap, None) => "Heap profile".to_string(),
        (Kind::Allocs, None) => "Allocations since start".to_string(),
        (Kind::Heap, Some(w)) => format!("Heap change over {} s", w.as_secs_f64().round()),
        (Kind::Allocs, Some(w)) => format!("Allocations over {} s", w.as_secs_f64().round()),
    };
    let mut title = format!(
        "{what} of {} (pid {}): {shown}, sampled every {} on average",
        process_name(),
        std::process::id(),
        human_bytes(rate as f64),
    );
    let total = profile.total(index);
    title.push_str(&match SAMPLE_TYPES[index].1 {
        "bytes" => format!(", {} in total", human_bytes(total as f64)),
        _ => format!(", {total} objects in total"),
    });
    if format != Format::Pprof
        && seconds.is_some()
        && profile.samples.iter().any(|s| s.values[index] < 0)
    {
        // A flame graph has no negative widths: it shows what grew; pprof output keeps both.
        for sample in &mut profile.samples {
            sample.values[index] = sample.values[index].max(0);
        }
        title.push_str(" (growth only)");
    }
    let stem = match kind {
        Kind::Heap => "heap",
        Kind::Allocs => "allocs",
    };
    respond(&profile, format, index, title, stem)
}

/// The heap profiler's state for the index page: how it samples, the estimated live heap, and
/// what the profiler itself holds.
#[cfg(feature = "heap")]
pub(super) fn status() -> String {
    use crate::heap;

    match (heap::sample_rate(), heap::stats()) {
        (Some(0), _) => "installed, sampling off (rate 0)".to_string(),
        (Some(rate), Some(stats)) => format!(
            "sampling every {} on average; live heap about {} in {} sampled blocks over {} stacks; \
             the profiler holds {}",
            human_bytes(rate as f64),
            human_bytes(stats.live_bytes),
            stats.live_samples,
            stats.stacks,
            human_bytes(stats.held_bytes as f64),
        ),
        _ => "not installed (add the SamplingAllocator as #[global_allocator])".to_string(),
    }
}

#[cfg(not(feature = "heap"))]
pub(super) fn status() -> String {
    "not built in (the `heap` feature is off)".to_string()
}

/// A byte count as people write it: `512 B`, `3.5 GiB`.
#[cfg(feature = "heap")]
pub(super) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(all(test, feature = "heap"))]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(512.0 * 1024.0), "512.0 KiB");
        assert_eq!(human_bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5 GiB");
    }
}
