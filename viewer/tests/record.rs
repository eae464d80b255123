//! `pyrometer record` against a real agent on loopback, started inside this test process (so
//! the profile it takes is of this process): a CPU profile with a known hot function, a flame
//! graph, and the server's own messages for 401, 409 and 400.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{go_top, pyrometer, stderr};
use pyrometer::profile::pprof;

/// The CPU profiler is process-wide: one test at a time may use it.
static PROFILER: Mutex<()> = Mutex::new(());

fn agent(token: Option<&str>) -> pyrometer::AgentHandle {
    let mut builder = pyrometer::Agent::builder().bind("127.0.0.1:0".parse().unwrap());
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder.start().expect("the agent starts on loopback")
}

#[inline(never)]
fn record_test_busy_loop(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    x
}

/// Burns CPU on a thread until dropped.
struct Busy(Arc<AtomicBool>, Option<std::thread::JoinHandle<u64>>);

impl Busy {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Busy(
            stop,
            Some(std::thread::spawn(move || record_test_busy_loop(&flag))),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        let _ = self.1.take().map(|t| t.join());
    }
}

fn record(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pyrometer"));
    command
        .arg("record")
        .args(args)
        .env_remove("PYROMETER_TOKEN");
    if let Some(token) = token {
        command.env("PYROMETER_TOKEN", token);
    }
    command.output().unwrap()
}

#[test]
fn records_a_cpu_profile_that_go_tool_pprof_reads() {
    let _one = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let agent = agent(None);
    let _busy = Busy::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    let url = format!("http://{}", agent.local_addr());
    let out = record(
        &[&url, "--seconds", "2", "-o", file.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let profile = pprof::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert!(profile.sample_types.iter().any(|t| t.kind == "cpu"));
    let go = go_top(&file, &["-unit=ns"]);
    assert!(
        go.rows
            .keys()
            .any(|name| name.contains("record_test_busy_loop")),
        "the hot function is in go's top: {:?}",
        go.names
    );
    // The same through the viewer's own table.
    let top = pyrometer(
        &["top", file.to_str().unwrap(), "--by", "total", "-n", "0"],
        b"",
    );
    assert!(String::from_utf8_lossy(&top.stdout).contains("record_test_busy_loop"));

    let svg = dir.path().join("cpu.svg");
    let out = record(
        &[&url, "--seconds", "1", "--svg", "-o", svg.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("record_test_busy_loop"));
}

#[test]
fn shows_the_servers_message_for_401_and_sends_the_token() {
    let _one = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let agent = agent(Some("s3cret-token"));
    let url = format!("http://{}/debug/pprof/profile", agent.local_addr());
    let out = record(&[&url, "--seconds", "1", "-o", "-"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("401") && err.contains("a token is required"),
        "{err}"
    );
    let out = record(&[&url, "--seconds", "1", "-o", "-"], Some("s3cret-token"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(pprof::decode(&out.stdout).is_ok());
}

#[test]
fn shows_the_servers_message_for_409_and_400() {
    let _one = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let agent = agent(None);
    let url = format!("http://{}", agent.local_addr());
    // A window at the default rate would join the running one: only another rate is refused.
    let first = {
        let url = format!("{url}/debug/pprof/profile?frequency=999");
        std::thread::spawn(move || record(&[&url, "--seconds", "3", "-o", "-"], None))
    };
    std::thread::sleep(Duration::from_millis(800));
    let other_rate = format!("{url}/debug/pprof/profile?frequency=500");
    let out = record(&[&other_rate, "--seconds", "1", "-o", "-"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("409")
            && err.contains("another CPU profile is running")
            && err.contains("retry after"),
        "{err}"
    );
    assert!(first.join().unwrap().status.success());

    let out = record(&[&url, "--seconds", "0", "-o", "-"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("400") && err.contains("seconds: expected a whole number from 1 to"),
        "{err}"
    );
}

#[test]
fn unreachable_agent_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = record(
        &[&format!("127.0.0.1:{port}"), "--seconds", "1", "-o", "-"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot get the profile") && err.contains(&port.to_string()),
        "{err}"
    );
}
