//! Heap profiling: a sampling global allocator, and the live-heap and allocation profiles built
//! from what it records.
//!
//! A service installs it with one line, and the agent's `/debug/pprof/heap` and
//! `/debug/pprof/allocs` endpoints start answering:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();
//! ```
//!
//! Recording every allocation costs a lock and a stack walk per allocation, which no production
//! service can pay (dhat does it, and is several times slower even when idle). So, like Go's
//! runtime, tcmalloc and jemalloc, the allocator samples: about once every 512 KiB allocated, at
//! random, with each sample weighted so that totals are unbiased (see `sampler` for the process
//! and the estimator). An allocation that is not sampled costs a thread-local subtraction.
//!
//! The parts, one concern each:
//! - `allocator`: the [`SamplingAllocator`] wrapper, and the rules that code inside an allocator
//!   must follow;
//! - `sampler`: the per-thread countdown, the sampling process, the weights, the re-entry guard;
//! - `stack`: capturing a bounded stack without allocating, by DWARF or frame pointers;
//! - `table`: the stack table with its running sums, the live table, the free-path filter;
//! - `profile`: [`Snapshot`]s of the sums and the pprof [`Profile`](crate::profile::Profile)s
//!   built from them.

mod allocator;
mod profile;
mod sampler;
mod stack;
mod table;

pub use allocator::SamplingAllocator;
pub use profile::{Snapshot, SAMPLE_TYPES};
pub use sampler::{
    is_installed, reseed_thread, sample_rate, set_sample_rate, DEFAULT_SAMPLE_RATE, OFF_RECHECK,
};
pub use stack::{set_stack_walk, stack_walk, StackWalk};
pub use table::TableStats as Stats;

/// What the sampler holds now: estimated live heap, sampled blocks, stacks, and the memory the
/// profiler itself takes. `None` when the sampling allocator is not installed.
pub fn stats() -> Option<Stats> {
    is_installed().then(table::stats)
}
