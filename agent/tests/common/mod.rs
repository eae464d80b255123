//! Helpers shared by the agent's integration tests: a real agent on a loopback port, an HTTP
//! client, go tool pprof as the reference reader, and CPU burners with recognizable names.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use pyrometer::{Agent, AgentBuilder, AgentHandle};

/// The CPU profiler is one per process; tests that take profiles hold this so they do not get
/// each other's 409s or each other's samples.
pub static PROFILER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn loopback() -> AgentBuilder {
    Agent::builder().bind("127.0.0.1:0".parse().unwrap())
}

pub fn start(builder: AgentBuilder) -> (AgentHandle, String) {
    let handle = builder.start().expect("agent starts");
    let base = format!("http://{}", handle.local_addr());
    (handle, base)
}

pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

pub async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.expect("request is answered")
}

/// Asserts a failure response as DESIGN.md specifies it, and returns its body.
pub async fn expect_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("x-go-pprof")
            .map(|v| v.to_str().unwrap()),
        Some("1"),
        "X-Go-Pprof header"
    );
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = response.text().await.unwrap();
    assert_eq!(
        body.trim_end().lines().count(),
        1,
        "one-line body: {body:?}"
    );
    body
}

/// Runs `go tool pprof ARGS FILE` and returns its standard output.
pub fn go_tool_pprof(args: &[&str], file: &Path) -> String {
    let output = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("go tool pprof runs (install Debian's golang-go)");
    assert!(
        output.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Threads that spin in [`pyrometer_test_burn_cpu`] until dropped.
pub struct Burners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Burners {
    pub fn start(count: usize) -> Burners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("burner-{i}"))
                    .spawn(move || pyrometer_test_burn_cpu(&stop))
                    .unwrap()
            })
            .collect();
        Burners { stop, threads }
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[inline(never)]
pub fn pyrometer_test_burn_cpu(stop: &AtomicBool) {
    let mut x: u64 = 1;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = std::hint::black_box(
                x.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            );
        }
    }
    std::hint::black_box(x);
}

/// Writes bytes to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pyrometer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// CPU time used so far by the whole process (user and system, all threads).
///
/// pprof's timer is process-wide: it fires per 1/frequency of the process's CPU time and the
/// signal lands on whichever thread is running, so this, not wall time, is what a CPU profile's
/// sample count should match. On an idle machine the two agree.
pub fn process_cpu_time() -> std::time::Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let time =
        |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The sum of sample value `index` over the samples whose stack has a frame of a function named
/// `function` (the last segment of its path, so `site_a` matches `heap_accuracy::site_a`).
pub fn total_at(profile: &pyrometer::profile::Profile, function: &str, index: usize) -> i64 {
    total_where(profile, index, |name| {
        name.rsplit("::").next() == Some(function)
    })
}

/// The sum of sample value `index` over the samples with a frame whose function name satisfies
/// `matches`.
pub fn total_where(
    profile: &pyrometer::profile::Profile,
    index: usize,
    matches: impl Fn(&str) -> bool,
) -> i64 {
    profile
        .samples
        .iter()
        .filter(|s| profile.frames(s).any(|f| matches(&f.function.name)))
        .map(|s| s.values[index])
        .sum()
}

/// Parses an SVG flame graph as XML (inferno's output declares a DTD), failing on malformed XML.
pub fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(svg, options).expect("well-formed SVG")
}

/// Periods in stacks rooted at a thread named `thread` (from a `per_thread` profile).
pub fn periods_on_thread(profile: &pyrometer::profile::Profile, thread: &str) -> i64 {
    profile
        .samples
        .iter()
        .filter(|s| {
            profile
                .frames(s)
                .last()
                .is_some_and(|f| f.function.name == thread)
        })
        .map(|s| s.values[0])
        .sum()
}

/// Installs pyrometer's span layer, filtered by `WhileRecording`, as the process's subscriber
/// (once per test binary).
pub fn install_span_layer() {
    use pyrometer::spans::{SpansLayer, WhileRecording};
    use tracing_subscriber::prelude::*;

    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::registry()
            .with(SpansLayer::new().with_filter(WhileRecording))
            .init();
    });
}
