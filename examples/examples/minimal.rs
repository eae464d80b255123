//! The smallest service with the agent: an axum app whose one route does real work (builds,
//! hashes and sorts records), plus the one line that starts pyrometer.
//!
//! ```sh
//! cargo run --release --example minimal
//! curl -o cpu.svg 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10&format=svg'
//! ```
//!
//! The service listens on `MINIMAL_ADDR` (default 127.0.0.1:3000), the agent on `PYROMETER_ADDR`
//! (default 127.0.0.1:6060). Unless started with `--no-load`, it also sends itself a steady trickle
//! of requests over loopback, so that a profile taken right away shows the request path rather
//! than an idle process. If the profiler cannot start (its port is taken, say), one line on
//! standard error says why, and the service runs without it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

/// Samples allocations for `/debug/pprof/heap` and `/debug/pprof/allocs` (one line, optional).
#[global_allocator]
static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();

#[derive(Deserialize)]
struct Work {
    items: Option<usize>,
}

/// Builds `items` records, hashes each, sorts them by hash, and reports the smallest.
async fn work(Query(work): Query<Work>) -> Result<String, (StatusCode, String)> {
    let items = work.items.unwrap_or(20_000);
    if !(1..=1_000_000).contains(&items) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("items: expected 1 to 1000000, got {items}\n"),
        ));
    }
    let smallest = tokio::task::spawn_blocking(move || build_hash_and_sort(items))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(format!("{items} items, smallest hash {smallest:016x}\n"))
}

#[inline(never)]
fn build_hash_and_sort(items: usize) -> u64 {
    let mut records: Vec<(u64, String)> = (0..items)
        .map(|i| {
            let name = format!("customer-{i}-order-{}", i * 7919 % 1000);
            let mut hasher = DefaultHasher::new();
            name.hash(&mut hasher);
            (hasher.finish(), name)
        })
        .collect();
    records.sort_unstable();
    records.first().map_or(0, |r| r.0)
}

/// Sends requests to this same service over loopback, one at a time, until the process ends.
async fn self_load(addr: SocketAddr) {
    let url = format!("http://{addr}/work?items=20000");
    let client = reqwest::Client::new();
    loop {
        if client.get(&url).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // The one line: serves /debug/pprof/ on 127.0.0.1:6060 (or PYROMETER_ADDR) until dropped. If
    // the profiler cannot start, it says why in one line and the service runs without it.
    let agent = pyrometer::Agent::builder().start_or_log();

    match serve(agent.as_ref().map(|a| a.local_addr())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimal: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(profiler: Option<SocketAddr>) -> Result<(), String> {
    let app = Router::new().route("/work", get(work));
    let listen = std::env::var("MINIMAL_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} (set MINIMAL_ADDR to change it): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("service:  http://{addr}/work?items=20000");
    match profiler {
        Some(profiler) => print_profiler_help(profiler),
        None => println!("profiler: off"),
    }
    if !std::env::args().any(|a| a == "--no-load") {
        println!(
            "\n(sending itself requests so that profiles show work; --no-load turns this off)"
        );
        tokio::spawn(self_load(addr));
    }
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serving on {addr} failed: {e}"))
}

fn print_profiler_help(profiler: SocketAddr) {
    println!("profiler: http://{profiler}/debug/pprof/");
    println!();
    println!("try:");
    println!("  curl -o cpu.svg 'http://{profiler}/debug/pprof/profile?seconds=10&format=svg'   # open in a browser");
    println!("  curl -o cpu.pb.gz 'http://{profiler}/debug/pprof/profile?seconds=10'");
    println!("  go tool pprof -top cpu.pb.gz");
    println!("  curl -o allocs.svg 'http://{profiler}/debug/pprof/allocs?seconds=10&format=svg'");
    println!("  cargo run --release -p pyrometer-viewer -- flamegraph cpu.pb.gz -o cpu-local.svg");
}
