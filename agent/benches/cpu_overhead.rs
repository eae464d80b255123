//! How faithfully each CPU engine samples, and what a running profile costs a CPU-bound service.
//!
//! `cargo bench -p pyrometer --bench cpu_overhead` (or `scripts/bench-cpu.sh`) prints two tables,
//! each engine side by side in the same run, medians over rounds:
//!
//! 1. Fidelity, for each engine, rate (99, 999 Hz), number of busy threads (1, 2, 4, 8), with and
//!    without a competing CPU hog (another process spinning): periods sampled / (rate x the
//!    process's CPU seconds over the window); the largest gap, in points, between a busy thread's
//!    share of the samples and its share of the process's CPU time read from its own exact clock;
//!    and, for a thread that wakes every 2 ms for a short burst, its sampled share over its true
//!    share.
//! 2. Cost: a fixed amount of work on two threads, rotating between no profile and each engine at
//!    99 and 999 Hz so that all see the same machine noise: process CPU time and wall time
//!    relative to no profile.
//!
//! Environment: `ROUNDS` (fidelity rounds, default 3), `WINDOW_MS` (default 1000), `COST_ROUNDS`
//! (default 9), `WORK` (iterations per thread per cost round, default 400M).

mod support;

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrometer::cpu::{self, Engine};
use support::{env_or, median, process_cpu_time, thread_cpu_time};

const ENGINES: [Engine; 3] = [Engine::PerfEvent, Engine::ThreadTimer, Engine::Setitimer];
const RATES: [u32; 2] = [99, 999];
const THREADS: [usize; 4] = [1, 2, 4, 8];

#[inline(never)]
fn spin(iterations: u64) -> u64 {
    let mut x: u64 = 1;
    for _ in 0..iterations {
        x = std::hint::black_box(
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    x
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// Runs `work` until the phase is STOPPED; returns the CPU time the thread used while MEASURING.
fn measured(phase: &AtomicU8, mut work: impl FnMut()) -> Duration {
    let mut from = None;
    loop {
        match phase.load(Ordering::Relaxed) {
            WARMING => {}
            MEASURING => {
                from.get_or_insert_with(thread_cpu_time);
            }
            _ => return from.map_or(Duration::ZERO, |f| thread_cpu_time() - f),
        }
        work();
    }
}

struct Fidelity {
    ratio: f64,
    worst_share_gap: f64,
    waker_ratio: f64,
}

fn fidelity_round(engine: Engine, rate: u32, busy: usize, window: Duration) -> Fidelity {
    let phase = Arc::new(AtomicU8::new(WARMING));
    let mut threads: Vec<(String, std::thread::JoinHandle<Duration>)> = (0..busy)
        .map(|i| {
            let phase = phase.clone();
            let name = format!("busy-{i}");
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    measured(&phase, || {
                        spin(10_000);
                    })
                })
                .unwrap();
            (name, handle)
        })
        .collect();
    threads.push(("waker".to_string(), {
        let phase = phase.clone();
        std::thread::Builder::new()
            .name("waker".into())
            .spawn(move || {
                measured(&phase, || {
                    std::thread::sleep(Duration::from_millis(2));
                    spin(20_000);
                })
            })
            .unwrap()
    }));
    std::thread::sleep(Duration::from_millis(50));

    let session = cpu::start_with(Some(engine), rate, window).expect("engine starts");
    let cpu_from = process_cpu_time();
    phase.store(MEASURING, Ordering::Relaxed);
    std::thread::sleep(window);
    phase.store(STOPPED, Ordering::Relaxed);
    let clocks: Vec<(String, Duration)> = threads
        .into_iter()
        .map(|(name, t)| (name, t.join().unwrap()))
        .collect();
    let process = (process_cpu_time() - cpu_from).as_secs_f64();
    let profile = session.finish(true).expect("profile builds");

    let total = profile.total(0) as f64;
    let share = |name: &str| common::periods_on_thread(&profile, name) as f64 / total;
    let truth = |cpu: &Duration| cpu.as_secs_f64() / process;
    let worst_share_gap = clocks
        .iter()
        .filter(|(name, _)| name.starts_with("busy-"))
        .map(|(name, cpu)| (share(name) - truth(cpu)).abs() * 100.0)
        .fold(0.0, f64::max);
    let waker = &clocks.last().unwrap().1;
    Fidelity {
        ratio: total / (f64::from(rate) * process),
        worst_share_gap,
        waker_ratio: share("waker") / truth(waker),
    }
}

/// Another process spinning on one core for as long as it lives.
fn hog() -> Child {
    Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("sh runs")
}

fn fidelity_table(rounds: usize, window: Duration) {
    println!(
        "fidelity: {rounds} rounds of {} ms per row (medians); share gap in points; waker = a \
         thread that wakes every 2 ms, sampled share / true share",
        window.as_millis()
    );
    println!(
        "{:<10} {:>6} {:>8} {:>5} {:>10} {:>10} {:>8}",
        "engine", "rate", "threads", "hog", "fidelity", "share gap", "waker"
    );
    for with_hog in [false, true] {
        let mut hog = with_hog.then(hog);
        for rate in RATES {
            for busy in THREADS {
                for engine in ENGINES {
                    let results: Vec<Fidelity> = (0..rounds)
                        .map(|_| fidelity_round(engine, rate, busy, window))
                        .collect();
                    let m = |f: fn(&Fidelity) -> f64| median(results.iter().map(f).collect());
                    println!(
                        "{:<10} {:>6} {:>8} {:>5} {:>10.3} {:>10.2} {:>8.2}",
                        engine.name(),
                        rate,
                        busy,
                        if with_hog { "yes" } else { "no" },
                        m(|r| r.ratio),
                        m(|r| r.worst_share_gap),
                        m(|r| r.waker_ratio),
                    );
                }
            }
        }
        if let Some(hog) = hog.as_mut() {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

struct Cost {
    wall: Duration,
    cpu: Duration,
}

fn cost_round(work: u64, profile: Option<(Engine, u32)>) -> Cost {
    let session = profile.map(|(engine, rate)| {
        cpu::start_with(Some(engine), rate, Duration::from_secs(60)).expect("engine starts")
    });
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || spin(work)))
        .collect();
    for t in threads {
        std::hint::black_box(t.join().unwrap());
    }
    let cost = Cost {
        wall: start.elapsed(),
        cpu: process_cpu_time() - cpu_before,
    };
    drop(session);
    cost
}

fn cost_table(rounds: usize, work: u64) {
    let configs: Vec<Option<(Engine, u32)>> = std::iter::once(None)
        .chain(ENGINES.iter().flat_map(|&e| RATES.map(|r| Some((e, r)))))
        .collect();
    let mut results: Vec<Vec<Cost>> = configs.iter().map(|_| Vec::new()).collect();
    cost_round(work / 10, Some((Engine::PerfEvent, 99))); // warm up
    for round in 0..rounds {
        // Rotate the order so no configuration always runs first after a pause.
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            results[i].push(cost_round(work, configs[i]));
        }
    }
    println!("cost: 2 threads x {work} iterations, {rounds} rounds (medians of per-round ratios)");
    println!(
        "{:<16} {:>10} {:>10} {:>10}",
        "profile", "cpu s", "cpu x", "wall x"
    );
    for (i, config) in configs.iter().enumerate() {
        let ratio = |f: fn(&Cost) -> Duration| {
            median(
                (0..rounds)
                    .map(|r| f(&results[i][r]).as_secs_f64() / f(&results[0][r]).as_secs_f64())
                    .collect(),
            )
        };
        let name = config.map_or("none".to_string(), |(e, r)| format!("{e} {r} Hz"));
        println!(
            "{name:<16} {:>10.3} {:>10.3} {:>10.3}",
            median(results[i].iter().map(|r| r.cpu.as_secs_f64()).collect()),
            ratio(|c| c.cpu),
            ratio(|c| c.wall),
        );
    }
}

fn main() {
    let full = support::full_run();
    if full {
        fidelity_table(
            env_or("ROUNDS", 3),
            Duration::from_millis(env_or("WINDOW_MS", 1000)),
        );
        cost_table(env_or("COST_ROUNDS", 9), env_or("WORK", 400_000_000));
    } else {
        // `cargo test --benches`: once, quickly.
        let f = fidelity_round(Engine::PerfEvent, 999, 1, Duration::from_millis(100));
        assert!(f.ratio > 0.0);
        cost_table(1, 1_000_000);
    }
}
