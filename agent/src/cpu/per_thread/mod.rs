//! The Linux engines: a clock per thread that signals that thread alone, our own handler, a
//! lock-free ring, and a collector thread that feeds every open window.
//!
//! - [`perf`] and [`timer`]: the two kinds of per-thread clock (perf events first, POSIX timers
//!   where perf events are refused);
//! - [`threads`]: one clock per thread, kept in step with the threads that come and go;
//! - [`handler`]: the async-signal-safe `SIGPROF` handler;
//! - [`ring`]: the preallocated buffer between the handler and the collector;
//! - [`collector`]: the thread that drains the ring into the open windows.

mod collector;
mod handler;
mod perf;
mod ring;
mod threads;
mod timer;

pub(crate) use collector::{Collector, Window};
pub(crate) use threads::Clock;

/// `CLOCK_MONOTONIC` in nanoseconds: the clock samples and windows are stamped with.
/// Async-signal-safe.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
