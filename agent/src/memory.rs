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

/// Returns the allocator's free memory to the system, where the allocator allows it.
pub(crate) fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganizes glibc's free lists; it is thread-safe and has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
