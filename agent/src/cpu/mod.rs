//! CPU profiling: every thread of the process is sampled on `SIGPROF`, in proportion to the CPU
//! time it uses, for as long as at least one window is open.
//!
//! Three engines sit behind one API ([`start`], [`CpuSession::finish`]), tried in this order:
//! - [`Engine::PerfEvent`], Linux on x86_64 and aarch64: one perf event per thread on the
//!   software CPU clock, signalling that thread (as async-profiler's `cpu` mode);
//! - [`Engine::ThreadTimer`], the same platforms where perf events are refused: one POSIX timer
//!   per thread on its CPU-time clock (`timer_create` with `SIGEV_THREAD_ID`, as Go since 1.18 and
//!   async-profiler's `ctimer`).
//!
//!   Both share our own async-signal-safe handler, a preallocated lock-free ring and a collector
//!   thread that feeds every open window ([`per_thread`]);
//! - [`Engine::Setitimer`], everywhere else or when both are refused: pprof-rs's process-wide
//!   `setitimer`, tick-bound and one window at a time ([`setitimer`]).
//!
//! The variable `PYROMETER_CPU_ENGINE` (`perf`, `timer` or `setitimer`), or [`start_with`],
//! forces one.
//! Everything that allocates (symbolizing, building the [`Profile`]) happens after a window
//! closes, never in signal context.
//!
//! Several windows may be open at once ([`session`] states the rule): one engine feeds them all.

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod per_thread;
mod report;
mod session;
mod setitimer;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use session::{is_running, start, start_with, status, CpuSession, Status};

/// The highest sampling rate accepted.
pub const MAX_FREQUENCY: u32 = 1000;
/// The rate of a request that names none; such a request is never refused for another window.
pub const DEFAULT_FREQUENCY: u32 = 99;
/// The environment variable that forces an engine.
pub const ENGINE_VARIABLE: &str = "PYROMETER_CPU_ENGINE";

/// How the process is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Per-thread perf events on the software CPU clock (`perf_event_open`), Linux on x86_64
    /// and aarch64.
    PerfEvent,
    /// Per-thread CPU-time timers (`timer_create`), Linux on x86_64 and aarch64.
    ThreadTimer,
    /// pprof-rs's process-wide `setitimer(ITIMER_PROF)`: portable, tick-bound, one window.
    Setitimer,
}

impl Engine {
    /// The name `PYROMETER_CPU_ENGINE` takes and profiles' comments show.
    pub fn name(self) -> &'static str {
        match self {
            Engine::PerfEvent => "perf",
            Engine::ThreadTimer => "timer",
            Engine::Setitimer => "setitimer",
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            Engine::PerfEvent => {
                "per-thread perf events on the software CPU clock (perf_event_open)"
            }
            Engine::ThreadTimer => "per-thread CPU-time timers (timer_create, SIGEV_THREAD_ID)",
            Engine::Setitimer => "process-wide setitimer(ITIMER_PROF) through pprof-rs",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = CpuError;

    fn from_str(s: &str) -> Result<Self, CpuError> {
        match s {
            "perf" => Ok(Engine::PerfEvent),
            "timer" => Ok(Engine::ThreadTimer),
            "setitimer" => Ok(Engine::Setitimer),
            other => Err(CpuError::Engine(format!(
                "{ENGINE_VARIABLE}={other:?} is not an engine: use perf, timer or setitimer"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuError {
    /// A window at another rate (or on the one-window engine) is open.
    Busy {
        /// The rate the running engine samples at.
        frequency: u32,
        /// Until the last open window is planned to end.
        ends_in: Duration,
    },
    /// The sampling engine could not start.
    Engine(String),
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuError::Busy { frequency, ends_in } => write!(
                f,
                "another CPU profile is running at {frequency} Hz; a window at {frequency} Hz or \
                 at the default {DEFAULT_FREQUENCY} Hz can join it, another rate can start in \
                 about {} s",
                ends_in.as_secs().max(1)
            ),
            CpuError::Engine(e) => write!(f, "the CPU sampler could not start: {e}"),
        }
    }
}

impl std::error::Error for CpuError {}
