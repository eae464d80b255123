//! CPU profiles over real HTTP on loopback, read back by our decoder and by go tool pprof.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    expect_error, get, go_tool_pprof, loopback, parse_svg, process_cpu_time, start, temp_file,
    Burners, PROFILER,
};
use pyrometer::profile::{folded, pprof, Profile};

const BURNER: &str = "pyrometer_test_burn_cpu";
const FORBIDDEN_FRAMES: &[&str] = &[
    "perf_signal_handler",
    "pyrometer::cpu::handler",
    "pprof::profiler",
    "backtrace::backtrace::",
    "__restore_rt",
];

fn count_with(profile: &Profile, needle: &str) -> i64 {
    profile
        .samples
        .iter()
        .filter(|s| profile.frames(s).any(|f| f.function.name.contains(needle)))
        .map(|s| s.values[0])
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_two_busy_threads_in_every_format() {
    let _lock = PROFILER.lock().await;
    let (_agent, base) = start(loopback());
    let _burners = Burners::start(2);

    // pprof, decoded by us. The samples should account for the process's CPU time over the same
    // two seconds: 2 threads x 2 s on an idle machine, less when other processes compete.
    let request = tokio::spawn(get_owned(format!("{base}/debug/pprof/profile?seconds=2")));
    let cpu_before = process_cpu_time();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = process_cpu_time() - cpu_before;
    let response = request.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let bytes = response.bytes().await.unwrap();
    assert!(pprof::is_gzip(&bytes), "pprof output is gzip-compressed");
    let profile = pprof::decode(&bytes).unwrap();
    let kinds: Vec<String> = profile.sample_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(kinds, ["samples/count", "cpu/nanoseconds"]);
    assert_eq!(
        profile.period_type.as_ref().unwrap().to_string(),
        "cpu/nanoseconds"
    );
    assert_eq!(profile.period, 1_000_000_000 / 99);
    assert!(
        profile.duration_nanos >= 2_000_000_000,
        "duration {}",
        profile.duration_nanos
    );
    assert!(profile.time_nanos > 0);
    assert!(
        profile
            .comments
            .iter()
            .any(|c| c.starts_with("engine=perf:") || c.starts_with("engine=timer:")),
        "a per-thread engine is named: {:?}",
        profile.comments
    );

    let total = profile.total(0);
    let expected = cpu.as_secs_f64() * 99.0;
    assert!(
        (total as f64 - expected).abs() <= 0.15 * expected,
        "{total} samples, expected about {expected:.0} ({cpu:?} of CPU at 99 Hz)"
    );
    let burning = count_with(&profile, BURNER);
    assert!(
        burning * 2 >= total,
        "{burning} of {total} samples in {BURNER}"
    );
    assert_eq!(profile.total(1), total * profile.period);

    // Symbolized with files and lines, and nothing of the sampler itself.
    let burner = profile
        .functions
        .iter()
        .find(|f| f.name.ends_with(BURNER))
        .expect("burner function present");
    assert!(
        burner.filename.ends_with("common/mod.rs"),
        "{}",
        burner.filename
    );
    for f in &profile.functions {
        for bad in FORBIDDEN_FRAMES {
            assert!(
                !f.name.contains(bad),
                "profiler frame {:?} in the profile",
                f.name
            );
        }
    }
    assert!(!profile.mappings.is_empty(), "mappings are recorded");

    // go tool pprof is the reference reader.
    let path = temp_file("cpu.pb.gz", &bytes);
    let top = go_tool_pprof(&["-top"], &path);
    assert!(top.contains(BURNER), "go tool pprof -top:\n{top}");
    let traces = go_tool_pprof(&["-traces"], &path);
    assert!(traces.contains(BURNER), "go tool pprof -traces:\n{traces}");

    // folded: parses, root first, the burner is a leaf.
    let response = get(&format!(
        "{base}/debug/pprof/profile?seconds=2&format=folded"
    ))
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let parsed = folded::parse(text.as_bytes()).unwrap();
    assert!(parsed.total(0) > 0);
    // Root first: the thread's start comes before the burner. (Unoptimized, the burner spends
    // most of its time in callees such as black_box, so it need not be the leaf.)
    assert!(
        text.lines().any(|l| {
            let frames: Vec<&str> = l.rsplit_once(' ').unwrap().0.split(';').collect();
            let burner = frames.iter().position(|f| f.ends_with(BURNER));
            let start = frames.iter().position(|f| f.contains("thread_start"));
            matches!((start, burner), (Some(s), Some(b)) if s < b)
        }),
        "a stack runs from the thread's start to the burner:\n{text}"
    );

    // svg: well-formed XML naming the function, with a title that says what it shows.
    let response = get(&format!("{base}/debug/pprof/profile?seconds=2&format=svg")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.unwrap();
    parse_svg(&svg);
    assert!(svg.contains(BURNER));
    assert!(svg.contains("CPU profile of"), "title");
    assert!(
        svg.contains("2 s at 99 Hz"),
        "title names the window and rate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_1_roots_stacks_at_thread_names() {
    let _lock = PROFILER.lock().await;
    let (_agent, base) = start(loopback());
    let _burners = Burners::start(2);
    let text = get(&format!(
        "{base}/debug/pprof/profile?seconds=1&format=folded&threads=1"
    ))
    .await
    .text()
    .await
    .unwrap();
    let burner_lines: Vec<&str> = text.lines().filter(|l| l.contains(BURNER)).collect();
    assert!(!burner_lines.is_empty(), "{text}");
    for line in burner_lines {
        assert!(
            line.starts_with("burner-"),
            "rooted at the thread name: {line}"
        );
    }
}

async fn assert_profile_still_works(base: &str) {
    let response = get(&format!(
        "{base}/debug/pprof/profile?seconds=1&format=folded"
    ))
    .await;
    assert_eq!(
        response.status(),
        200,
        "a valid profile works after a bad request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_specific_errors() {
    let _lock = PROFILER.lock().await;
    let (_agent, base) = start(loopback().max_seconds(60));
    let cases: &[(&str, u16, &str)] = &[
        (
            "profile?seconds=0",
            400,
            "seconds: expected a whole number from 1 to 60, got \"0\"",
        ),
        ("profile?seconds=61", 400, "from 1 to 60"),
        (
            "profile?seconds=abc",
            400,
            "seconds: expected a whole number",
        ),
        (
            "profile?seconds=-1",
            400,
            "seconds: expected a whole number",
        ),
        (
            "profile?frequency=0",
            400,
            "frequency: expected a whole number from 1 to 1000",
        ),
        (
            "profile?frequency=1001",
            400,
            "frequency: expected a whole number from 1 to 1000",
        ),
        (
            "profile?format=png",
            400,
            "format: expected one of pprof, folded, svg, got \"png\"",
        ),
        (
            "profile?threads=maybe",
            400,
            "threads: expected 1, 0, true or false",
        ),
        ("profile?second=3", 400, "unknown parameter \"second\""),
        ("profile?seconds=1&seconds=2", 400, "more than once"),
        (
            "nothing-here",
            404,
            "no such endpoint: /debug/pprof/nothing-here",
        ),
        // This test binary installs no SpansLayer.
        (
            "spans?seconds=1",
            503,
            "span recording is not enabled: add pyrometer::spans::SpansLayer",
        ),
        ("diagnose?seconds=1", 503, "span recording is not enabled"),
    ];
    for (path, status, message) in cases {
        let body = expect_error(get(&format!("{base}/debug/pprof/{path}")).await, *status).await;
        assert!(
            body.contains(message),
            "{path}: {body:?} should contain {message:?}"
        );
        assert_profile_still_works(&base).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_set() {
    let _lock = PROFILER.lock().await;
    let (_agent, base) = start(loopback().token("s3cret"));
    let url = format!("{base}/debug/pprof/profile?seconds=1");
    let client = reqwest::Client::new();

    let body = expect_error(client.get(&url).send().await.unwrap(), 401).await;
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let wrong = client.get(&url).bearer_auth("s3creT").send().await.unwrap();
    assert!(wrong.headers().contains_key("www-authenticate"));
    expect_error(wrong, 401).await;
    // The index is protected too.
    expect_error(
        client
            .get(format!("{base}/debug/pprof/"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    let ok = client.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok = client
        .get(&url)
        .basic_auth("pprof", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// The rule for windows at once (cpu::session): a window at the running rate or at the default
/// rate joins; another rate waits for the running windows, told when with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_at_the_running_or_default_rate_share_the_sampler() {
    let _lock = PROFILER.lock().await;
    let (_agent, base) = start(loopback());
    let _burners = Burners::start(1);
    let scraper = tokio::spawn(get_owned(format!(
        "{base}/debug/pprof/profile?seconds=3&frequency=999"
    )));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let person = tokio::spawn(get_owned(format!("{base}/debug/pprof/profile?seconds=1")));
    let same_rate = tokio::spawn(get_owned(format!(
        "{base}/debug/pprof/profile?seconds=1&frequency=999"
    )));
    let other_rate = get(&format!(
        "{base}/debug/pprof/profile?seconds=1&frequency=500"
    ))
    .await;
    let retry_after: u64 = other_rate.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&retry_after), "Retry-After {retry_after}");
    let body = expect_error(other_rate, 409).await;
    assert!(
        body.contains("another CPU profile is running at 999 Hz"),
        "{body}"
    );

    for (name, response) in [
        ("person", person),
        ("same rate", same_rate),
        ("scraper", scraper),
    ] {
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let profile = pprof::decode(&response.bytes().await.unwrap()).unwrap();
        assert!(count_with(&profile, BURNER) > 0, "{name} saw the burner");
        assert_eq!(profile.period, 1_000_000_000 / 999, "{name}");
        let asked_less = profile
            .comments
            .iter()
            .any(|c| c.contains("asked for 99 Hz"));
        assert_eq!(
            asked_less,
            name == "person",
            "{name}: {:?}",
            profile.comments
        );
    }
}

async fn get_owned(url: String) -> reqwest::Response {
    get(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_the_profiler() {
    let _lock = PROFILER.lock().await;
    let (agent, base) = start(loopback());
    let addr = agent.local_addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /debug/pprof/profile?seconds=10 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pyrometer::cpu::is_running(),
        "the 10-second profile started"
    );
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(1);
    while pyrometer::cpu::is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !pyrometer::cpu::is_running(),
        "the profiler is freed within a second"
    );
    let next = get(&format!("{base}/debug/pprof/profile?seconds=1")).await;
    assert_eq!(next.status(), 200, "the next request is not refused");
}

#[test]
fn answers_while_the_services_runtime_is_blocked() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _lock = rt.block_on(PROFILER.lock());
    let (_agent, base) = start(loopback());
    // The service's only worker is stuck in blocking code, as a badly written handler would be,
    // for longer than a 1-s profile takes to come back even symbolized by a debug build on a
    // loaded machine.
    rt.spawn(async { std::thread::sleep(Duration::from_secs(12)) });
    std::thread::sleep(Duration::from_millis(100));

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        stream
            .write_all(b"GET /debug/pprof/profile?seconds=1&format=folded HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        tx.send(response).unwrap();
    });
    let response = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the agent answers while the service's runtime is blocked");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_lists_what_can_be_taken() {
    let (_agent, base) = start(loopback());
    let response = get(&format!("{base}/debug/pprof/")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<form action="profile""#), "{html}");
    assert!(html.contains("what it costs the service"));
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/debug/pprof"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
}
