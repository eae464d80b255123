//! When to sample, and what a sample stands for.
//!
//! # The sampling process
//!
//! As in Go's runtime (`nextSample` in malloc.go), tcmalloc and jemalloc, every thread counts down
//! the bytes it allocates. When an allocation reaches the end of the countdown it is sampled, and
//! the next distance is drawn from an exponential distribution whose mean is the sample rate `R`
//! (512 KiB by default). Sample points therefore form a Poisson process of rate `1/R` over the
//! stream of allocated bytes, and because that process is memoryless, every allocation is sampled
//! independently of all others, with a probability that depends on its size `s` only:
//!
//! ```text
//! p(s) = 1 - exp(-s / R)
//! ```
//!
//! Distances are whole bytes: the countdown is `floor(D) + 1` for a continuous draw `D`, and an
//! allocation of `s` bytes is sampled when `s >= countdown`, that is when `D < s`, so `p(s)` above
//! holds exactly, not just approximately.
//!
//! # The estimator
//!
//! Each sampled allocation is weighted by the inverse of its probability (the Horvitz-Thompson
//! estimator): it stands for `1 / p(s)` objects and `s / p(s)` bytes. For any set of allocations
//! (those of one call stack, those made during a window, those still live) the sum of the weights
//! of its sampled members has the true count and the true byte total as its expectation, whatever
//! the mix of sizes. The relative standard deviation of a byte estimate made of allocations much
//! smaller than `R` is about `1 / sqrt(k)` for `k` samples, that is `sqrt(R / bytes)`.
//!
//! Go records unweighted counts per stack and scales them when it writes the profile, using the
//! stack's average size (`scaleHeapSample`); that is the same estimator when a stack allocates one
//! size and a biased one when it mixes sizes. Weighting each sample by its own size avoids that.
//!
//! Live ("in use") estimates are sums over sampled blocks not yet freed. Freeing does not depend on
//! the sampling decision, so they are unbiased in the same way.
//!
//! A rate of 1 records every allocation with weight 1: exact counts, for tests and for small
//! programs. A rate of 0 records nothing.
//!
//! # Changing the rate
//!
//! The fast path reads only the thread's countdown, so a new rate reaches a thread when its
//! current countdown ends: at its next sample, or after at most [`OFF_RECHECK`] bytes when
//! sampling was off. Threads started later, and the thread that calls [`set_sample_rate`], use it
//! from their next allocation. Every sample is weighted by the rate its countdown was drawn with,
//! so a change does not bias the estimates.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The mean number of bytes between samples unless configured otherwise, as in Go and tcmalloc.
pub const DEFAULT_SAMPLE_RATE: usize = 512 * 1024;

/// While sampling is off, how many bytes a thread allocates between looks at the configured rate.
pub const OFF_RECHECK: usize = 4 << 20;

const UNSET: usize = usize::MAX;

/// The rate the installed allocator was built with; `UNSET` until its first allocation.
static INSTALLED_RATE: AtomicUsize = AtomicUsize::new(UNSET);
/// A rate set at run time with [`set_sample_rate`], overriding the installed one.
static RATE_OVERRIDE: AtomicUsize = AtomicUsize::new(UNSET);
/// Distinguishes the random streams of threads.
static THREADS_SEEDED: AtomicU64 = AtomicU64::new(0);

/// What one sampled allocation stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Weight {
    pub objects: f64,
    pub bytes: f64,
}

impl Weight {
    /// The inverse-probability weight of a sampled allocation of `size` bytes at mean `rate`.
    pub(crate) fn of(size: usize, rate: usize) -> Weight {
        let bytes = size as f64;
        if rate <= 1 {
            return Weight {
                objects: 1.0,
                bytes,
            };
        }
        // 1 - exp(-x), accurate for the small x of small allocations.
        let p = -(-bytes / rate as f64).exp_m1();
        Weight {
            objects: 1.0 / p,
            bytes: bytes / p,
        }
    }
}

/// The sampler's state for one thread.
///
/// It lives in a `const`-initialized thread-local of a type without a destructor: such a
/// thread-local is a plain TLS slot, valid from the first instruction a thread runs to its last
/// (including while other thread-locals' destructors free memory at thread exit), and reading it
/// never allocates or registers anything.
pub(crate) struct ThreadState {
    /// Bytes left before the next sample. The only field the fast path touches.
    pub countdown: Cell<usize>,
    /// The rate the current countdown was drawn with.
    rate: Cell<usize>,
    /// False until the first countdown is drawn (and again after a reseed or a rate change).
    armed: Cell<bool>,
    /// Set while this thread is inside the profiler's own code (see [`enter`]).
    busy: Cell<bool>,
    /// xorshift64* state; 0 until seeded.
    rng: Cell<u64>,
}

thread_local! {
    pub(crate) static THREAD: ThreadState = const {
        ThreadState {
            countdown: Cell::new(0),
            rate: Cell::new(0),
            armed: Cell::new(false),
            busy: Cell::new(false),
            rng: Cell::new(0),
        }
    };
}

impl ThreadState {
    /// Called when an allocation of `size` bytes has reached the end of the countdown (or the
    /// thread has none yet). Draws the next countdown and says whether this allocation is a
    /// sample, and of what weight. `installed` is the rate the allocator was built with.
    pub(crate) fn expired(&self, size: usize, installed: usize) -> Option<Weight> {
        let current = current_rate(installed);
        if !self.armed.get() {
            self.arm(current);
            let left = self.countdown.get();
            if size < left {
                self.countdown.set(left - size);
                return None;
            }
        }
        let drawn_with = self.rate.get();
        self.arm(current);
        (drawn_with != 0).then(|| Weight::of(size, drawn_with))
    }

    fn arm(&self, rate: usize) {
        self.rate.set(rate);
        self.armed.set(true);
        let countdown = match rate {
            0 => OFF_RECHECK,
            1 => 0,
            mean => self.exponential(mean),
        };
        self.countdown.set(countdown);
    }

    /// `floor(D) + 1` bytes, with `D` exponentially distributed with the given mean.
    fn exponential(&self, mean: usize) -> usize {
        // A uniform draw in (0, 1], so that its logarithm is finite.
        let u = ((self.next_random() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        let distance = -u.ln() * mean as f64;
        // `as` saturates, and the largest draw is about 37 times the mean.
        (distance as usize).saturating_add(1)
    }

    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        if x == 0 {
            // Seed from this thread's TLS address (randomized per process by ASLR) and a counter.
            let address = self as *const ThreadState as u64;
            x = splitmix64(address ^ THREADS_SEEDED.fetch_add(1, Relaxed).rotate_left(32));
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn disarm(&self) {
        self.armed.set(false);
        self.countdown.set(0);
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    // Never 0, which means "not seeded".
    (z ^ (z >> 31)) | 1
}

/// The rate in force, recording on first use that an allocator built with `installed` runs.
fn current_rate(installed: usize) -> usize {
    if INSTALLED_RATE.load(Relaxed) == UNSET {
        INSTALLED_RATE.store(installed, Relaxed);
    }
    match RATE_OVERRIDE.load(Relaxed) {
        UNSET => installed,
        rate => rate,
    }
}

/// Proof that the current thread is inside the profiler's own code; the tables can be locked only
/// with it. While it exists, allocations and frees on this thread skip the sampler, so nothing
/// the profiler does (unwinding, growing a table) can re-enter it and deadlock on its own lock.
pub(crate) struct Entered(());

/// Marks this thread busy, or returns `None` if it already is (re-entry: an allocation made by
/// the unwinder, or by a signal handler that interrupted the sampler).
pub(crate) fn enter() -> Option<Entered> {
    THREAD.with(|t| (!t.busy.replace(true)).then_some(Entered(())))
}

impl Drop for Entered {
    fn drop(&mut self) {
        THREAD.with(|t| t.busy.set(false));
    }
}

/// True once a [`SamplingAllocator`](super::SamplingAllocator) has served an allocation: it is
/// the global allocator (or in use as some other allocator).
pub fn is_installed() -> bool {
    INSTALLED_RATE.load(Relaxed) != UNSET
}

/// The mean number of bytes between samples in force, or `None` when the sampling allocator is
/// not installed. 0 means sampling is off; 1 means every allocation is recorded.
pub fn sample_rate() -> Option<usize> {
    match INSTALLED_RATE.load(Relaxed) {
        UNSET => None,
        installed => Some(current_rate(installed)),
    }
}

/// Changes the mean number of bytes between samples at run time (0 turns sampling off, 1 records
/// every allocation). It applies to the calling thread at once, to threads started later from
/// their first allocation, and to other running threads when their current countdown ends.
pub fn set_sample_rate(bytes: usize) {
    RATE_OVERRIDE.store(if bytes == UNSET { UNSET - 1 } else { bytes }, Relaxed);
    THREAD.with(ThreadState::disarm);
}

/// Makes this thread's sampling decisions reproducible: after it, the same sequence of
/// allocations on this thread is sampled at the same places in every run. For deterministic tests
/// and allocation diffs; a production service has no reason to call it.
pub fn reseed_thread(seed: u64) {
    THREAD.with(|t| {
        t.rng.set(splitmix64(seed));
        t.disarm();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rate: usize) -> ThreadState {
        let t = ThreadState {
            countdown: Cell::new(0),
            rate: Cell::new(0),
            armed: Cell::new(false),
            busy: Cell::new(false),
            rng: Cell::new(splitmix64(42)),
        };
        t.arm(rate);
        t
    }

    #[test]
    fn weights_are_inverse_probabilities() {
        let w = Weight::of(1024, 512 * 1024);
        let p = 1.0 - (-1024.0f64 / (512.0 * 1024.0)).exp();
        assert!((w.objects - 1.0 / p).abs() < 1e-6 * w.objects);
        assert!((w.bytes - 1024.0 / p).abs() < 1e-6 * w.bytes);
        // Blocks far larger than the rate are (almost) always sampled and stand for themselves.
        let big = Weight::of(64 << 20, 512 * 1024);
        assert!((big.objects - 1.0).abs() < 1e-12);
        assert_eq!(
            Weight::of(100, 1),
            Weight {
                objects: 1.0,
                bytes: 100.0
            }
        );
    }

    #[test]
    fn countdowns_have_the_configured_mean() {
        let t = state(4096);
        let n = 200_000;
        let sum: f64 = (0..n).map(|_| t.exponential(4096) as f64).sum();
        // The mean of floor(D) + 1 is 4096.5; the standard error over 200,000 draws is 9.2 bytes,
        // and this fixed seed keeps the outcome the same on every run.
        let mean = sum / n as f64;
        assert!((mean - 4096.5).abs() < 46.0, "mean distance {mean}");
    }

    #[test]
    fn rate_one_samples_everything_and_zero_nothing() {
        let t = state(1);
        for size in [1, 8, 100, 1 << 20] {
            assert_eq!(t.expired(size, 1), Some(Weight::of(size, 1)));
            assert_eq!(t.countdown.get(), 0);
        }
        let t = state(0);
        assert_eq!(t.countdown.get(), OFF_RECHECK);
        assert_eq!(t.expired(OFF_RECHECK, 0), None);
        assert_eq!(t.countdown.get(), OFF_RECHECK);
    }

    #[test]
    fn a_sample_is_weighted_by_the_rate_its_countdown_was_drawn_with() {
        let t = state(1);
        // The countdown was drawn at rate 1; the next one is drawn at 4096.
        assert_eq!(
            t.expired(10, 4096),
            Some(Weight {
                objects: 1.0,
                bytes: 10.0
            })
        );
        assert!(t.countdown.get() >= 1);
        assert_eq!(t.rate.get(), 4096);
    }

    #[test]
    fn entering_twice_is_refused() {
        let first = enter().expect("not busy yet");
        assert!(enter().is_none());
        drop(first);
        assert!(enter().is_some());
    }
}
