//! A process that did not install the sampling allocator: the heap endpoints answer 503 and say
//! how to install it, and the rest of the agent works as usual.

mod common;

use common::{expect_error, get, loopback, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_endpoints_say_how_to_install_the_allocator() {
    let (_agent, base) = start(loopback());
    assert!(!pyrometer::heap::is_installed());
    for path in ["heap", "allocs?seconds=1", "heap?format=svg"] {
        let body = expect_error(get(&format!("{base}/debug/pprof/{path}")).await, 503).await;
        assert!(body.starts_with("heap profiling is not enabled"), "{body}");
        assert!(
            body.contains("#[global_allocator] static ALLOC: pyrometer::heap::SamplingAllocator"),
            "{body}"
        );
    }
    // Bad parameters are still named first.
    let body = expect_error(
        get(&format!("{base}/debug/pprof/heap?seconds=0")).await,
        400,
    )
    .await;
    assert!(body.starts_with("seconds:"), "{body}");
    let page = get(&format!("{base}/debug/pprof/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("not installed"), "{page}");
}
