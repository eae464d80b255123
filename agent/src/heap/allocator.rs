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
//!    aarch64). Everything else is behind `#[cold]` functions, and the fast paths end in a tail
//!    call to the inner allocator, so they need no stack frame: the countdown is checked *before*
//!    the inner allocator is called (the size is in the layout), not after.
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
}

impl<A: GlobalAlloc> SamplingAllocator<A> {
    /// Counts `size` bytes down the thread's countdown: true while it goes on, false when this
    /// allocation reaches its end (the countdown is then left as it was, for the slow path).
    #[inline(always)]
    fn counted(size: usize) -> bool {
        THREAD.with(|t| {
            let left = t.countdown.get();
            let goes_on = size < left;
            if goes_on {
                t.countdown.set(left - size);
            }
            goes_on
        })
    }

    /// An allocation that reached the end of the countdown: decides whether it is a sample, makes
    /// it (zeroed or not), and records it. The layout is passed by value so that the fast path
    /// keeps nothing on the stack.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_at_countdown_end(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let entered = sampler::enter();
        let weight = match entered {
            Some(_) => THREAD.with(|t| t.expired(layout.size(), self.rate)),
            None => None,
        };
        // SAFETY: the caller upholds `alloc`'s (or `alloc_zeroed`'s) contract.
        let ptr = unsafe {
            if zeroed {
                self.inner.alloc_zeroed(layout)
            } else {
                self.inner.alloc(layout)
            }
        };
        if let (Some(entered), Some(weight), false) = (&entered, weight, ptr.is_null()) {
            record(entered, ptr, weight);
        }
        ptr
    }

    /// A free of a block that may be sampled: off the live table first (rule 7), then freed.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_sampled(&self, ptr: *mut u8, layout: Layout) {
        if let Some(entered) = sampler::enter() {
            table::take(&entered, ptr as usize);
        }
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// A realloc of a block that may be sampled, or whose new size reaches the end of the
    /// countdown.
    #[cold]
    #[inline(never)]
    unsafe fn realloc_sampled(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(entered) = sampler::enter() else {
            // SAFETY: the caller upholds `realloc`'s contract.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        };
        let old = if table::maybe_sampled(ptr as usize) {
            table::take(&entered, ptr as usize)
        } else {
            None
        };
        let weight = if Self::counted(new_size) {
            None
        } else {
            THREAD.with(|t| t.expired(new_size, self.rate))
        };
        // SAFETY: the caller upholds `realloc`'s contract.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        match (new.is_null(), old, weight) {
            // The old block is still allocated, and still sampled.
            (true, Some(block), _) => table::restore(&entered, block),
            (false, _, Some(weight)) => record(&entered, new, weight),
            _ => {}
        }
        new
    }
}

/// Records a sampled block with the stack that allocated it.
fn record(entered: &sampler::Entered, ptr: *mut u8, weight: sampler::Weight) {
    let mut frames = [0usize; MAX_DEPTH];
    let depth = stack::capture(&mut frames);
    table::record_alloc(entered, ptr as usize, &frames[..depth], weight);
}

// SAFETY: every call is forwarded unchanged to `inner`, which upholds the contract; the sampler
// only observes pointers and sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SamplingAllocator<A> {
    // The fast paths count before forwarding, so that the call to the inner allocator is the last
    // thing they do: a tail call, with no stack frame of their own.

    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::counted(layout.size()) {
            // SAFETY: the caller upholds `alloc`'s contract.
            return unsafe { self.inner.alloc(layout) };
        }
        // SAFETY: as above.
        unsafe { self.alloc_at_countdown_end(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::counted(layout.size()) {
            // SAFETY: the caller upholds `alloc_zeroed`'s contract.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: as above.
        unsafe { self.alloc_at_countdown_end(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if table::maybe_sampled(ptr as usize) {
            // SAFETY: the caller upholds `dealloc`'s contract.
            return unsafe { self.dealloc_sampled(ptr, layout) };
        }
        // SAFETY: as above.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// A realloc is a free of the old block and an allocation of the new one, as in Go's
    /// profiles: a growing vector shows up at the stack that grows it, with every size it had.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !table::maybe_sampled(ptr as usize) && Self::counted(new_size) {
            // SAFETY: the caller upholds `realloc`'s contract.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        // SAFETY: as above.
        unsafe { self.realloc_sampled(ptr, layout, new_size) }
    }
}
