#![allow(dead_code)] // each benchmark uses a different subset of the variants

//! What the allocation benchmarks share: a global allocator that switches between the variants
//! under test, the workload, and the side-by-side runner.
//!
//! Every variant runs in the same process, round after round in rotating order, so all see the
//! same machine noise; each round's time is divided by the same round's time of the bare
//! allocator, and the report gives the median of those ratios. The switch costs one predictable
//! branch per call in every variant alike, the baseline included, so it slightly dilutes the
//! ratios (makes them closer to 1) rather than inflating them.
//!
//! Blocks never travel between variants with different underlying allocators: each benchmark
//! binary switches only between variants over the same allocator (the system one, or mimalloc),
//! and a round frees everything it allocates before the switch goes back to the baseline.

#[path = "../support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::{env_or, median, thread_cpu_time};

use pyrometer::heap::{SamplingAllocator, StackWalk};

/// Which variant serves allocations now: an index into [`Switch`]'s variants.
static MODE: AtomicUsize = AtomicUsize::new(BARE);

pub const BARE: usize = 0;
/// Sampling at the default rate, stacks walked with frame pointers.
pub const SAMPLED: usize = 1;
/// Sampling at the default rate, stacks walked by libgcc's DWARF unwinder.
pub const SAMPLED_DWARF: usize = 2;
pub const SAMPLING_OFF: usize = 3;
pub const REFERENCE: usize = 4;

/// The allocator `A` alone, wrapped at the default rate (with each stack walk), wrapped with
/// sampling off, and a reference allocator `R` over the same underlying allocator (dhat's, for
/// the system one).
pub struct Switch<A, R> {
    bare: A,
    sampled: SamplingAllocator<A>,
    sampled_dwarf: SamplingAllocator<A>,
    off: SamplingAllocator<A>,
    reference: R,
}

impl<A, R> Switch<A, R> {
    /// Four instances of the allocator (unit values such as `System`): alone, and wrapped for
    /// each sampling variant; and the reference.
    pub const fn new(bare: A, sampled: A, sampled_dwarf: A, off: A, reference: R) -> Self {
        Switch {
            bare,
            sampled: SamplingAllocator::new(sampled).with_stack_walk(StackWalk::FramePointers),
            sampled_dwarf: SamplingAllocator::new(sampled_dwarf).with_stack_walk(StackWalk::Dwarf),
            off: SamplingAllocator::new(off).with_sample_rate(0),
            reference,
        }
    }

    fn current(&self) -> &dyn GlobalAlloc
    where
        A: GlobalAlloc,
        R: GlobalAlloc,
    {
        match MODE.load(Relaxed) {
            BARE => &self.bare,
            SAMPLED => &self.sampled,
            SAMPLED_DWARF => &self.sampled_dwarf,
            SAMPLING_OFF => &self.off,
            _ => &self.reference,
        }
    }
}

// SAFETY: every call goes to one of the variants, each a correct allocator; the benchmarks never
// free a block through a variant over another underlying allocator (see the module docs).
unsafe impl<A: GlobalAlloc, R: GlobalAlloc> GlobalAlloc for Switch<A, R> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { self.current().alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { self.current().alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.current().dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { self.current().realloc(ptr, layout, new_size) }
    }
}

/// Allocates `iterations` blocks of 8 to 520 bytes (each freed 64 allocations later), and a
/// formatted string every eighth iteration, as request handling does.
#[inline(never)]
pub fn workload(iterations: usize, seed: u64) -> usize {
    let mut ring: Vec<Vec<u8>> = (0..64).map(|_| Vec::new()).collect();
    let mut x = seed | 1;
    let mut total = 0;
    for i in 0..iterations {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = 8 + (x >> 33) as usize % 513;
        let mut block = Vec::with_capacity(size);
        block.push(i as u8);
        ring[i % 64] = block;
        if i % 8 == 0 {
            total += black_box(format!("request {i} from {x:x}")).len();
        }
    }
    total + ring.iter().map(Vec::len).sum::<usize>()
}

/// One run of the workload on `threads` threads with `mode` serving every allocation, from the
/// spawning of the threads to their joining: the wall time, and the CPU time of the threads.
fn run(mode: usize, threads: usize, iterations: usize) -> (Duration, Duration) {
    MODE.store(mode, Relaxed);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                black_box(workload(iterations, t as u64 + 1));
                thread_cpu_time()
            })
        })
        .collect();
    let cpu = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let wall = start.elapsed();
    MODE.store(BARE, Relaxed);
    (wall, cpu)
}

/// Runs the named variants side by side and prints the median time of each and the median of its
/// per-round ratio to the bare allocator. Environment: `ROUNDS` (default 11), `ITERATIONS` per
/// thread per run (default 4M).
pub fn compare(title: &str, variants: &[(&str, usize)]) {
    compare_with(title, variants, |_| {});
}

/// [`compare`], calling `switching_to(mode)` before each run of a variant (to switch what the
/// allocator itself does, such as jemalloc's own profiler).
pub fn compare_with(title: &str, variants: &[(&str, usize)], switching_to: fn(usize)) {
    let quick = !support::full_run();
    let rounds = if quick { 1 } else { env_or("ROUNDS", 11) };
    let iterations = if quick {
        10_000
    } else {
        env_or("ITERATIONS", 4_000_000)
    };
    let threads = 2;
    let run = |mode: usize, threads: usize, iterations: usize| {
        switching_to(mode);
        let result = run(mode, threads, iterations);
        switching_to(BARE);
        result
    };
    for &(_, mode) in variants {
        run(mode, threads, iterations / 10); // warm up every variant
    }
    let mut results: Vec<Vec<(Duration, Duration)>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            results[i].push(run(variants[i].1, threads, iterations));
        }
    }

    println!(
        "{title}: {threads} threads x {iterations} allocations of 8 to 520 bytes (+ a format! every 8th), {rounds} rounds, medians"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>13} {:>9}",
        "variant", "wall s", "wall x", "thread-cpu s", "cpu x"
    );
    let seconds = |d: &Duration| d.as_secs_f64();
    for (i, (name, _)) in variants.iter().enumerate() {
        let ratio = |pick: fn(&(Duration, Duration)) -> Duration| {
            median(
                (0..rounds)
                    .map(|r| seconds(&pick(&results[i][r])) / seconds(&pick(&results[0][r])))
                    .collect(),
            )
        };
        println!(
            "{name:<26} {:>9.3} {:>9.3} {:>13.3} {:>9.3}",
            median(results[i].iter().map(|r| seconds(&r.0)).collect()),
            ratio(|r| r.0),
            median(results[i].iter().map(|r| seconds(&r.1)).collect()),
            ratio(|r| r.1),
        );
    }
}
