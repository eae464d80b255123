//! The preallocated, lock-free buffer between the signal handler and the collector.
//!
//! The handler runs on whatever thread the timer interrupted, so it may not allocate or lock: it
//! claims a free slot with one compare-and-swap, unwinds straight into the slot's fixed array, and
//! marks the slot ready. The collector thread sweeps every slot each few milliseconds, reads the
//! ready ones and frees them. Order is not kept (samples carry their own time), so writers never
//! wait on each other or on the collector; when every probed slot is taken the sample is counted as
//! lost rather than waited for.
//!
//! The ring is allocated once, outside signal context, and never freed, so a handler still running
//! on another thread when profiling stops can never write into freed memory.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Frames kept per sample, leaf first; deeper stacks are cut at the root end.
pub(crate) const MAX_DEPTH: usize = 128;
/// 1,024 slots of ~1 KiB: at 999 Hz on 16 busy threads, 64 ms of samples between two sweeps.
const SLOTS: usize = 1024;
/// Slots a writer tries before it gives up and counts the sample as lost.
const PROBES: usize = 16;

const FREE: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;

/// One stack taken by the signal handler.
pub(crate) struct Sample {
    /// The sampled thread's kernel id.
    pub tid: i32,
    /// Timer periods this sample stands for (1 + the timer's overrun count).
    pub weight: u32,
    /// `CLOCK_MONOTONIC` when it was taken, in nanoseconds.
    pub time_ns: u64,
    depth: usize,
    ips: [usize; MAX_DEPTH],
}

impl Sample {
    /// Instruction addresses, leaf first: the interrupted instruction, then return addresses.
    pub fn ips(&self) -> &[usize] {
        &self.ips[..self.depth]
    }

    /// Appends a frame; false once the array is full.
    pub fn push(&mut self, ip: usize) -> bool {
        if self.depth == MAX_DEPTH {
            return false;
        }
        self.ips[self.depth] = ip;
        self.depth += 1;
        true
    }
}

struct Slot {
    state: AtomicU32,
    sample: UnsafeCell<Sample>,
}

// SAFETY: a slot's sample is only touched by the one party that moved its state away from FREE
// (a writer, WRITING) or that saw it READY (the collector, which alone sweeps), as the state's
// acquire/release ordering guarantees.
unsafe impl Sync for Slot {}

pub(crate) struct Ring {
    slots: Box<[Slot]>,
    next: AtomicUsize,
    lost: AtomicU64,
}

static RING: OnceLock<Ring> = OnceLock::new();

/// The ring, allocated on first use. Not for signal context: call it before arming any timer.
pub(crate) fn get_or_init() -> &'static Ring {
    RING.get_or_init(|| Ring {
        slots: (0..SLOTS)
            .map(|_| Slot {
                state: AtomicU32::new(FREE),
                sample: UnsafeCell::new(Sample {
                    tid: 0,
                    weight: 0,
                    time_ns: 0,
                    depth: 0,
                    ips: [0; MAX_DEPTH],
                }),
            })
            .collect(),
        next: AtomicUsize::new(0),
        lost: AtomicU64::new(0),
    })
}

/// The ring if it was allocated: a plain atomic load, safe in signal context.
pub(crate) fn get() -> Option<&'static Ring> {
    RING.get()
}

impl Ring {
    /// Claims a free slot, lets `fill` write the sample, and publishes it. Async-signal-safe.
    pub fn write(&self, weight: u32, fill: impl FnOnce(&mut Sample)) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for probe in 0..PROBES {
            let slot = &self.slots[(start + probe) % SLOTS];
            if slot
                .state
                .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: WRITING gives this writer the slot alone until it stores READY.
                let sample = unsafe { &mut *slot.sample.get() };
                sample.depth = 0;
                sample.weight = weight;
                fill(sample);
                slot.state.store(READY, Ordering::Release);
                return;
            }
        }
        self.lost.fetch_add(u64::from(weight), Ordering::Relaxed);
    }

    /// Hands every ready sample to `take` and frees its slot. One caller at a time (the collector
    /// holds a lock around it).
    pub fn drain(&self, mut take: impl FnMut(&Sample)) {
        for slot in self.slots.iter() {
            if slot.state.load(Ordering::Acquire) == READY {
                // SAFETY: READY slots belong to the one draining caller until it stores FREE.
                take(unsafe { &*slot.sample.get() });
                slot.state.store(FREE, Ordering::Release);
            }
        }
    }

    /// Timer periods dropped because the ring was full, since the process started.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}
