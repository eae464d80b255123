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
//!    read-modify-write, no fence, no shared cache line written. A free is ruled out as sampled
//!    from its address and alignment alone when it can be (rule 8), and otherwise by one bit of a
//!    shared, read-mostly bitmap read with a relaxed load (a plain load on x86-64 and aarch64).
//!    Everything else is behind `#[cold]` functions, and the fast paths end in a tail call to the
//!    inner allocator, so they need no stack frame: the countdown is checked *before* the inner
//!    allocator is called (the size is in the layout), not after.
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
//! 8. **Sampled blocks carry a tag in their address.** A sampled block whose alignment is at most
//!    8 is placed 8 bytes into a 16-aligned block of the inner allocator, so its address is 8
//!    modulo 16. Every other block of such alignment that the system allocator returns is 0
//!    modulo 16, so a free of it is known not to be sampled without touching memory. Allocators
//!    that hand out 8-modulo-16 blocks themselves (mimalloc, jemalloc for small sizes) send those
//!    frees to the bitmap. A tagged block is only ever handed out once it is in the live table,
//!    since freeing it needs the table to know where the inner block starts; a tagged block that
//!    a re-entered free cannot look up (rule 3) is left allocated rather than freed wrongly.

use std::alloc::{GlobalAlloc, Layout, System};

use super::sampler::{self, DEFAULT_SAMPLE_RATE, THREAD};
use super::stack::{self, StackWalk, MAX_DEPTH};
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
/// ```no_run
/// #[global_allocator]
/// static ALLOC: pyrometer::heap::SamplingAllocator<mimalloc::MiMalloc> =
///     pyrometer::heap::SamplingAllocator::new(mimalloc::MiMalloc).with_sample_rate(256 * 1024);
/// ```
#[derive(Debug, Default)]
pub struct SamplingAllocator<A = System> {
    inner: A,
    rate: usize,
    walk: StackWalk,
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
            walk: StackWalk::Dwarf,
        }
    }

    /// Samples every `bytes` allocated on average: 0 turns sampling off, 1 records every
    /// allocation. [`set_sample_rate`](super::set_sample_rate) changes it at run time.
    pub const fn with_sample_rate(mut self, bytes: usize) -> Self {
        self.rate = bytes;
        self
    }

    /// How sampled stacks are walked (default [`StackWalk::Dwarf`]). Choose
    /// [`StackWalk::FramePointers`] for a service built with `-C force-frame-pointers=yes`: the
    /// walk then costs tens of nanoseconds instead of microseconds.
    /// [`set_stack_walk`](super::set_stack_walk) changes it at run time.
    pub const fn with_stack_walk(mut self, walk: StackWalk) -> Self {
        self.walk = walk;
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
        if let Some(entered) = sampler::enter() {
            if let Some(weight) = THREAD.with(|t| t.expired(layout.size(), self.rate)) {
                // SAFETY: the caller upholds `alloc`'s (or `alloc_zeroed`'s) contract.
                return unsafe { self.alloc_sample(&entered, layout, weight, zeroed) };
            }
        }
        // SAFETY: as above.
        unsafe { self.alloc_plain(layout, zeroed) }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc_plain(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe {
            if zeroed {
                self.inner.alloc_zeroed(layout)
            } else {
                self.inner.alloc(layout)
            }
        }
    }

    /// Makes a sampled block, tagged when its alignment allows (rule 8), and records it.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc_sample(
        &self,
        entered: &sampler::Entered,
        layout: Layout,
        weight: sampler::Weight,
        zeroed: bool,
    ) -> *mut u8 {
        let Some(outer) = tagged_layout(layout) else {
            // SAFETY: the caller upholds `alloc`'s contract.
            let ptr = unsafe { self.alloc_plain(layout, zeroed) };
            if !ptr.is_null() {
                record(entered, ptr, weight, false, self.walk);
            }
            return ptr;
        };
        // SAFETY: `outer` is a valid layout of non-zero size.
        let base = unsafe { self.alloc_plain(outer, zeroed) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `outer` is TAG bytes larger than `layout`.
        let ptr = unsafe { base.add(TAG) };
        if record(entered, ptr, weight, true, self.walk) {
            return ptr;
        }
        // The tables could not take it, and an untracked tagged block could not be freed: give
        // an ordinary one instead.
        // SAFETY: `base` was just allocated with `outer`; the caller upholds `alloc`'s contract.
        unsafe {
            self.inner.dealloc(base, outer);
            self.alloc_plain(layout, zeroed)
        }
    }

    /// A free of a block that may be sampled: off the live table first (rule 7), then freed.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_sampled(&self, ptr: *mut u8, layout: Layout) {
        let tagged = match sampler::enter() {
            Some(entered) => table::take(&entered, ptr as usize).is_some_and(|b| b.tagged),
            // Re-entered (rule 3): the table cannot be read. A block that may be tagged is left
            // allocated rather than freed at a wrong address.
            None if is_tag_address(ptr, layout) => return,
            None => false,
        };
        // SAFETY: the caller upholds `dealloc`'s contract; a tagged block was allocated by
        // `alloc_sample` as `outer`, TAG bytes before `ptr`.
        unsafe { self.dealloc_block(ptr, layout, tagged) }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`], with `tagged` saying how the block was allocated.
    unsafe fn dealloc_block(&self, ptr: *mut u8, layout: Layout, tagged: bool) {
        match tagged_layout(layout).filter(|_| tagged) {
            // SAFETY: see `alloc_sample`.
            Some(outer) => unsafe { self.inner.dealloc(ptr.sub(TAG), outer) },
            // SAFETY: the caller upholds `dealloc`'s contract.
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }

    /// A realloc of a block that may be sampled, or whose new size reaches the end of the
    /// countdown.
    #[cold]
    #[inline(never)]
    unsafe fn realloc_sampled(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let entered = sampler::enter();
        let maybe_sampled = may_be_sampled(ptr, layout);
        let old_tagged = match &entered {
            Some(entered) => maybe_sampled && table::is_tagged(entered, ptr as usize),
            None => maybe_sampled && is_tag_address(ptr, layout),
        };
        let weight = match &entered {
            Some(_) if !Self::counted(new_size) => THREAD.with(|t| t.expired(new_size, self.rate)),
            _ => None,
        };
        // SAFETY: the caller guarantees that `new_size` with `layout`'s alignment is a layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new_tagged = weight.is_some() && tagged_layout(new_layout).is_some();

        if !old_tagged && !new_tagged {
            let old = match &entered {
                Some(entered) if maybe_sampled => table::take(entered, ptr as usize),
                _ => None,
            };
            // SAFETY: the caller upholds `realloc`'s contract.
            let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
            match (&entered, new.is_null(), old, weight) {
                // The old block is still allocated, and still sampled.
                (Some(entered), true, Some(block), _) => table::restore(entered, block),
                (Some(entered), false, _, Some(weight)) => {
                    record(entered, new, weight, false, self.walk);
                }
                _ => {}
            }
            return new;
        }

        // A tagged block on either side: move by hand. The old block stays recorded until the
        // new one exists, so a failure leaves everything as it was.
        // SAFETY: `new_layout` has a non-zero size (realloc's contract).
        let new = unsafe {
            match (&entered, weight) {
                (Some(entered), Some(weight)) => {
                    self.alloc_sample(entered, new_layout, weight, false)
                }
                _ => self.inner.alloc(new_layout),
            }
        };
        if new.is_null() {
            return new;
        }
        // SAFETY: both blocks are live, distinct, and at least this long.
        unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        match &entered {
            Some(entered) => {
                if maybe_sampled {
                    table::take(entered, ptr as usize);
                }
                // SAFETY: the old block was allocated as `old_tagged` says.
                unsafe { self.dealloc_block(ptr, layout, old_tagged) };
            }
            // Re-entered with a block that may be tagged: left allocated (see `dealloc_sampled`).
            None if old_tagged => {}
            // SAFETY: an untagged block, as given.
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
        new
    }
}

/// Sampled blocks whose alignment is at most 8 are placed [`TAG`] bytes into a 16-aligned block
/// of the inner allocator, so their address is 8 modulo 16 (rule 8).
const TAG: usize = 8;

/// The inner allocator's layout for a tagged block of `layout`, if it can be tagged.
fn tagged_layout(layout: Layout) -> Option<Layout> {
    if layout.align() > TAG {
        return None;
    }
    Layout::from_size_align(layout.size().checked_add(TAG)?, 2 * TAG).ok()
}

/// Whether a block could be a tagged sampled block: its address is 8 modulo 16 and its
/// alignment allows a tag. Blocks that are not are never tagged.
#[inline(always)]
fn is_tag_address(ptr: *mut u8, layout: Layout) -> bool {
    ptr as usize & TAG != 0 && layout.align() <= TAG
}

/// False when the block at `ptr` is certainly not sampled. A sampled block of alignment at most 8
/// is always tagged, so any other block of such alignment at an address that is 0 modulo 16 (all
/// of them, with the system allocator) is ruled out without a memory access; the rest are looked
/// up in the table's filter.
#[inline(always)]
fn may_be_sampled(ptr: *mut u8, layout: Layout) -> bool {
    (ptr as usize & TAG != 0 || layout.align() > TAG) && table::maybe_sampled(ptr as usize)
}

/// Records a sampled block with the stack that allocated it; false if the tables could not take
/// it.
fn record(
    entered: &sampler::Entered,
    ptr: *mut u8,
    weight: sampler::Weight,
    tagged: bool,
    walk: StackWalk,
) -> bool {
    let mut frames = [0usize; MAX_DEPTH];
    let depth = stack::capture(&mut frames, walk);
    table::record_alloc(entered, ptr as usize, &frames[..depth], weight, tagged)
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
        if may_be_sampled(ptr, layout) {
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
        if !may_be_sampled(ptr, layout) && Self::counted(new_size) {
            // SAFETY: the caller upholds `realloc`'s contract.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        // SAFETY: as above.
        unsafe { self.realloc_sampled(ptr, layout, new_size) }
    }
}
