//! CPU profiling: the whole process is sampled on `SIGPROF` for the length of a window.
//!
//! The engine is the `pprof` crate with its default unwinder (see DESIGN.md for why not framehop).
//! Its signal handler is pprof's own: it unwinds into a fixed-size buffer and records the stack in
//! a preallocated table, taking no lock that the interrupted code could hold. Everything that
//! allocates (symbolizing, building the [`Profile`]) happens in [`CpuSession::finish`], after the
//! timer is stopped, so it never runs in signal context.
//!
//! pprof keeps one profiler per process, so only one [`CpuSession`] can exist at a time; a second
//! [`start`] gets [`CpuError::Busy`] straight away instead of waiting.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pprof::ProfilerGuard;

use crate::profile::{Profile, ProfileBuilder, ValueType};
use crate::symbolize::{Leaf, Symbolizer};

/// The highest sampling rate accepted; above it the kernel's tick makes the rate meaningless.
pub const MAX_FREQUENCY: u32 = 1000;

static RUNNING: AtomicBool = AtomicBool::new(false);
/// When the running profile's window ends, in milliseconds since the Unix epoch.
static PLANNED_END_MS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuError {
    /// Another CPU profile is being taken.
    Busy,
    /// The sampling engine could not start.
    Engine(String),
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuError::Busy => f.write_str("another CPU profile is already running"),
            CpuError::Engine(e) => write!(f, "the CPU sampler could not start: {e}"),
        }
    }
}

impl std::error::Error for CpuError {}

/// True while a CPU profile is being taken.
pub fn is_running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// How long until the running profile's window ends, if one is running.
pub fn busy_for() -> Option<Duration> {
    if !is_running() {
        return None;
    }
    let end = PLANNED_END_MS.load(Ordering::Acquire);
    Some(Duration::from_millis(end.saturating_sub(now_ms())))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Marks the profiler taken; dropping it frees the profiler for the next request.
struct Claim;

impl Claim {
    fn take() -> Option<Claim> {
        RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Claim)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// A running CPU profile. Dropping it stops sampling and discards what was collected.
pub struct CpuSession {
    // Field order matters: the guard stops the timer before the claim frees the profiler.
    guard: ProfilerGuard<'static>,
    _claim: Claim,
    frequency: u32,
}

/// Starts sampling every thread of the process `frequency` times per second of CPU time, for a
/// window of about `window` (used only to tell others when the profiler will be free).
pub fn start(frequency: u32, window: Duration) -> Result<CpuSession, CpuError> {
    assert!(
        (1..=MAX_FREQUENCY).contains(&frequency),
        "frequency is validated by callers"
    );
    let claim = Claim::take().ok_or(CpuError::Busy)?;
    PLANNED_END_MS.store(now_ms() + window.as_millis() as u64, Ordering::Release);
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(frequency as i32)
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => CpuError::Busy,
            other => CpuError::Engine(other.to_string()),
        })?;
    Ok(CpuSession {
        guard,
        _claim: claim,
        frequency,
    })
}

impl CpuSession {
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// Stops sampling and builds the profile. With `per_thread`, every stack is rooted at the name
    /// of its thread; otherwise threads are merged (tokio's workers are interchangeable).
    pub fn finish(self, per_thread: bool) -> Result<Profile, CpuError> {
        let report = self
            .guard
            .report()
            .build_unresolved()
            .map_err(|e| CpuError::Engine(e.to_string()))?;
        let frequency = self.frequency;
        // Stop the timer and free the profiler before the slow part.
        drop(self);

        let period = 1_000_000_000 / i64::from(frequency);
        let mut builder = ProfileBuilder::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        {
            let p = builder.profile_mut();
            p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
            p.period = period;
            p.time_nanos = report
                .timing
                .start_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos() as i64;
            p.duration_nanos = report.timing.duration.as_nanos() as i64;
            p.comments.push(format!("frequency={frequency}Hz"));
        }
        let mut symbolizer = Symbolizer::new(&mut builder);
        let mut stacks: HashMap<Vec<usize>, i64> = HashMap::new();
        for (frames, count) in &report.data {
            let ips: Vec<usize> = frames.frames.iter().map(|f| f.ip() as usize).collect();
            let first = first_interrupted_frame(&mut symbolizer, &ips);
            let mut locations = symbolizer.stack(&mut builder, &ips[first..], Leaf::Exact);
            if per_thread {
                let name =
                    String::from_utf8_lossy(&frames.thread_name[..frames.thread_name_length]);
                let name = if name.is_empty() {
                    format!("thread {}", frames.thread_id)
                } else {
                    name.into_owned()
                };
                locations.push(builder.named_location(&name, "", 0));
            }
            *stacks.entry(locations).or_insert(0) += *count as i64;
        }
        for (locations, count) in stacks {
            builder.sample(locations, vec![count, count * period]);
        }
        Ok(builder.build())
    }
}

/// Where the interrupted code starts in a stack captured by pprof's signal handler: past the
/// unwinder, the handler itself, and the signal trampoline just below it.
fn first_interrupted_frame(symbolizer: &mut Symbolizer, ips: &[usize]) -> usize {
    let handler = ips.iter().rposition(|&ip| {
        symbolizer
            .function_names(ip)
            .any(|name| name.ends_with("perf_signal_handler"))
    });
    handler.map_or(0, |i| (i + 2).min(ips.len()))
}
