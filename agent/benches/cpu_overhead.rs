//! What a running CPU profile costs a CPU-bound service, and how faithfully it samples.
//!
//! `cargo bench -p pyrometer --bench cpu_overhead` runs a fixed amount of work on two threads,
//! round after round, rotating between no profile, a 99 Hz profile and a 999 Hz profile, so that
//! all three see the same machine noise. For each it reports the median over rounds of
//! - the process CPU time the work took, relative to no profile (the throughput cost), and the
//!   wall time likewise;
//! - samples taken / (busy threads x frequency x wall seconds), the fidelity the issue asks for,
//!   and samples / (process CPU seconds x frequency), which is what a process-wide timer can
//!   deliver on a machine where other processes compete for the cores.
//!
//! Environment: `ROUNDS` (default 9), `WORK` (iterations per thread per round, default 400M).

mod support;

use std::time::{Duration, Instant};

use support::{env_or, median, process_cpu_time};

const THREADS: usize = 2;

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

struct Round {
    wall: Duration,
    cpu: Duration,
    samples: i64,
}

fn run(work: u64, frequency: Option<u32>) -> Round {
    let session = frequency
        .map(|f| pyrometer::cpu::start(f, Duration::from_secs(60)).expect("profiler starts"));
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| std::thread::spawn(move || spin(work)))
        .collect();
    for t in threads {
        std::hint::black_box(t.join().unwrap());
    }
    let wall = start.elapsed();
    let cpu = process_cpu_time() - cpu_before;
    let samples = session.map_or(0, |s| s.finish(false).expect("profile builds").total(0));
    Round { wall, cpu, samples }
}

fn main() {
    let quick = !support::full_run();
    let rounds = if quick {
        1
    } else {
        env_or("ROUNDS", 9) as usize
    };
    let work = if quick {
        1_000_000
    } else {
        env_or("WORK", 400_000_000)
    };
    let configs: [Option<u32>; 3] = [None, Some(99), Some(999)];
    let mut results: Vec<Vec<Round>> = configs.iter().map(|_| Vec::new()).collect();

    run(work / 10, Some(99)); // warm up: the first profile loads the unwinder's tables
    for round in 0..rounds {
        // Rotate the order so no configuration always runs first after a pause.
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            results[i].push(run(work, configs[i]));
        }
    }

    println!("cpu_overhead: {THREADS} threads x {work} iterations, {rounds} rounds (medians)");
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "profile", "wall s", "wall x", "cpu s", "cpu x", "fidelity", "per-cpu-s"
    );
    for (i, frequency) in configs.iter().enumerate() {
        let wall_ratio = median(
            (0..rounds)
                .map(|r| results[i][r].wall.as_secs_f64() / results[0][r].wall.as_secs_f64())
                .collect(),
        );
        let cpu_ratio = median(
            (0..rounds)
                .map(|r| results[i][r].cpu.as_secs_f64() / results[0][r].cpu.as_secs_f64())
                .collect(),
        );
        let (fidelity, per_cpu) = match frequency {
            None => ("-".to_string(), "-".to_string()),
            Some(f) => {
                let f = f64::from(*f);
                let fidelity = median(
                    results[i]
                        .iter()
                        .map(|r| r.samples as f64 / (THREADS as f64 * f * r.wall.as_secs_f64()))
                        .collect(),
                );
                let per_cpu = median(
                    results[i]
                        .iter()
                        .map(|r| r.samples as f64 / (f * r.cpu.as_secs_f64()))
                        .collect(),
                );
                (format!("{fidelity:.3}"), format!("{per_cpu:.3}"))
            }
        };
        let name = frequency.map_or("none".to_string(), |f| format!("{f} Hz"));
        println!(
            "{name:<12} {:>10.3} {wall_ratio:>10.3} {:>10.3} {cpu_ratio:>10.3} {fidelity:>12} {per_cpu:>12}",
            median(results[i].iter().map(|r| r.wall.as_secs_f64()).collect()),
            median(results[i].iter().map(|r| r.cpu.as_secs_f64()).collect()),
        );
    }
}
