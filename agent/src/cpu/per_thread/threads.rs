//! Keeping one clock per thread in step with the process's threads.
//!
//! The clocks are created from the collector thread for the thread ids listed in
//! `/proc/self/task`, rescanned on every collector pass, so threads started during a window are
//! sampled from the next pass on (tokio's blocking threads, sqlx's SQLite workers); the clocks of
//! threads that exited are removed on the same pass, and all of them when the engine stops.

use std::collections::HashMap;
use std::io;

use super::{perf, timer};

/// Which per-thread clock sends the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// A perf event on the software CPU clock ([`perf`]).
    PerfEvent,
    /// A POSIX timer on the thread's CPU-time clock ([`timer`]).
    Timer,
}

/// The clocks of one running engine, by thread id.
pub(crate) struct ThreadClocks {
    clock: Clock,
    period_ns: u64,
    /// Thread id to timer id or perf event descriptor.
    armed: HashMap<i32, i32>,
    /// Thread ids seen on the last scan, reused to spare an allocation per pass.
    seen: Vec<i32>,
}

impl ThreadClocks {
    pub fn new(clock: Clock, frequency: u32) -> Self {
        ThreadClocks {
            clock,
            period_ns: 1_000_000_000 / u64::from(frequency),
            armed: HashMap::new(),
            seen: Vec::new(),
        }
    }

    /// Arms a clock on every thread that has none and removes those of exited threads. Fails
    /// only if no thread has a clock (refused, e.g. by `perf_event_paranoid` or seccomp).
    pub fn scan(&mut self) -> io::Result<()> {
        self.seen.clear();
        for entry in std::fs::read_dir("/proc/self/task")? {
            if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
                self.seen.push(tid);
            }
        }
        self.seen.sort_unstable();
        let seen = &self.seen;
        let clock = self.clock;
        self.armed.retain(|tid, handle| {
            let alive = seen.binary_search(tid).is_ok();
            if !alive {
                disarm(clock, *handle);
            }
            alive
        });
        let mut refused = None;
        for &tid in &self.seen {
            if self.armed.contains_key(&tid) {
                continue;
            }
            let armed = match self.clock {
                Clock::PerfEvent => perf::arm(tid, self.period_ns),
                Clock::Timer => timer::arm(tid, self.period_ns),
            };
            match armed {
                Ok(handle) => {
                    self.armed.insert(tid, handle);
                }
                // The thread exited between the listing and now.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ESRCH)) => {}
                Err(e) => refused = Some(e),
            }
        }
        match refused {
            Some(e) if self.armed.is_empty() => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for ThreadClocks {
    fn drop(&mut self) {
        for (_, handle) in self.armed.drain() {
            disarm(self.clock, handle);
        }
    }
}

fn disarm(clock: Clock, handle: i32) {
    match clock {
        Clock::PerfEvent => perf::disarm(handle),
        Clock::Timer => timer::disarm(handle),
    }
}
