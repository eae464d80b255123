//! The endpoints merged into a service's own axum app (feature `axum`), over real HTTP on loopback:
//! the same answers as the agent's own server, and the app's other paths left alone.

mod common;

use common::{expect_error, get, PROFILER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_merges_into_the_services_own_app() {
    let _lock = PROFILER.lock().await;
    let err = pyrometer::Agent::builder().router().expect_err("refused");
    assert!(err.to_string().contains("needs a token"), "{err}");

    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .merge(
            pyrometer::Agent::builder()
                .token("s3cret")
                .router()
                .unwrap(),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorized = |path: &str| client.get(format!("{base}{path}")).bearer_auth("s3cret");

    assert_eq!(
        get(&format!("{base}/hello")).await.text().await.unwrap(),
        "hello"
    );
    // The app's own paths, its unknown ones included, do not ask for the profiler's token.
    let elsewhere = get(&format!("{base}/nothing-here")).await;
    assert_eq!(elsewhere.status(), 404);
    assert!(!elsewhere.headers().contains_key("x-go-pprof"));

    expect_error(
        get(&format!("{base}/debug/pprof/profile?seconds=1")).await,
        401,
    )
    .await;
    let ok = authorized("/debug/pprof/profile?seconds=1&format=folded")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain; charset=utf-8");

    // Every path under /debug/pprof is the agent's, answered as on its own server.
    let index = authorized("/debug/pprof/").send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index
        .text()
        .await
        .unwrap()
        .contains(r#"<form action="profile""#));
    let redirect = authorized("/debug/pprof").send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/debug/pprof/");
    let body = expect_error(
        authorized("/debug/pprof/nothing-here")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert!(
        body.contains("no such endpoint: /debug/pprof/nothing-here"),
        "{body}"
    );
    let body = expect_error(
        authorized("/debug/pprof/profile?second=1")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(body.contains("unknown parameter \"second\""), "{body}");
}
