//! [`SamplingAllocator`]: a global allocator that forwards every call to an inner allocator and
//! records a sample of allocations.
//!
//! # What code in this module may and may not do, and why
//!
//! This code runs inside every allocation and free of the process, on every thread, at times when
//! ordinary code cannot run. The rules:
//!
//! 1. **Never allocate through the global allocator.** It is this allocator: an allocation here
//!    would recurse. No `Vec`, `String`, `Box`, `format!`, `HashMap` with the default allocator,
//!    no `std::thread::current()` (it may allocate a handle), no `std::env`. The tables get their
//!    memory from the system allocator directly (`table::Sys`); stacks are captured into an array
//!    on the stack.
//! 2. **The fast path is a thread-local subtraction and a branch.** An allocation that is not
//!    sampled reads and writes the thread's countdown and nothing else: no lock, no atomic
//!    read-modify-write, no fence, no shared cache line written. A free that is not sampled tests
//!    one bit of a shared, read-mostly bitmap with a relaxed load (a plain load on x86-64 and
//!    aarch64). Everything else is behind `#[cold]` functions.
//! 3. **Locks only on the sampled path, and never re-entered.** The sampled path (about once per
//!    512 KiB allocated) takes the table's mutex. It first marks the thread busy through a
//!    `const`-initialized thread-local that has no destructor (`sampler::enter`); while busy, the
//!    thread's allocations and frees skip the sampler entirely. That is what keeps an allocation
//!    made by the unwinder, or by a signal handler that interrupts the sampled path, from
//!    deadlocking on the table's lock. Such a free is then not seen by the live table; if the
//!    address is handed out and sampled again, the stale entry is replaced.
//! 4. **No panics, no unwinding.** A panic in a global allocator aborts the process. Tables that
//!    cannot grow drop the sample and count it; indexing is checked or proven in bounds.
//! 5. **Async-signal-safety.** Nothing here is called from a signal handler by the profiler: the
//!    CPU profiler's `SIGPROF` handler does not allocate. But a handler that interrupts the
//!    sampled path and allocates anyway is handled by rule 3, and the fast path is safe at any
//!    point (it touches only its own thread's slot). The sampled path itself is not
//!    async-signal-safe (it takes a mutex and unwinds with libgcc, which takes the loader's
//!    lock), exactly like the allocator it wraps, so it must not be called from a signal handler
//!    while the interrupted code holds those locks; `malloc` has the same rule.
//! 6. **Thread start and exit.** The thread-local state is a plain TLS slot, valid for the whole
//!    life of the thread, including while other thread-locals' destructors run at exit; nothing
//!    here registers a destructor or asks for the thread's handle.
//! 7. **Frees before reuse.** A sampled block is removed from the live table *before* the inner
//!    allocator frees or moves it; otherwise another thread could be handed the same address,
//!    sample it, and have its record removed by this thread's late update.

use std::alloc::{GlobalAlloc, Layout, System};

use super::sampler::{self, DEFAULT_SAMPLE_RATE, THREAD};
use super::stack::{self, MAX_DEPTH};
use super::table;

/// A global allocator that samples allocations for heap profiles, over any inner allocator.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();
/// ```
///
/// Over another allocator, and with another mean distance between samples:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: pyrometer::heap::SamplingAllocator<mimalloc::MiMalloc> =
///     pyrometer::heap::SamplingAllocator::new(mimalloc::MiMalloc).with_sample_rate(256 * 1024);
/// ```
#[derive(Debug, Default)]
pub struct SamplingAllocator<A = System> {
    inner: A,
    rate: usize,
}

impl SamplingAllocator<System> {
    /// Over the system allocator, sampling every 512 KiB on average.
    pub const fn system() -> Self {
        Self::new(System)
    }
}

impl<A> SamplingAllocator<A> {
    /// Over `inner`, sampling every 512 KiB on average.
    pub const fn new(inner: A) -> Self {
        SamplingAllocator {
            inner,
            rate: DEFAULT_SAMPLE_RATE,
        }
    }

    /// Samples every `bytes` allocated on average: 0 turns sampling off, 1 records every
    /// allocation. [`set_sample_rate`](super::set_sample_rate) changes it at run time.
    pub const fn with_sample_rate(mut self, bytes: usize) -> Self {
        self.rate = bytes;
        self
    }

    /// The allocator every call is forwarded to.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Counts an allocation of `size` bytes at `ptr` down the thread's countdown.
    #[inline(always)]
    fn count(&self, ptr: *mut u8, size: usize) {
        THREAD.with(|t| {
            let left = t.countdown.get();
            if size < left {
                t.countdown.set(left - size);
            } else {
                self.countdown_ended(ptr, size);
            }
        });
    }

    #[cold]
    #[inline(never)]
    fn countdown_ended(&self, ptr: *mut u8, size: usize) {
        let Some(entered) = sampler::enter() else {
            return;
        };
        let Some(weight) = THREAD.with(|t| t.expired(size, self.rate)) else {
            return;
        };
        let mut frames = [0usize; MAX_DEPTH];
        let depth = stack::capture(&mut frames);
        table::record_alloc(&entered, ptr as usize, &frames[..depth], weight);
    }
}

/// Removes a block that may be sampled from the live table, before it is freed or moved.
#[cold]
#[inline(never)]
fn forget(ptr: *mut u8) -> Option<(sampler::Entered, table::LiveBlock)> {
    let entered = sampler::enter()?;
    let block = table::take(&entered, ptr as usize)?;
    Some((entered, block))
}

// SAFETY: every call is forwarded unchanged to `inner`, which upholds the contract; the sampler
// only observes pointers and sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SamplingAllocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            self.count(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.count(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if table::maybe_sampled(ptr as usize) {
            forget(ptr);
        }
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// A realloc is a free of the old block and an allocation of the new one, as in Go's
    /// profiles: a growing vector shows up at the stack that grows it, with every size it had.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = if table::maybe_sampled(ptr as usize) {
            forget(ptr)
        } else {
            None
        };
        // SAFETY: the caller upholds `realloc`'s contract.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if new.is_null() {
            // The old block is still allocated.
            if let Some((entered, block)) = old {
                table::restore(&entered, block);
            }
            return new;
        }
        drop(old);
        self.count(new, new_size);
        new
    }
}
