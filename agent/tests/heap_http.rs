//! `/debug/pprof/heap` and `/debug/pprof/allocs` over real HTTP on loopback, at the default rate,
//! read back by our decoder and by go tool pprof with every sample index.
//!
//! The blocks whose numbers are checked are 16 MiB each: at the default mean of 512 KiB, such a
//! block is missed with probability exp(-32), about 1e-14, and its weight is its own size, so the
//! expected figures are exact. Their pages are never touched, so they cost no memory.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use common::{
    expect_error, get, go_tool_pprof, loopback, start, temp_file, total_at, Burners, PROFILER,
};
use pyrometer::heap::SamplingAllocator;
use pyrometer::profile::{folded, pprof, Profile};

#[global_allocator]
static ALLOC: SamplingAllocator = SamplingAllocator::system();

const BLOCK: usize = 16 << 20;
const SAMPLE_TYPES: [&str; 4] = [
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
];

#[inline(never)]
fn held_site() -> Vec<u8> {
    Vec::with_capacity(BLOCK)
}

#[inline(never)]
fn before_window_site() -> Vec<u8> {
    Vec::with_capacity(BLOCK)
}

#[inline(never)]
fn in_window_site() -> Vec<u8> {
    Vec::with_capacity(BLOCK)
}

#[inline(never)]
fn kept_in_window_site() -> Vec<u8> {
    Vec::with_capacity(BLOCK)
}

async fn fetch(url: &str) -> Vec<u8> {
    let response = get(url).await;
    assert_eq!(response.status(), 200, "{url}: {:?}", response.headers());
    response.bytes().await.unwrap().to_vec()
}

fn decode(bytes: &[u8]) -> Profile {
    assert!(pprof::is_gzip(bytes), "pprof output is gzip-compressed");
    pprof::decode(bytes).unwrap()
}

fn folded_value(text: &str, function: &str) -> i64 {
    text.lines()
        .filter(|line| line.contains(function))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
        .sum()
}

/// go tool pprof reads the profile with each sample type and lists `function`.
fn go_reads_every_sample_index(file: &Path, function: &str) {
    for index in SAMPLE_TYPES {
        let top = go_tool_pprof(
            &[&format!("-sample_index={index}"), "-top", "-nodefraction=0"],
            file,
        );
        assert!(
            top.contains(function),
            "go tool pprof -sample_index={index}:\n{top}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_now_in_every_format() {
    let (_agent, base) = start(loopback());
    let held: Vec<Vec<u8>> = (0..4).map(|_| held_site()).collect();

    let bytes = fetch(&format!("{base}/debug/pprof/heap")).await;
    let profile = decode(&bytes);
    let kinds: Vec<String> = profile.sample_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        kinds,
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    assert_eq!(
        profile.period_type.as_ref().unwrap().to_string(),
        "space/bytes"
    );
    assert_eq!(profile.period, 512 * 1024);
    assert_eq!(profile.default_sample_type.as_deref(), Some("inuse_space"));
    assert_eq!(total_at(&profile, "held_site", 2), 4);
    assert_eq!(total_at(&profile, "held_site", 3), 4 * BLOCK as i64);
    assert_eq!(total_at(&profile, "held_site", 1), 4 * BLOCK as i64);
    let file = temp_file("heap.pb.gz", &bytes);
    go_reads_every_sample_index(&file, "held_site");
    // go tool pprof fetching from the endpoint itself, as users run it.
    let top = go_tool_pprof(
        &["-top", "-sample_index=inuse_space"],
        Path::new(&format!("{base}/debug/pprof/heap")),
    );
    assert!(top.contains("held_site"), "{top}");

    // folded: the default sample type, or the one asked for.
    let text =
        String::from_utf8(fetch(&format!("{base}/debug/pprof/heap?format=folded")).await).unwrap();
    folded::parse(text.as_bytes()).expect("folded output parses");
    assert_eq!(folded_value(&text, "held_site"), 4 * BLOCK as i64);
    let text = String::from_utf8(
        fetch(&format!(
            "{base}/debug/pprof/heap?format=folded&sample_index=inuse_objects"
        ))
        .await,
    )
    .unwrap();
    assert_eq!(folded_value(&text, "held_site"), 4);

    // svg: a well-formed flame graph that shows the site and says what it shows.
    let svg = String::from_utf8(
        fetch(&format!(
            "{base}/debug/pprof/heap?format=svg&sample_index=alloc_space"
        ))
        .await,
    )
    .unwrap();
    common::parse_svg(&svg);
    assert!(svg.contains("held_site"));
    assert!(svg.contains("Heap profile of") && svg.contains("alloc_space"));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocs_and_heap_over_a_window() {
    let (_agent, base) = start(loopback());
    let mut before = vec![before_window_site()];
    let allocs = tokio::spawn(fetch_owned(format!("{base}/debug/pprof/allocs?seconds=2")));
    let heap = tokio::spawn(fetch_owned(format!("{base}/debug/pprof/heap?seconds=2")));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // In the window: three blocks allocated and freed, one kept, and the block from before freed.
    for _ in 0..3 {
        black_box(in_window_site());
    }
    let kept = kept_in_window_site();
    before.clear();

    let bytes = allocs.await.unwrap();
    let profile = decode(&bytes);
    assert_eq!(profile.default_sample_type.as_deref(), Some("alloc_space"));
    assert!(
        profile.duration_nanos >= 2_000_000_000,
        "duration {}",
        profile.duration_nanos
    );
    assert_eq!(total_at(&profile, "in_window_site", 0), 3);
    assert_eq!(total_at(&profile, "in_window_site", 1), 3 * BLOCK as i64);
    assert_eq!(
        total_at(&profile, "in_window_site", 3),
        0,
        "freed in the window"
    );
    assert_eq!(total_at(&profile, "kept_in_window_site", 3), BLOCK as i64);
    assert_eq!(
        total_at(&profile, "before_window_site", 1),
        0,
        "allocated before the window"
    );
    assert_eq!(
        total_at(&profile, "before_window_site", 3),
        -(BLOCK as i64),
        "freed in the window"
    );
    let file = temp_file("allocs.pb.gz", &bytes);
    go_reads_every_sample_index(&file, "in_window_site");

    let profile = decode(&heap.await.unwrap());
    assert_eq!(profile.default_sample_type.as_deref(), Some("inuse_space"));
    assert_eq!(total_at(&profile, "kept_in_window_site", 3), BLOCK as i64);

    // A flame graph of the change shows what grew; the freed block has no negative width.
    let folded = tokio::spawn(fetch_owned(format!(
        "{base}/debug/pprof/heap?seconds=1&format=folded"
    )));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = kept_in_window_site();
    drop(kept);
    let text = String::from_utf8(folded.await.unwrap()).unwrap();
    assert_eq!(
        folded_value(&text, "kept_in_window_site"),
        BLOCK as i64,
        "{text}"
    );
    assert!(text.lines().all(|l| !l.ends_with(&format!(" -{BLOCK}"))));
    drop(grown);
}

async fn fetch_owned(url: String) -> Vec<u8> {
    fetch(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_by_name() {
    let (_agent, base) = start(loopback());
    let cases = [
        ("seconds=0", r#"seconds: expected a whole number from 1 to 300, got "0""#),
        ("seconds=301", "seconds: expected a whole number from 1 to 300"),
        ("seconds=soon", "seconds: expected a whole number from 1 to 300"),
        ("format=png", "format: expected one of pprof, folded, svg"),
        (
            "sample_index=bytes",
            "sample_index: expected one of alloc_objects, alloc_space, inuse_objects, inuse_space (or 0 to 3)",
        ),
        ("sample_index=4", "sample_index: expected one of"),
        ("gc=1", r#"unknown parameter "gc"; this endpoint takes: seconds, format, sample_index"#),
        ("format=svg&format=pprof", r#"parameter "format" is given more than once"#),
    ];
    for endpoint in ["heap", "allocs"] {
        for (query, message) in cases {
            let body = expect_error(
                get(&format!("{base}/debug/pprof/{endpoint}?{query}")).await,
                400,
            )
            .await;
            assert!(body.starts_with(message), "{endpoint}?{query}: {body}");
            // The endpoint still works after a refusal.
            assert_eq!(
                get(&format!("{base}/debug/pprof/{endpoint}?format=folded"))
                    .await
                    .status(),
                200
            );
        }
    }
    // A sample type by index, as go tool pprof's -sample_index accepts it.
    let text = String::from_utf8(
        fetch(&format!(
            "{base}/debug/pprof/heap?format=folded&sample_index=2"
        ))
        .await,
    )
    .unwrap();
    folded::parse(text.as_bytes()).expect("folded output parses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_and_cpu_profiles_at_the_same_time() {
    let _cpu = PROFILER.lock().await;
    let (_agent, base) = start(loopback());
    let _burners = Burners::start(2);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let allocator = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                black_box(format!("{i:064}"));
                black_box(vec![0u8; 100 + i % 5000]);
                i += 1;
            }
        })
    };
    let requests = [
        format!("{base}/debug/pprof/profile?seconds=2&frequency=999"),
        format!("{base}/debug/pprof/heap?seconds=2"),
        format!("{base}/debug/pprof/allocs?seconds=2&format=svg"),
    ]
    .map(|url| tokio::spawn(fetch_owned(url)));
    let deadline = Duration::from_secs(60);
    for request in requests {
        let body = tokio::time::timeout(deadline, request)
            .await
            .expect("no deadlock: every profile finishes")
            .unwrap();
        assert!(!body.is_empty());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    allocator.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_shows_the_heap_profiler() {
    let (_agent, base) = start(loopback());
    let page = get(&format!("{base}/debug/pprof/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<form action="heap""#) && page.contains(r#"<form action="allocs""#));
    assert!(
        page.contains("sampling every 512.0 KiB on average; live heap about"),
        "{page}"
    );
    // The form's empty seconds field means "now".
    assert_eq!(
        get(&format!("{base}/debug/pprof/heap?seconds=&format=svg"))
            .await
            .status(),
        200
    );
}
