//! Memory the heap profiler holds: idle, and after an allocation window on a busy service.
//!
//! `cargo bench -p pyrometer --bench heap_memory` starts the agent on a loopback port, measures
//! the idle state, then runs two threads of "request handling" that allocate from 64 distinct
//! call stacks (8 handlers at 8 recursion depths) as fast as they can, and takes
//! `/debug/pprof/allocs?seconds=30` over loopback while they run. It reports
//! - the bytes the sampler's tables take from the system allocator (exact), idle, at the peak of
//!   the window and after it;
//! - the live heap allocated from the agent's own code (its server thread, symbolization caches),
//!   as the sampler itself estimates it;
//! - the process's resident memory, for context (it includes the load's own heap).
//!
//! Environment: `WINDOW` seconds (default 30).

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrometer::heap::{self, SamplingAllocator, Snapshot};

#[path = "../tests/common/mod.rs"]
mod common;

#[global_allocator]
static ALLOC: SamplingAllocator = SamplingAllocator::system();

/// One request: a handler chosen by `route` at recursion depth `depth`, so that 64 distinct
/// stacks allocate.
#[inline(never)]
fn handle(route: u64, depth: u64, seed: u64) -> usize {
    if depth > 0 {
        return black_box(handle(route, depth - 1, seed.rotate_left(7)));
    }
    match route {
        0 => format!("GET /items/{seed}?page={}", seed % 97).len(),
        1 => (0..(seed % 200) as u32).collect::<Vec<_>>().len(),
        2 => {
            let mut map = HashMap::new();
            for k in 0..(seed % 32) {
                map.insert(k, k.to_string());
            }
            map.len()
        }
        3 => vec![0u8; 64 + (seed % 4000) as usize].len(),
        4 => serde_like(seed).len(),
        5 => black_box(Box::new([seed; 16])).len(),
        6 => String::from_utf8_lossy(&seed.to_le_bytes())
            .into_owned()
            .len(),
        _ => (0..8).map(|i| vec![i as u8; 100]).collect::<Vec<_>>().len(),
    }
}

#[inline(never)]
fn serde_like(seed: u64) -> String {
    let mut out = String::from("{");
    for i in 0..(seed % 16) {
        out.push_str(&format!("\"field{i}\":{},", seed.wrapping_mul(i)));
    }
    out.push('}');
    out
}

fn load(stop: &AtomicBool, requests: &AtomicUsize) {
    let mut x: u64 = 0x9E37_79B9;
    while !stop.load(Ordering::Relaxed) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        black_box(handle((x >> 60) % 8, (x >> 56) % 8, x));
        requests.fetch_add(1, Ordering::Relaxed);
    }
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// A plain HTTP/1.1 GET on loopback; returns the body's length.
fn fetch(addr: std::net::SocketAddr, path: &str) -> usize {
    let mut stream = TcpStream::connect(addr).expect("agent listens");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response[..head_end])
    );
    response.len() - head_end - 4
}

/// The live heap allocated from stacks that run through the agent's code, by the sampler's own
/// estimate.
fn agent_live_bytes() -> i64 {
    let profile = Snapshot::take().profile("inuse_space");
    common::total_where(&profile, 3, |name| name.contains("pyrometer::"))
}

fn kib(bytes: impl Into<f64>) -> String {
    format!("{:.0} KiB", bytes.into() / 1024.0)
}

fn main() {
    let quick = !support::full_run();
    let window: u64 = if quick {
        1
    } else {
        std::env::var("WINDOW")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
    };
    let agent = pyrometer::Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .expect("agent starts");
    std::thread::sleep(Duration::from_millis(500));
    let idle = heap::stats().expect("the sampling allocator is installed");
    let idle_rss = resident_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || load(&stop, &requests))
        })
        .collect();
    let peak = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = heap::stats() {
                    peak.fetch_max(s.held_bytes, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let start = Instant::now();
    let body = fetch(
        agent.local_addr(),
        &format!("/debug/pprof/allocs?seconds={window}"),
    );
    let elapsed = start.elapsed();
    let after = heap::stats().unwrap();
    let after_rss = resident_bytes();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    monitor.join().unwrap();
    let agent_live = agent_live_bytes();

    println!(
        "heap_memory: {window} s allocs window, 2 threads, {} requests from 64 stacks, response {} bytes in {:.1} s",
        requests.load(Ordering::Relaxed),
        body,
        elapsed.as_secs_f64()
    );
    println!(
        "sampler tables: idle {} ({} stacks, {} live samples), peak in window {}, after {} ({} stacks, {} live samples, {} dropped)",
        kib(idle.held_bytes as f64),
        idle.stacks,
        idle.live_samples,
        kib(peak.load(Ordering::Relaxed) as f64),
        kib(after.held_bytes as f64),
        after.stacks,
        after.live_samples,
        after.dropped,
    );
    println!(
        "live heap from the agent's own code (sampler's estimate, after the window): {}",
        kib(agent_live as f64)
    );
    println!(
        "process resident memory: idle {}, after the window {}",
        kib(idle_rss as f64),
        kib(after_rss as f64)
    );
}
