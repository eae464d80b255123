//! What the span layer costs a request, measured in CPU time in one process, so that the noise
//! of other processes (which swamps a throughput comparison on a two-core machine) cancels out.
//!
//! `cargo bench -p pyrometer --bench spans_overhead` runs the same synthetic request (a server
//! span with `http.route`, ten statement spans entered twice each as a future is polled, and
//! about half a millisecond of work) under three subscribers, round after round, in rotating
//! order: one that wants only warnings (so the spans are never created, as in a service without
//! the layer), one with the span layer behind its `WhileRecording` filter and no window open, and
//! the same with a window open. It prints the median per-request CPU time of each and the ratios
//! to the first, plus the layer's cost per span callback.
//!
//! Environment: `ROUNDS` (default 9), `REQUESTS` per round (default 2000), `WORK` (hash rounds
//! per statement, default 28000: about half a millisecond per request).

mod support;

use std::hash::{BuildHasher, Hasher};

use support::{env_or, median, thread_cpu_time};

use pyrometer::spans::{SpansLayer, WhileRecording, Window};
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

const STATEMENTS: usize = 10;

#[inline(never)]
fn work(rounds: u64) -> u64 {
    let state = std::collections::hash_map::RandomState::new();
    let mut h = state.build_hasher();
    for i in 0..rounds {
        h.write_u64(i);
    }
    h.finish()
}

fn request(id: u64, work_rounds: u64) {
    let root = tracing::info_span!("http.server", http.route = "/orders/{id}", http.request.method = "GET", url.path = %id);
    let _root = root.enter();
    for s in 0..STATEMENTS {
        let span = tracing::info_span!(
            "db.query",
            db.system.name = "sqlite",
            db.query.text = "SELECT * FROM order_lines WHERE order_id = ?"
        );
        // Two polls, as a future that waits once would be.
        for _ in 0..2 {
            let _entered = span.enter();
            std::hint::black_box(work(work_rounds / 2 + s as u64));
        }
    }
}

/// CPU time per request, in nanoseconds, over `requests` requests under `dispatch`.
fn run(dispatch: &Dispatch, window: bool, requests: u64, work_rounds: u64) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let open = window.then(|| Window::open().expect("layer installed"));
        let start = thread_cpu_time();
        for id in 0..requests {
            request(id, work_rounds);
        }
        let elapsed = thread_cpu_time() - start;
        if let Some(w) = open {
            std::hint::black_box(w.finish().traces.len());
        }
        elapsed.as_nanos() as f64 / requests as f64
    })
}

fn main() {
    let quick = !support::full_run();
    let rounds = if quick {
        1
    } else {
        env_or("ROUNDS", 9) as usize
    };
    let requests = if quick { 20 } else { env_or("REQUESTS", 2000) };
    let work_rounds = env_or("WORK", 28_000);

    // A service whose only other layer logs warnings: its info spans are never created.
    let plain = Dispatch::new(tracing_subscriber::registry().with(LevelFilter::WARN));
    let layered = Dispatch::new(
        tracing_subscriber::registry().with(SpansLayer::new().with_filter(WhileRecording)),
    );
    let configs: [(&str, &Dispatch, bool); 3] = [
        ("no span layer", &plain, false),
        ("layer, no window", &layered, false),
        ("layer, window open", &layered, true),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for (_, dispatch, window) in configs {
        run(dispatch, window, requests / 10 + 1, work_rounds); // warm-up
    }
    for round in 0..rounds {
        for k in 0..3 {
            let i = (round + k) % 3;
            let (_, dispatch, window) = configs[i];
            times[i].push(run(dispatch, window, requests, work_rounds));
        }
    }

    println!(
        "spans_overhead: {requests} requests x {rounds} rounds, {STATEMENTS} statement spans per request (medians)"
    );
    let base: Vec<f64> = times[0].clone();
    for (i, (name, _, _)) in configs.iter().enumerate() {
        let ratio = median(times[i].iter().zip(&base).map(|(t, b)| t / b).collect());
        println!(
            "{name:<20} {:>10.1} µs CPU per request {ratio:>8.3}x",
            median(times[i].clone()) / 1000.0
        );
    }
    // 1 server span + STATEMENTS spans; each span: new, 2 enters/exits (root: 1), close.
    let callbacks = (1 + STATEMENTS) as f64 * 2.0 + STATEMENTS as f64 * 4.0 + 2.0;
    for (i, name) in [(1, "no window"), (2, "window open")] {
        let extra = median(times[i].iter().zip(&base).map(|(t, b)| t - b).collect());
        println!(
            "layer cost per callback, {name}: {:.0} ns ({callbacks:.0} callbacks per request)",
            extra / callbacks
        );
    }
}
