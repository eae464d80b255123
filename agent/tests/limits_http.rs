//! The agent under abuse, over real HTTP on loopback: windows past their limits are refused with a
//! 503 that says which limit and how to raise it, and a CPU window starts when it is asked for
//! while a storm of heap requests is being built.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{expect_error, get, loopback, start, PROFILER};
use pyrometer::heap::SamplingAllocator;
use pyrometer::profile::pprof;
use pyrometer::Limits;

#[global_allocator]
static ALLOC: SamplingAllocator = SamplingAllocator::system();

/// Starts a request in the background; aborting the task closes its connection.
fn open_window(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = reqwest::get(&url).await;
    })
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After on a 503 for a limit")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_past_a_limit_get_a_503_that_names_it() {
    common::install_span_layer();
    let limits = Limits::default().max_span_windows(2).max_windows(3);
    let (_agent, base) = start(loopback().limits(limits));

    let spans = [
        open_window(format!("{base}/debug/pprof/spans?seconds=20")),
        open_window(format!("{base}/debug/pprof/spans?seconds=20")),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The third span window is over its kind's limit.
    let response = get(&format!("{base}/debug/pprof/spans?seconds=1")).await;
    let wait = retry_after(&response);
    assert!((1..=21).contains(&wait), "Retry-After {wait}");
    let body = expect_error(response, 503).await;
    assert!(
        body.starts_with("2 span windows are open, the most allowed;"),
        "{body}"
    );
    assert!(
        body.contains("Limits::default().max_span_windows(N)"),
        "{body}"
    );
    assert!(body.contains("PYROMETER_MAX_SPAN_WINDOWS=N"), "{body}");

    // Another kind is under its own limit, and fills the agent's.
    let diagnose = open_window(format!("{base}/debug/pprof/diagnose?seconds=20"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = get(&format!("{base}/debug/pprof/heap?seconds=1")).await;
    retry_after(&response);
    let body = expect_error(response, 503).await;
    assert!(
        body.starts_with("3 windows of all kinds are open"),
        "{body}"
    );
    assert!(body.contains("PYROMETER_MAX_WINDOWS=N"), "{body}");

    // A client that goes away frees its window's place.
    for task in spans.iter().chain([&diagnose]) {
        task.abort();
    }
    let mut status = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = get(&format!("{base}/debug/pprof/spans?seconds=1"))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "a span window once the others are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_window_starts_on_time_during_a_heap_storm() {
    let _profiler = PROFILER.lock().await;
    let (_agent, base) = start(loopback());
    let client = reqwest::Client::new();
    // How late a window begins with nothing else going on: today's engine resolves a backtrace
    // when it starts (to warm its unwinder up), re-reading the debug info that the symbolizer
    // frees after each profile, about 0.5 s of CPU in a debug build. Only what the storm adds is
    // this test's business.
    let quiet = late_start(&client, &base).await;

    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let storm: Vec<_> = (0..100)
        .map(|_| {
            let (client, stop, in_flight) = (client.clone(), stop.clone(), in_flight.clone());
            let url = format!("{base}/debug/pprof/heap");
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let waiting = in_flight.load(Ordering::Relaxed);
    // The better of two, as the quiet figure itself varies by a second on a loaded machine.
    let late = late_start(&client, &base)
        .await
        .min(late_start(&client, &base).await);
    stop.store(true, Ordering::Relaxed);
    for task in storm {
        task.await.unwrap();
    }

    assert!(
        late - quiet < 0.5,
        "during the storm the CPU window began {late:.3} s after its request, {quiet:.3} s without"
    );
    assert!(
        waiting >= 90,
        "the storm was real: {waiting} heap requests were waiting when the CPU one was sent"
    );
}

/// Takes a 1-s CPU profile and returns how long after the request its window began, by the
/// profile's own `time_nanos`.
async fn late_start(client: &reqwest::Client, base: &str) -> f64 {
    let requested = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let response = client
        .get(format!("{base}/debug/pprof/profile?seconds=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let profile = pprof::decode(&response.bytes().await.unwrap()).expect("a CPU profile");
    let started = Duration::from_nanos(profile.time_nanos as u64);
    started.as_secs_f64() - requested.as_secs_f64()
}
