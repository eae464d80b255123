//! The sampler under the conditions that deadlocked pprof's framehop unwinder, and more: windows
//! opened and closed over and over (two at once, at different rates) while threads allocate and
//! free, threads start and exit, and panics unwind through sampled code. A hang fails the test
//! through a deadline on every cycle instead of blocking CI.
//!
//! `CPU_STRESS_CYCLES` sets the number of cycles (default 200; the 1,000 are run by hand:
//! `CPU_STRESS_CYCLES=1000 cargo test --release -p pyrometer --test cpu_stress`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// Every this many cycles a window is finished into a profile (symbolized); the others are
/// dropped, which closes them just the same.
const FINISH_EVERY: usize = 50;
const CYCLE_DEADLINE: Duration = Duration::from_secs(30);
const PANIC_MESSAGE: &str = "a panic unwinding through sampled code";

#[inline(never)]
fn churn_allocations(stop: &AtomicBool) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let v = vec![i as u8; 16 + (i * 37) % 4096];
        if kept.len() < 64 {
            kept.push(v);
        } else {
            kept[i % 64] = v;
        }
        let s = format!("{i}-{}", kept.len());
        std::hint::black_box(s);
        i = i.wrapping_add(1);
    }
}

#[inline(never)]
fn recurse_then_panic(depth: u32) -> u32 {
    if depth == 0 {
        std::panic::panic_any(PANIC_MESSAGE);
    }
    std::hint::black_box(recurse_then_panic(depth - 1)) + 1
}

fn spawn_while(stop: &Arc<AtomicBool>, work: fn(&AtomicBool)) -> thread::JoinHandle<()> {
    let stop = stop.clone();
    thread::spawn(move || work(&stop))
}

#[test]
fn windows_open_and_close_under_allocation_thread_churn_and_panics() {
    let cycles: usize = std::env::var("CPU_STRESS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC_MESSAGE) {
            default_hook(info);
        }
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<_> = (0..2)
        .map(|_| spawn_while(&stop, churn_allocations))
        .collect();
    workers.push(spawn_while(&stop, |stop| {
        while !stop.load(Ordering::Relaxed) {
            let t = thread::spawn(|| std::hint::black_box(vec![0u8; 1024]).len());
            let _ = t.join();
        }
    }));
    workers.push(spawn_while(&stop, |stop| {
        while !stop.load(Ordering::Relaxed) {
            let unwound = std::panic::catch_unwind(|| recurse_then_panic(16));
            assert!(unwound.is_err());
        }
    }));

    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        for i in 0..cycles {
            let scraper = pyrometer::cpu::start(999, Duration::from_millis(20))
                .unwrap_or_else(|e| panic!("cycle {i}: the 999 Hz window did not start: {e}"));
            let person = pyrometer::cpu::start(99, Duration::from_millis(10))
                .unwrap_or_else(|e| panic!("cycle {i}: the default window did not join: {e}"));
            thread::sleep(Duration::from_millis(10));
            drop(person);
            thread::sleep(Duration::from_millis(10));
            let samples = if i % FINISH_EVERY == 0 {
                scraper.finish(false).expect("profile builds").total(0)
            } else {
                drop(scraper);
                0
            };
            done.send((i, samples)).unwrap();
        }
    });

    let mut sampled = 0;
    for expected in 0..cycles {
        let (i, samples) = finished.recv_timeout(CYCLE_DEADLINE).unwrap_or_else(|_| {
            panic!("cycle {expected} did not finish within {CYCLE_DEADLINE:?}: hang")
        });
        assert_eq!(i, expected);
        sampled += samples;
    }
    assert!(!pyrometer::cpu::is_running(), "every window was closed");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker threads lived through the windows");
    }
    assert!(sampled > 0, "the profiles saw the busy threads");
}
