//! The sampler under the conditions that deadlocked pprof's framehop unwinder: profiles started
//! and stopped over and over while threads allocate, free, and come and go. A hang fails the test
//! through its own deadline instead of blocking CI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

const PROFILES: usize = 50;
const DEADLINE: Duration = Duration::from_secs(120);

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

#[test]
fn fifty_short_profiles_while_threads_allocate_and_come_and_go() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || churn_allocations(&stop))
        })
        .collect();
    workers.push({
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = thread::spawn(|| std::hint::black_box(vec![0u8; 1024]).len());
                let _ = t.join();
            }
        })
    });

    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        for i in 0..PROFILES {
            let session = pyrometer::cpu::start(999, Duration::from_millis(200))
                .unwrap_or_else(|e| panic!("profile {i} did not start: {e}"));
            thread::sleep(Duration::from_millis(200));
            let profile = session.finish(false).expect("profile builds");
            done.send((i, profile.total(0))).unwrap();
        }
    });

    let mut sampled = 0;
    for expected in 0..PROFILES {
        let (i, samples) = finished.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!("profile {expected} did not finish within {DEADLINE:?}: hang")
        });
        assert_eq!(i, expected);
        sampled += samples;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker threads lived through the profiles");
    }
    assert!(sampled > 0, "the profiles saw the busy threads");
}
