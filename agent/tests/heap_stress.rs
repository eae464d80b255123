//! The sampling allocator at rate 1 (every allocation takes the sampled path: stack walk, table
//! lock) under many threads that allocate, grow vectors by realloc and free, while other threads
//! start and exit (allocating and freeing in thread-local destructors on the way out), heap
//! snapshots are copied, and a CPU profile at 999 Hz interrupts all of it with SIGPROF.
//!
//! It runs once with each stack walk (DWARF and frame pointers).
//!
//! It must finish (its own deadline turns a deadlock into a failure instead of a stuck CI job),
//! and because rate 1 records everything exactly, the live table must balance to the byte: what
//! the workload freed is gone from it, what it kept is there.

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use pyrometer::heap::{self, SamplingAllocator, Snapshot, StackWalk};

#[global_allocator]
static ALLOC: SamplingAllocator = SamplingAllocator::system().with_sample_rate(1);

const WORKERS: usize = 6;
const ROUNDS: usize = 1_600;
const SHORT_LIVED_THREADS: usize = 150;
const KEPT_PER_WORKER: usize = 40;
const KEPT_SIZE: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(240);

/// Blocks the workers keep until the end, to check that live blocks stay counted.
static KEPT: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

thread_local! {
    /// Allocated when a short-lived thread starts, freed by this thread-local's destructor while
    /// the thread exits.
    static AT_EXIT: RefCell<Vec<u8>> = RefCell::new(tls_block());
}

#[inline(never)]
fn tls_block() -> Vec<u8> {
    vec![7; 333]
}

#[inline(never)]
fn boxed(i: usize) -> Box<[u8]> {
    vec![i as u8; 24 + i % 500].into_boxed_slice()
}

/// Grows a vector by realloc, and checks that every move kept its contents.
#[inline(never)]
fn growing_vector(i: usize) -> usize {
    let n = i % 300;
    let mut v = Vec::new();
    for j in 0..n {
        v.push(j as u64);
    }
    assert_eq!(v.iter().sum::<u64>(), (n * n.saturating_sub(1) / 2) as u64);
    v.len()
}

#[repr(align(64))]
struct CacheLine([u8; 64]);

/// Over-aligned blocks, grown by realloc: sampled ones cannot carry the address tag.
#[inline(never)]
fn aligned_blocks(i: usize) -> usize {
    let mut v: Vec<CacheLine> = Vec::new();
    for j in 0..(i % 20) {
        v.push(CacheLine([j as u8; 64]));
        assert_eq!(v.as_ptr() as usize % 64, 0, "alignment kept");
    }
    assert!(v.iter().enumerate().all(|(j, c)| c.0[63] == j as u8));
    v.len()
}

#[inline(never)]
fn kept_block() -> Box<[u8]> {
    vec![1; KEPT_SIZE].into_boxed_slice()
}

/// Returns how many times it called [`boxed`].
fn worker(n: usize) -> usize {
    let mut boxes = Vec::new();
    for i in 0..ROUNDS {
        boxes.push(boxed(i + n));
        if boxes.len() > 16 {
            boxes.swap_remove(i % 16);
        }
        black_box(growing_vector(i * 7 + n));
        black_box(aligned_blocks(i + n));
        black_box(format!("round {i} of worker {n}"));
        if i % (ROUNDS / KEPT_PER_WORKER) == 0 {
            KEPT.lock().unwrap().push(kept_block());
        }
    }
    ROUNDS
}

fn short_lived_threads(stop: &AtomicBool) -> usize {
    let mut started = 0;
    while started < SHORT_LIVED_THREADS && !stop.load(Ordering::Relaxed) {
        thread::spawn(|| AT_EXIT.with(|b| black_box(b.borrow().len())))
            .join()
            .unwrap();
        started += 1;
    }
    started
}

#[test]
fn many_threads_at_rate_one_with_a_cpu_profile_running() {
    stress(StackWalk::Dwarf);
}

#[test]
fn many_threads_at_rate_one_with_a_cpu_profile_running_with_frame_pointers() {
    stress(StackWalk::FramePointers);
}

/// One run of the workload with stacks walked by `walk`; runs take the CPU profiler in turn.
fn stress(walk: StackWalk) {
    let _cpu = common::PROFILER.blocking_lock();
    heap::set_stack_walk(walk);
    let before = Snapshot::take();
    let session = pyrometer::cpu::start(999, DEADLINE).expect("CPU profiler starts");

    let (done, finished) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        thread::spawn(move || {
            let snapshots = thread::spawn({
                let stop = stop.clone();
                move || {
                    let mut taken = 0;
                    while !stop.load(Ordering::Relaxed) {
                        black_box(Snapshot::take());
                        taken += 1;
                        thread::sleep(Duration::from_millis(20));
                    }
                    taken
                }
            });
            let exits = thread::spawn({
                let stop = stop.clone();
                move || short_lived_threads(&stop)
            });
            let workers: Vec<_> = (0..WORKERS)
                .map(|n| thread::spawn(move || worker(n)))
                .collect();
            let boxed_calls: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
            let threads = exits.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            let snapshots = snapshots.join().unwrap();
            done.send((boxed_calls, threads, snapshots)).unwrap();
        });
    }
    let (boxed_calls, threads, snapshots) = finished
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("the workload did not finish within {DEADLINE:?}: deadlock"));
    let cpu = session.finish(false).expect("CPU profile builds");
    assert!(cpu.total(0) > 0, "the CPU profile ran during the workload");
    assert_eq!(threads, SHORT_LIVED_THREADS);
    assert!(snapshots > 0);

    let heap = Snapshot::take().since(&before).profile("inuse_space");
    let at = |site: &str, index: usize| common::total_at(&heap, site, index);
    // Allocation counts are exact at rate 1.
    assert_eq!(at("boxed", 0) as usize, boxed_calls);
    assert_eq!(at("tls_block", 0) as usize, SHORT_LIVED_THREADS);
    assert!(
        at("growing_vector", 0) > ROUNDS as i64,
        "growth reallocs are counted"
    );
    // Everything freed has left the live table, including blocks freed by thread-local
    // destructors while threads exited, and vectors moved by realloc.
    assert!(at("aligned_blocks", 0) > 0);
    for site in ["boxed", "growing_vector", "aligned_blocks", "tls_block"] {
        assert_eq!(at(site, 2), 0, "{site}: objects still live");
        assert_eq!(at(site, 3), 0, "{site}: bytes still live");
    }
    // What was kept is still there, to the byte.
    let kept = KEPT.lock().unwrap().len();
    assert_eq!(kept, WORKERS * KEPT_PER_WORKER);
    assert_eq!(at("kept_block", 2) as usize, kept);
    assert_eq!(at("kept_block", 3) as usize, kept * KEPT_SIZE);
    KEPT.lock().unwrap().clear();
}
