//! The span layer between windows changes nothing the service had without it: not
//! `LevelFilter::current()`, not an `enabled!` answer, not the debug work a `debug!` does.
//!
//! The maximum level and the callsites' interest are process-wide, so each subscriber runs in a
//! child process of its own: every test re-runs this binary on itself with `CHILD` set to a case,
//! and the child prints what it saw on one line per state (`idle`, `open`, `closed`).

use std::fmt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyrometer::spans::{SpansLayer, WhileRecording, Window};
use tracing::level_filters::LevelFilter;
use tracing::Level;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

const CHILD: &str = "PYROMETER_SPANS_IDLE_CHILD";

/// How many times a `debug!` formatted its argument: the work a library does for its debug
/// logging once the event is enabled.
static FORMATTED: AtomicUsize = AtomicUsize::new(0);

struct Costly;

impl fmt::Debug for Costly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::Relaxed);
        f.write_str("costly")
    }
}

/// What the service's code and its libraries see of the subscriber, from the same callsites
/// each time (their cached interest is what a rebuild must change).
fn state() -> String {
    let before = FORMATTED.load(Ordering::Relaxed);
    tracing::debug!(value = ?Costly, "debug work");
    tracing::trace!(value = ?Costly, "trace work");
    format!(
        "current={} debug={} trace={} sqlx_debug={} debug_span={} trace_span={} formatted={}",
        LevelFilter::current(),
        tracing::enabled!(Level::DEBUG),
        tracing::enabled!(Level::TRACE),
        tracing::enabled!(target: "sqlx::query", Level::DEBUG),
        tracing::span_enabled!(Level::DEBUG),
        tracing::span_enabled!(Level::TRACE),
        FORMATTED.load(Ordering::Relaxed) - before,
    )
}

fn spans<S>(layer: &str) -> Option<Filtered<SpansLayer, WhileRecording, S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    (layer == "layer").then(|| SpansLayer::new().with_filter(WhileRecording))
}

/// Installs the case's subscriber, prints the states, and with the layer also checks that sqlx's
/// statements reach an open window.
fn child(case: &str) {
    let (filter, layer) = case.split_once(',').unwrap();
    match filter {
        "fmt_info" => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(LevelFilter::INFO),
            )
            .with(spans(layer))
            .init(),
        "env_filter" => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(EnvFilter::new("info")),
            )
            .with(spans(layer))
            .init(),
        other => panic!("unknown case {other}"),
    }
    report(format!("idle {}", state()));
    if layer == "layer" {
        let window = Window::open().unwrap();
        report(format!("open {}", state()));
        let statements = sqlx_statements_seen(window);
        report(format!("sqlx statements seen in the window: {statements}"));
        report(format!("closed {}", state()));
    }
}

/// Runs real SQLite statements through sqlx inside a request span while `window` is open, and
/// counts the statements the window recorded under the request.
fn sqlx_statements_seen(window: Window) -> usize {
    use pyrometer::spans::trace::Kind;
    use tracing::Instrument;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        async {
            sqlx::query("CREATE TABLE t (x INTEGER)")
                .execute(&db)
                .await
                .unwrap();
            sqlx::query("SELECT count(*) FROM t")
                .execute(&db)
                .await
                .unwrap();
        }
        .instrument(tracing::info_span!("http.server", http.route = "/count"))
        .await;
        // SQLite's worker thread logs each statement inside a clone of the request span, and
        // the request ends when that clone is dropped: closing the pool waits for it.
        db.close().await;
    });
    window
        .finish()
        .traces
        .iter()
        .filter(|t| matches!(&t.root.kind, Kind::Request { route, .. } if route == "/count"))
        .flat_map(|t| &t.root.children)
        .filter(|n| matches!(&n.kind, Kind::Db { statement } if statement.contains("count(*)")))
        .count()
}

/// Marks the child's lines among the test harness's own.
const REPORTED: &str = ">> ";

fn report(line: String) {
    println!("\n{REPORTED}{line}");
}

fn run(case: &str) -> Vec<String> {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            test_name(case),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, case)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child {case} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(REPORTED))
        .map(str::to_owned)
        .collect()
}

fn test_name(case: &str) -> &'static str {
    if case.starts_with("fmt_info") {
        "fmt_layer_at_info"
    } else {
        "env_filter_info"
    }
}

/// Without the layer, with it and no window, with a window open, and after it closed.
fn check(filter: &str) {
    let without = run(&format!("{filter},none"));
    let with = run(&format!("{filter},layer"));
    let idle = "current=info debug=false trace=false sqlx_debug=false debug_span=false \
                trace_span=false formatted=0";
    assert_eq!(without, [format!("idle {idle}")]);
    assert_eq!(
        with,
        [
            format!("idle {idle}"),
            "open current=trace debug=false trace=false sqlx_debug=true debug_span=true \
             trace_span=true formatted=0"
                .to_string(),
            "sqlx statements seen in the window: 1".to_string(),
            format!("closed {idle}"),
        ]
    );
}

#[test]
fn fmt_layer_at_info() {
    match std::env::var(CHILD) {
        Ok(case) => child(&case),
        Err(_) => check("fmt_info"),
    }
}

#[test]
fn env_filter_info() {
    match std::env::var(CHILD) {
        Ok(case) => child(&case),
        Err(_) => check("env_filter"),
    }
}
