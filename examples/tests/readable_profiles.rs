//! The shop's profiles, taken through the agent as a user would, read by a person: every frame
//! named by its path, no frame that is not the service's (address 0, the heap sampler's own), and a
//! `/catalog` flame graph whose handler is near the root, labelled in full, in a real browser.
//!
//! The examples crate is built with `debug = "line-tables-only"` even in tests (see the workspace
//! Cargo.toml), as services are in release, so the shop's own frames can only be named by their
//! path if the symbolizer takes it from the symbol table.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyrometer::profile::{names, pprof, Profile};
use pyrometer_examples::background::{self, Addresses};
use pyrometer_examples::demo::{measure, target};
use pyrometer_examples::load::{self, Plan, Stop};
use pyrometer_examples::profiles::Kind;
use pyrometer_examples::shop::fixes::Problem;
use pyrometer_examples::shop::seed::SeedSize;
use pyrometer_examples::shop::ShopConfig;
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[global_allocator]
static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();

/// One CPU profiler per process: the tests take turns.
static PROFILER: Mutex<()> = Mutex::const_new(());

const SEED: SeedSize = SeedSize {
    customers: 2_000,
    orders: 20_000,
    products: 2_000,
};

fn fixture() -> &'static Addresses {
    static FIXTURE: OnceLock<Addresses> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        background::start(
            pyrometer::Agent::builder().bind(SocketAddr::from(([127, 0, 0, 1], 0))),
            ShopConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                seed: SEED,
                ..ShopConfig::default()
            },
        )
    })
}

/// Every frame of every sample, with the sample's first value as weight.
fn frames(profile: &Profile) -> impl Iterator<Item = (&str, u64, i64)> + '_ {
    profile.samples.iter().flat_map(move |s| {
        let weight = s.values.first().copied().unwrap_or(0).abs();
        s.locations.iter().flat_map(move |&l| {
            let location = &profile.locations[l];
            location.lines.iter().map(move |line| {
                let name = profile.functions[line.function].name.as_str();
                (name, location.address, weight)
            })
        })
    })
}

fn has_path(name: &str) -> bool {
    let mut depth = 0i32;
    let mut previous = ' ';
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' if previous != '-' => depth -= 1,
            ':' if depth == 0 && previous == ':' => return true,
            _ => {}
        }
        previous = c;
    }
    false
}

fn is_c_symbol(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The heap sampler's own frames (the allocator wrapper, the sample's record, the stack capture
/// and its unwinder): never in a heap profile's stacks. Other pyrometer frames may be: the agent
/// allocates too (copying the sampler's tables, resolving a backtrace when the CPU profiler starts).
fn is_heap_sampler(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    name.starts_with("pyrometer::heap::allocator::")
        || name.starts_with("pyrometer::heap::stack::")
        || name.starts_with("pyrometer::heap::sampler::")
        || name.starts_with("pyrometer::heap::table::record")
        || name == "_Unwind_Backtrace"
}

/// The CPU sampler's own frames (its signal handler, the unwinder it runs, the kernel's signal
/// trampoline): never in a CPU profile. Where the heap sampler ran, a CPU profile shows it: that
/// is CPU the service spends on being profiled.
fn is_cpu_sampler(name: &str) -> bool {
    name.contains("perf_signal_handler")
        || name.trim_start_matches('<').starts_with("pprof::")
        || name == "__restore_rt"
}

/// Names in a profile: the share of weighted frames with a path or a C symbol, and the frames
/// that are fake (address 0), hex-named, or the profiler's own.
fn check_names(kind: &str, profile: &Profile, is_profiler: fn(&str) -> bool) {
    let (mut all, mut named) = (0i64, 0i64);
    let mut bad = Vec::new();
    let mut unnamed = std::collections::BTreeSet::new();
    for (name, address, weight) in frames(profile) {
        all += weight;
        if has_path(name) || is_c_symbol(name) {
            named += weight;
        } else {
            unnamed.insert(name);
        }
        if address == 0 && name.starts_with("0x") || is_profiler(name) {
            bad.push(name.to_string());
        }
    }
    assert!(all > 0, "{kind}: the profile has samples");
    let share = named as f64 / all as f64;
    assert!(
        share >= 0.99,
        "{kind}: {:.2}% of frames carry a path or a C symbol; the others: {unnamed:?}",
        100.0 * share
    );
    assert!(bad.is_empty(), "{kind}: fake or profiler frames: {bad:?}");
    let total: i64 = profile
        .samples
        .iter()
        .map(|s| s.values[0].abs())
        .sum::<i64>()
        .max(1);
    let hex: i64 = profile
        .samples
        .iter()
        .filter(|s| profile.frames(s).any(|f| f.function.name.starts_with("0x")))
        .map(|s| s.values[0].abs())
        .sum();
    assert!(
        hex as f64 <= 0.005 * total as f64,
        "{kind}: {hex} of {total} samples have a hex frame"
    );
}

/// A profile from the agent at `path` (with its query).
async fn take(agent: SocketAddr, path: &str) -> Profile {
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{agent}{path}"))
        .send()
        .await
        .expect("the agent answers")
        .bytes()
        .await
        .unwrap();
    pprof::decode(&body).expect("a pprof profile")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_allocation_frames_are_named_by_path_with_no_fake_or_sampler_frame() {
    let _turn = PROFILER.lock().await;
    let f = fixture();
    let (_, taken) = measure(
        f.shop,
        SEED,
        f.agent,
        Problem::HotAlloc,
        Duration::from_secs(3),
        4,
        &[Kind::Cpu, Kind::Allocs],
    )
    .await
    .expect("measured");
    let mut taken = taken
        .into_iter()
        .map(|(_, fetched)| fetched.expect("profile taken").profile);
    let (cpu, allocs) = (taken.next().unwrap(), taken.next().unwrap());
    check_names("cpu", &cpu, is_cpu_sampler);
    check_names("allocs", &allocs, is_heap_sampler);
    // The shop's own code, named by its full path (the symbol table's) although its debug info
    // has short names only. (Its CPU frames are checked so by the flame graph test.)
    assert!(
        frames(&allocs).any(|(n, _, _)| n.contains("pyrometer_examples::shop::")),
        "no frame of the shop named by its path: {:?}",
        allocs.functions.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    // Short names by default: no generic arguments left, one function per name and file.
    let mut seen = std::collections::HashSet::new();
    for function in &cpu.functions {
        assert_eq!(function.name, names::short_name(&function.name));
        assert!(
            seen.insert((&function.name, &function.filename)),
            "{} twice",
            function.name
        );
    }

    let heap = take(f.agent, "/debug/pprof/heap").await;
    check_names("heap", &heap, is_heap_sampler);
}

/// chromedriver on a free loopback port, with one headless Chromium session; both stopped when
/// dropped.
struct Browser {
    driver: Child,
    session: String,
    base: String,
    http: reqwest::Client,
}

impl Browser {
    async fn start(width: u32, height: u32, profile_dir: &std::path::Path) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile_dir.display()),
        ]);
        let mut browser = Browser {
            driver,
            session: String::new(),
            base,
            http,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let value = browser.call("/session", caps).await;
        browser.session = value["sessionId"].as_str().unwrap().to_string();
        browser
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let url = if self.session.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let answer: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// For every frame whose label names `catalog::compute`: its level above the root (`all` is 0),
/// the label as drawn after inferno's script fitted it, the function's name, and whether the
/// frame lies inside the window.
const FRAMES_NAMED: &str = r#"
const frames = [...document.querySelectorAll('#frames > g')];
const ys = [...new Set(frames.map(g => parseFloat(g.querySelector('rect').getAttribute('y'))))]
    .sort((a, b) => b - a);
return frames
    .filter(g => g.querySelector('title').textContent.includes(arguments[0]))
    .map(g => {
        const box = g.querySelector('rect').getBoundingClientRect();
        return {
            level: ys.indexOf(parseFloat(g.querySelector('rect').getAttribute('y'))),
            label: g.querySelector('text').textContent,
            title: g.querySelector('title').textContent,
            visible: box.top >= 0 && box.left >= 0 && box.bottom <= window.innerHeight
                && box.right <= window.innerWidth,
        };
    });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_flame_graph_shows_compute_near_the_root_with_its_full_label() {
    let _turn = PROFILER.lock().await;
    let f = fixture();
    let url = format!(
        "http://{}/debug/pprof/profile?seconds=4&frequency=199&format=svg",
        f.agent
    );
    let svg = tokio::spawn(async move {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
        response.text().await.unwrap()
    });
    // Longer than the window, which opens once the sampler has started.
    let plan = Plan::new(f.shop, 4, Stop::After(Duration::from_secs(7)));
    load::run(plan, vec![target(Problem::NoCache, SEED)])
        .await
        .expect("load ran");
    let svg = svg.await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.svg");
    std::fs::write(&path, &svg).unwrap();
    let browser = Browser::start(1400, 900, &dir.path().join("chromium")).await;
    browser
        .call("/url", json!({"url": format!("file://{}", path.display())}))
        .await;
    let found = browser
        .call(
            "/execute/sync",
            json!({"script": FRAMES_NAMED, "args": ["catalog::compute"]}),
        )
        .await;
    let found = found.as_array().expect("a list of frames");
    let near = found.iter().find(|frame| {
        let title = frame["title"].as_str().unwrap_or_default();
        let name = title.split(" (").next().unwrap_or_default();
        frame["level"].as_u64().is_some_and(|l| l <= 15)
            && frame["visible"] == true
            && frame["label"].as_str().map(str::trim) == Some(name)
    });
    assert!(
        near.is_some(),
        "no catalog::compute frame within 15 levels of the root, inside 1400x900 and labelled in \
         full: {found:#?}"
    );
}
