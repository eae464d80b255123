//! The shop over real HTTP on loopback, with a real SQLite database and real profiles taken
//! through the agent's endpoints: each planted problem shows where a person would look for it, and
//! each fix moves the right metric by a margin that noise cannot explain.
//!
//! One shop serves the whole binary from a thread of its own. The CPU profiler is one per process,
//! timing needs a quiet machine and counters must not be shared, so every test that talks to the
//! shop holds `MEASURE`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use pyrometer::profile::SampleIndex;
use pyrometer_examples::background::{self, Addresses};
use pyrometer_examples::demo::{measure, queries_per_request, set_fix};
use pyrometer_examples::evidence::{self, Signature};
use pyrometer_examples::load::{self, LoadError, Plan, RouteStats, Stop};
use pyrometer_examples::profiles::{self, Fetched, Kind};
use pyrometer_examples::shop::fixes::Problem;
use pyrometer_examples::shop::seed::SeedSize;
use pyrometer_examples::shop::{workload, ShopConfig};
use tokio::sync::Mutex;

/// Samples allocations, so the agent serves `/debug/pprof/allocs`.
#[global_allocator]
static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();

static MEASURE: Mutex<()> = Mutex::const_new(());

/// The demo's size: in a debug build, smaller tables let the HTTP and driver overhead hide the
/// table scan.
const SEED: SeedSize = SeedSize {
    customers: 20_000,
    orders: 200_000,
    products: 2_000,
};
const CONCURRENCY: usize = 4;

/// The shared shop and agent, started once on a runtime that outlives every test's own.
fn fixture() -> &'static Addresses {
    static FIXTURE: OnceLock<Addresses> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        background::start(
            pyrometer::Agent::builder().bind(SocketAddr::from(([127, 0, 0, 1], 0))),
            ShopConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                seed: SEED,
                pool_size: CONCURRENCY as u32,
                ..ShopConfig::default()
            },
        )
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn get(path: &str) -> reqwest::Response {
    let url = format!("http://{}{path}", fixture().shop);
    client().get(&url).send().await.expect("the shop answers")
}

/// Load on a problem's route for `seconds`, with the profiles of `kinds` over the same window.
async fn run(problem: Problem, seconds: u64, kinds: &[Kind]) -> (RouteStats, Vec<(Kind, Fetched)>) {
    let f = fixture();
    let (stats, fetched) = measure(
        f.shop,
        SEED,
        f.agent,
        problem,
        Duration::from_secs(seconds),
        CONCURRENCY,
        kinds,
    )
    .await
    .expect("measured");
    assert_eq!(
        stats.failures(),
        0,
        "{problem}: failed requests {:?}",
        stats.failed
    );
    assert!(stats.requests() > 0, "{problem}: no request finished");
    let taken = fetched
        .into_iter()
        .map(|(kind, result)| {
            (
                kind,
                result.unwrap_or_else(|e| panic!("{kind:?} profile: {e}")),
            )
        })
        .collect();
    (stats, taken)
}

async fn switch(problem: Problem, fixed: bool) {
    set_fix(fixture().shop, problem, fixed)
        .await
        .expect("fix switched");
}

fn ms(stats: &RouteStats, q: f64) -> f64 {
    stats.quantile(q).as_secs_f64() * 1000.0
}

fn cpu_share(problem: Problem, taken: &[(Kind, Fetched)]) -> f64 {
    let signature = evidence::signature(problem).expect("a signature");
    evidence::share_in(
        Signature {
            kind: Kind::Cpu,
            ..signature
        },
        taken,
    )
    .expect("a CPU profile")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_lookup_is_a_table_scan_and_the_index_cuts_p95_fivefold() {
    let _guard = MEASURE.lock().await;
    switch(Problem::Unindexed, false).await;
    let (before, profile) = run(Problem::Unindexed, 2, &[Kind::Cpu]).await;
    let scan = cpu_share(Problem::Unindexed, &profile);
    assert!(
        scan > 0.5,
        "sqlite3VdbeExec in only {:.0}% of CPU samples",
        scan * 100.0
    );

    switch(Problem::Unindexed, true).await;
    let (after, profile) = run(Problem::Unindexed, 2, &[Kind::Cpu]).await;
    let indexed = cpu_share(Problem::Unindexed, &profile);
    switch(Problem::Unindexed, false).await;
    assert!(
        ms(&before, 0.95) >= 5.0 * ms(&after, 0.95),
        "p95 {:.2} ms -> {:.2} ms",
        ms(&before, 0.95),
        ms(&after, 0.95)
    );
    assert!(indexed < scan / 2.0, "scan share {scan:.2} -> {indexed:.2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_plus_one_queries_grow_with_the_list_and_the_fix_bounds_them() {
    let _guard = MEASURE.lock().await;
    let shop = fixture().shop;
    for fixed in [false, true] {
        switch(Problem::NPlusOne, fixed).await;
        for limit in [5u32, 50, 200] {
            let path = format!("/orders?before=40000&limit={limit}");
            let queries = queries_per_request(shop, &path).await.expect("queries");
            let expected = if fixed { 1 } else { 1 + limit };
            assert_eq!(queries, expected, "fixed={fixed} limit={limit}");
        }
    }
    // Both forms return the same orders and lines.
    let path = "/orders?before=30000&limit=20";
    switch(Problem::NPlusOne, false).await;
    let planted: serde_json::Value = get(path).await.json().await.expect("json");
    switch(Problem::NPlusOne, true).await;
    let fixed: serde_json::Value = get(path).await.json().await.expect("json");
    assert_eq!(planted, fixed);
    assert_eq!(planted.as_array().map(Vec::len), Some(20));
    assert!(planted[0]["lines"]
        .as_array()
        .is_some_and(|l| !l.is_empty()));

    switch(Problem::NPlusOne, false).await;
    let (before, _) = run(Problem::NPlusOne, 2, &[]).await;
    switch(Problem::NPlusOne, true).await;
    let (after, _) = run(Problem::NPlusOne, 2, &[]).await;
    switch(Problem::NPlusOne, false).await;
    assert!(
        ms(&before, 0.5) >= 1.5 * ms(&after, 0.5),
        "p50 {:.2} ms -> {:.2} ms",
        ms(&before, 0.5),
        ms(&after, 0.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_allocation_points_at_the_renderer_and_the_fix_removes_it() {
    let _guard = MEASURE.lock().await;
    let path = "/orders/export?from=1000&limit=100";
    switch(Problem::HotAlloc, false).await;
    let planted = get(path).await.text().await.expect("csv");
    switch(Problem::HotAlloc, true).await;
    let fixed = get(path).await.text().await.expect("csv");
    assert_eq!(planted, fixed);
    assert!(
        planted.lines().count() > 100,
        "{} lines",
        planted.lines().count()
    );

    switch(Problem::HotAlloc, false).await;
    let (before, profile) = run(Problem::HotAlloc, 2, &[Kind::Allocs]).await;
    let signature = evidence::signature(Problem::HotAlloc).expect("a signature");
    let planted_share = evidence::share_in(signature, &profile).expect("an allocation profile");
    let planted_bytes = allocated_per_request(&profile, &before);
    switch(Problem::HotAlloc, true).await;
    let (after, profile) = run(Problem::HotAlloc, 2, &[Kind::Allocs]).await;
    let fixed_bytes = allocated_per_request(&profile, &after);
    let fixed_share = profiles::share(&profile[0].1.profile, |f| f.contains("export_fixed"));
    switch(Problem::HotAlloc, false).await;
    assert!(
        planted_share > 0.5,
        "export_planted made only {:.0}% of the bytes allocated",
        planted_share * 100.0
    );
    assert!(
        fixed_share < 0.2,
        "export_fixed made {:.0}% of the bytes",
        fixed_share * 100.0
    );
    assert!(
        planted_bytes > 5.0 * fixed_bytes,
        "bytes allocated per request: {planted_bytes:.0} -> {fixed_bytes:.0}"
    );
    assert!(
        ms(&before, 0.5) > ms(&after, 0.5),
        "p50 {:.2} ms -> {:.2} ms",
        ms(&before, 0.5),
        ms(&after, 0.5)
    );
}

/// Estimated bytes allocated per request over a measured window.
fn allocated_per_request(taken: &[(Kind, Fetched)], stats: &RouteStats) -> f64 {
    let profile = &taken[0].1.profile;
    let index = profile
        .sample_index(&SampleIndex::Named("alloc_space".into()))
        .expect("alloc_space");
    profile.total(index) as f64 / stats.requests() as f64
}

async fn connections_opened() -> u64 {
    let stats: serde_json::Value = get("/admin/stats").await.json().await.expect("json");
    stats["connections_opened"].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_per_request_shows_as_schema_loading_and_the_pool_opens_none() {
    let _guard = MEASURE.lock().await;
    // sqlx runs each SQLite connection on a thread of its own, which here lives a few milliseconds
    // and loads the schema first thing. The per-thread engines find new threads by rescanning
    // every 10 ms and miss such threads (README, "CPU profiles"); the process-wide engine sees
    // them, so this problem is profiled with it, as the README tells users to.
    std::env::set_var(pyrometer::cpu::ENGINE_VARIABLE, "setitimer");
    switch(Problem::ConnPerRequest, false).await;
    let opened = connections_opened().await;
    let (before, profile) = run(Problem::ConnPerRequest, 2, &[Kind::Cpu]).await;
    assert_eq!(connections_opened().await - opened, before.requests());
    let planted_share = cpu_share(Problem::ConnPerRequest, &profile);
    assert!(
        planted_share > 0.05,
        "sqlite3Init in {:.1}% of CPU",
        planted_share * 100.0
    );

    switch(Problem::ConnPerRequest, true).await;
    let opened = connections_opened().await;
    let (after, profile) = run(Problem::ConnPerRequest, 2, &[Kind::Cpu]).await;
    assert_eq!(
        connections_opened().await,
        opened,
        "the pool opened connections"
    );
    let fixed_share = cpu_share(Problem::ConnPerRequest, &profile);
    std::env::remove_var(pyrometer::cpu::ENGINE_VARIABLE);
    switch(Problem::ConnPerRequest, false).await;
    assert!(
        fixed_share < planted_share / 5.0,
        "{planted_share:.3} -> {fixed_share:.3}"
    );
    assert!(
        ms(&before, 0.5) >= 1.3 * ms(&after, 0.5),
        "p50 {:.2} ms -> {:.2} ms",
        ms(&before, 0.5),
        ms(&after, 0.5)
    );
}

async fn upstream_control(query: &str) {
    let url = format!("http://{}/control?{query}", fixture().upstream);
    let response = client().post(&url).send().await.expect("upstream answers");
    assert!(response.status().is_success(), "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_upstream_calls_wait_for_the_sum_and_concurrent_ones_for_the_slowest() {
    let _guard = MEASURE.lock().await;
    upstream_control("latency_ms=25").await;
    switch(Problem::SequentialCalls, false).await;
    let (before, _) = run(Problem::SequentialCalls, 2, &[]).await;
    switch(Problem::SequentialCalls, true).await;
    let (after, _) = run(Problem::SequentialCalls, 2, &[]).await;
    switch(Problem::SequentialCalls, false).await;
    upstream_control("latency_ms=10").await;
    assert!(
        ms(&before, 0.5) >= 75.0,
        "planted p50 {:.2} ms",
        ms(&before, 0.5)
    );
    assert!(
        ms(&after, 0.5) < 50.0,
        "fixed p50 {:.2} ms",
        ms(&after, 0.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_upstream_sets_p99_until_a_timeout_and_retry_bound_it() {
    let _guard = MEASURE.lock().await;
    upstream_control("stall_every=5&stall_ms=1500").await;
    let shop = fixture().shop;
    let report = |fixed: bool| async move {
        switch(Problem::NoTimeout, fixed).await;
        let plan = Plan::new(shop, CONCURRENCY, Stop::Requests(40));
        let report = load::run(
            plan,
            vec![pyrometer_examples::demo::target(Problem::NoTimeout, SEED)],
        )
        .await
        .expect("load ran");
        report.routes[0].clone()
    };
    let before = report(false).await;
    let after = report(true).await;
    switch(Problem::NoTimeout, false).await;
    upstream_control("stall_every=20&stall_ms=1500").await;
    assert_eq!((before.requests(), after.requests()), (40, 40));
    assert_eq!(after.failures(), 0, "{:?}", after.failed);
    assert!(
        ms(&before, 0.99) >= 1500.0,
        "planted p99 {:.0} ms",
        ms(&before, 0.99)
    );
    assert!(
        ms(&after, 0.99) < 600.0,
        "fixed p99 {:.0} ms",
        ms(&after, 0.99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_recomputed_per_request_until_cached_with_max_age() {
    let _guard = MEASURE.lock().await;
    switch(Problem::NoCache, false).await;
    for _ in 0..2 {
        let response = get("/catalog").await;
        assert_eq!(response.headers()["x-db-queries"], "3");
        assert_eq!(response.headers()["cache-control"], "no-cache");
    }
    let (before, profile) = run(Problem::NoCache, 2, &[Kind::Cpu]).await;
    let planted_share = cpu_share(Problem::NoCache, &profile);

    switch(Problem::NoCache, true).await;
    get("/catalog").await;
    let response = get("/catalog").await;
    assert_eq!(response.headers()["x-db-queries"], "0");
    assert_eq!(response.headers()["cache-control"], "public, max-age=30");
    let (after, profile) = run(Problem::NoCache, 2, &[Kind::Cpu]).await;
    let fixed_share = cpu_share(Problem::NoCache, &profile);
    switch(Problem::NoCache, false).await;
    assert!(
        planted_share > 0.05,
        "catalog::compute in {:.1}% of CPU",
        planted_share * 100.0
    );
    assert!(
        fixed_share < planted_share / 5.0,
        "{planted_share:.3} -> {fixed_share:.3}"
    );
    assert!(
        ms(&before, 0.95) >= 5.0 * ms(&after, 0.95),
        "p95 {:.2} ms -> {:.2} ms",
        ms(&before, 0.95),
        ms(&after, 0.95)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_with_a_message_naming_what_was_wrong() {
    // Unknown customers open a connection too: keep the connection count of other tests exact.
    let _guard = MEASURE.lock().await;
    let cases: &[(&str, u16, &str)] = &[
        ("/orders/lookup", 400, "reference"),
        ("/orders/lookup?reference=ORD-NOPE", 404, "ORD-NOPE"),
        ("/orders?limit=0", 400, "limit"),
        ("/orders?limit=ten", 400, "\"ten\""),
        ("/orders?sort=id", 400, "\"sort\""),
        ("/orders/export?limit=5000", 400, "1 to 1000"),
        ("/customers/abc", 400, "\"abc\""),
        ("/customers/999999999", 404, "999999999"),
        ("/orders/0/quote", 400, "order id"),
        ("/orders/999999999/payment", 404, "999999999"),
        ("/no/such/route", 404, "/no/such/route"),
    ];
    for (path, status, needle) in cases {
        let response = get(path).await;
        assert_eq!(response.status().as_u16(), *status, "{path}");
        let body = response.text().await.expect("body");
        assert!(body.contains(needle), "{path}: {body:?} lacks {needle:?}");
        assert_eq!(body.trim_end().lines().count(), 1, "{path}: {body:?}");
    }
    let admin = |path: &'static str| async move {
        let url = format!("http://{}{path}", fixture().shop);
        let response = client().post(&url).send().await.expect("answer");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    };
    let (status, body) = admin("/admin/fixes/fast-mode").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("n-plus-one") && body.contains("\"fast-mode\""),
        "{body}"
    );
    let (status, body) = admin("/admin/fixes/unindexed?fixed=maybe").await;
    assert_eq!(status, 400);
    assert!(body.contains("fixed"), "{body}");
    // And good requests still work.
    let ok = get(&workload::path(
        Problem::Unindexed,
        SEED,
        &mut fastrand::Rng::with_seed(1),
    ))
    .await;
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn the_load_generator_refuses_other_hosts_and_stops_by_itself() {
    for target in [
        "http://10.0.0.8:8080",
        "192.168.0.2:80",
        "example.com:80",
        "[2001:db8::1]:80",
    ] {
        assert!(
            matches!(
                load::loopback_target(target),
                Err(LoadError::NotLoopback(_))
            ),
            "{target}"
        );
    }
    let far = Plan::new(
        SocketAddr::from(([10, 0, 0, 8], 8080)),
        2,
        Stop::Requests(5),
    );
    let refused = load::run(far, vec![load::Target::new("/", |_| "/".into())]).await;
    assert!(
        matches!(refused, Err(LoadError::NotLoopback(_))),
        "{refused:?}"
    );

    let _guard = MEASURE.lock().await;
    let plan = Plan::new(fixture().shop, 3, Stop::Requests(25));
    let report = load::run(
        plan,
        vec![pyrometer_examples::demo::target(Problem::NoCache, SEED)],
    )
    .await
    .expect("load ran");
    assert_eq!(report.routes[0].requests(), 25);
    assert!(report.routes[0].quantile(0.99) > Duration::ZERO);
}

/// The allocation sites of the shop's own code, as the innermost `pyrometer_examples::` frame of
/// each sample, with the bytes allocated under each, largest first.
fn allocation_sites(profile: &pyrometer::profile::Profile) -> Vec<(String, i64)> {
    let index = profile
        .sample_index(&SampleIndex::Named("alloc_space".into()))
        .expect("alloc_space");
    let mut sites = std::collections::HashMap::<String, i64>::new();
    for sample in &profile.samples {
        let site = profile
            .frames(sample)
            .map(|f| f.function.name.as_str())
            .find(|name| name.starts_with("pyrometer_examples::"));
        if let Some(site) = site {
            *sites.entry(site.to_string()).or_default() += sample.values[index];
        }
    }
    let mut sites: Vec<_> = sites.into_iter().collect();
    sites.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sites
}

/// The same requests, one at a time, with every allocation recorded (rate 1), once with each
/// stack walk: the frame-pointer walk must put the bytes under the same sites of the shop's code
/// as the DWARF walk, so the top 10 are the same sites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_pointer_stacks_name_the_same_top_allocation_sites_as_dwarf() {
    use pyrometer::heap::{self, Snapshot, StackWalk};
    let _guard = MEASURE.lock().await;
    let paths: Vec<String> = Problem::ALL
        .into_iter()
        .filter(|p| *p != Problem::NoTimeout)
        .map(workload::example_path)
        .collect();
    let requests = || async {
        for _ in 0..5 {
            for path in &paths {
                let response = get(path).await;
                assert!(response.status().is_success(), "{path}");
                response.bytes().await.expect("body");
            }
        }
    };
    let (mut tops, mut functions) = (Vec::new(), Vec::new());
    heap::set_sample_rate(1);
    for walk in [StackWalk::Dwarf, StackWalk::FramePointers] {
        heap::set_stack_walk(walk);
        requests().await; // every thread now samples at rate 1 with this walk; caches are warm
        let before = Snapshot::take();
        requests().await;
        let profile = Snapshot::take().since(&before).profile("alloc_space");
        tops.push(allocation_sites(&profile));
        let mut seen = std::collections::BTreeSet::new();
        for sample in &profile.samples {
            seen.extend(profile.frames(sample).map(|f| f.function.name.clone()));
        }
        functions.push(seen);
    }
    // What the frame-pointer walk loses: frames of code without frame pointers (libc's thread
    // start, C libraries), shown for the README.
    println!(
        "functions only in DWARF stacks: {:#?}\nonly in frame-pointer stacks: {:#?}",
        functions[0].difference(&functions[1]).collect::<Vec<_>>(),
        functions[1].difference(&functions[0]).collect::<Vec<_>>()
    );
    heap::set_stack_walk(StackWalk::Dwarf);
    heap::set_sample_rate(heap::DEFAULT_SAMPLE_RATE);

    let names = |sites: &[(String, i64)]| {
        let mut top: Vec<String> = sites.iter().take(10).map(|s| s.0.clone()).collect();
        top.sort();
        top
    };
    println!("DWARF: {:#?}\nframe pointers: {:#?}", tops[0], tops[1]);
    assert!(tops[0].len() >= 10, "only {} sites", tops[0].len());
    assert_eq!(names(&tops[0]), names(&tops[1]));
}
