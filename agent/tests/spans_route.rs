//! `request_span` on axum 0.8 and tower-http 0.6 over real loopback HTTP: requests for many
//! names are one route, the template axum matched. (axum 0.7 is tested by `examples/axum07`.)
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use pyrometer::spans::trace::Kind;
use pyrometer::spans::{request_span, SpansLayer, WhileRecording, Window};
use tower_http::trace::TraceLayer;
use tracing_subscriber::prelude::*;

async fn user(Path(name): Path<String>) -> String {
    format!("hello {name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_one_route_through_request_span() {
    tracing_subscriber::registry()
        .with(SpansLayer::new().with_filter(WhileRecording))
        .init();
    let router = Router::new()
        .route("/users/{name}", get(user))
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let window = Window::open().unwrap();
    let client = reqwest::Client::new();
    for i in 0..50 {
        let body = client
            .get(format!("{base}/users/name{i}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, format!("hello name{i}"));
    }
    // The server closes a request's span just after the client has the response.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let routes: Vec<(String, bool)> = window
        .finish()
        .traces
        .iter()
        .filter_map(|t| match &t.root.kind {
            Kind::Request {
                route, from_uri, ..
            } => Some((route.clone(), *from_uri)),
            _ => None,
        })
        .collect();
    assert_eq!(routes, vec![("/users/{name}".to_string(), false); 50]);
}
