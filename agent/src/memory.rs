//! Giving memory back to the system after a profile is built.
//!
//! Building a profile allocates a lot for a short while (symbol tables, the stacks of a CPU
//! window, a span recording's trees, the encoded output) and frees it all at the end. glibc's
//! allocator keeps what was freed: the top of each arena is trimmed only past a threshold, and
//! freed pages in the middle of an arena, or in the arenas of other threads, are never returned.
//! Measured on the minimal example, an idle service went from 5 MB to 186 MB resident after one
//! CPU profile, most of it free memory that glibc kept, and on-call engineers watch resident
//! memory.
//!
//! So after a burst of builds (see [`crate::build`]), `malloc_trim(0)` walks every arena and
//! returns its free pages with `madvise(MADV_DONTNEED)`. What it costs: it locks each arena in
//! turn while walking it, so a service thread allocating in that arena waits for the walk, which
//! takes about a millisecond per few hundred MB of heap (see the README's limits section for the
//! measured figures); it runs on the build thread, at most once per burst of builds. Pages given
//! back are faulted in again when the service next needs them.
//!
//! Elsewhere (musl, macOS, or a service whose global allocator is not the system's, such as
//! mimalloc or jemalloc, which return memory on their own) this does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static RUNS: AtomicU64 = AtomicU64::new(0);
static LAST_MICROS: AtomicU64 = AtomicU64::new(0);
static LONGEST_MICROS: AtomicU64 = AtomicU64::new(0);
static RETURNED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Returns the allocator's free memory to the system, where the allocator allows it, and keeps
/// what it took and gave back for the index page.
pub(crate) fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = resident_bytes();
        let started = Instant::now();
        // SAFETY: malloc_trim only reorganizes glibc's free lists; it is thread-safe and has no
        // preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        let micros = started.elapsed().as_micros() as u64;
        RUNS.fetch_add(1, Ordering::Relaxed);
        LAST_MICROS.store(micros, Ordering::Relaxed);
        LONGEST_MICROS.fetch_max(micros, Ordering::Relaxed);
        let returned = before.saturating_sub(resident_bytes());
        RETURNED_BYTES.fetch_add(returned, Ordering::Relaxed);
    }
}

/// The process's resident memory, from /proc/self/statm (0 where it cannot be read).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}

/// What returning memory has cost and given back so far, for the index page.
pub(crate) fn status() -> String {
    let runs = RUNS.load(Ordering::Relaxed);
    if runs == 0 {
        return if cfg!(all(target_os = "linux", target_env = "gnu")) {
            "after builds, with malloc_trim(0); no profile built yet".to_string()
        } else {
            "left to the allocator (not glibc)".to_string()
        };
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "after builds, with malloc_trim(0): {runs} runs, the last took {:.1} ms, the longest \
         {:.1} ms; {:.1} MiB given back in all",
        ms(LAST_MICROS.load(Ordering::Relaxed)),
        ms(LONGEST_MICROS.load(Ordering::Relaxed)),
        RETURNED_BYTES.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
    )
}
