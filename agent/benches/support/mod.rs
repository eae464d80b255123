//! Measuring helpers shared by the benchmarks: CPU clocks, medians, and knobs.
#![allow(dead_code)] // each benchmark uses a subset

use std::str::FromStr;
use std::time::Duration;

/// True under `cargo bench` (which passes `--bench`); `cargo test --benches` passes nothing and
/// wants each benchmark to run once, quickly, as a smoke test.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A number from the environment, or `default`.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The CPU time the whole process has used, all threads.
pub fn process_cpu_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(id, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
