//! Span windows over real HTTP: a small service with real SQLite (through sqlx, whose statements
//! reach the layer as `sqlx::query` events) and real outbound calls to an upstream on loopback.

mod common;

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing;
use axum::Router;
use common::{expect_error, get, go_tool_pprof, loopback, start, temp_file};
use pyrometer::profile::{folded, pprof};
use pyrometer::spans::DiagnoseConfig;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::SqlitePool;
use tracing::Instrument;

#[derive(Clone)]
struct App {
    db: SqlitePool,
    upstream: String,
    client: reqwest::Client,
}

async fn server_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.server",
        http.route = %route,
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
    );
    next.run(request).instrument(span).await
}

/// A list query, then one query per order: N+1, with sqlx's own events as the only spans.
async fn orders(State(app): State<App>) -> String {
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM orders ORDER BY id LIMIT 6")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let mut lines = 0;
    for (id,) in ids {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT qty FROM lines WHERE order_id = ?")
            .bind(id)
            .fetch_all(&app.db)
            .await
            .unwrap();
        lines += rows.len();
    }
    // A task spawned without `.instrument` belongs to no request.
    let db = app.db.clone();
    tokio::spawn(async move {
        for _ in 0..6 {
            let _ = sqlx::query("SELECT count(*) FROM lines WHERE qty = 1")
                .execute(&db)
                .await;
        }
    });
    lines.to_string()
}

async fn call(app: &App, path: &str) {
    let url = format!("{}{path}", app.upstream);
    let span = tracing::info_span!("http.client", http.request.method = "GET", url.full = %url);
    app.client.get(&url).send().instrument(span).await.unwrap();
}

async fn quote(State(app): State<App>) -> &'static str {
    call(&app, "/inventory/7").await;
    call(&app, "/pricing/7").await;
    call(&app, "/shipping/7").await;
    "sequential"
}

async fn quote_concurrent(State(app): State<App>) -> &'static str {
    tokio::join!(
        call(&app, "/inventory/8"),
        call(&app, "/pricing/8"),
        call(&app, "/shipping/8")
    );
    "concurrent"
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn start_service() -> String {
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        "{}"
    };
    let upstream = serve(
        Router::new()
            .route("/inventory/{id}", routing::get(slow))
            .route("/pricing/{id}", routing::get(slow))
            .route("/shipping/{id}", routing::get(slow)),
    )
    .await;
    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE orders (id INTEGER PRIMARY KEY)",
        "CREATE TABLE lines (order_id INTEGER, qty INTEGER)",
        "INSERT INTO orders (id) VALUES (1), (2), (3), (4), (5), (6)",
        "INSERT INTO lines (order_id, qty) VALUES (1, 1), (2, 2), (3, 1), (4, 2), (5, 1), (6, 3)",
    ] {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    let app = App {
        db,
        upstream,
        client: reqwest::Client::new(),
    };
    serve(
        Router::new()
            .route("/orders", routing::get(orders))
            .route("/quote", routing::get(quote))
            .route("/quote-concurrent", routing::get(quote_concurrent))
            .layer(axum::middleware::from_fn(server_span))
            .with_state(app),
    )
    .await
}

/// Requests to every route, one after another, for about `seconds`.
async fn drive(base: String, seconds: u64) -> usize {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0;
    while tokio::time::Instant::now() < deadline {
        for path in ["/orders", "/quote", "/quote-concurrent"] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            sent += 1;
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_and_spans_windows_over_http() {
    common::install_span_layer();
    let service = start_service().await;
    // sqlite in memory is fast: let any repeat count as N+1, so that the real sqlx events do.
    let config = DiagnoseConfig {
        n_plus_one_min_total: Duration::ZERO,
        ..DiagnoseConfig::default()
    };
    let (_agent, base) = start(loopback().diagnose(config));

    // Two windows at once: each sees every request.
    let load = tokio::spawn(drive(service.clone(), 4));
    let (diagnose_url, spans_url) = (
        format!("{base}/debug/pprof/diagnose?seconds=3&format=json"),
        format!("{base}/debug/pprof/spans?seconds=3"),
    );
    let (diagnosis, spans) = tokio::join!(get(&diagnose_url), get(&spans_url));
    assert!(load.await.unwrap() > 0);

    assert_eq!(diagnosis.status(), 200);
    assert_eq!(diagnosis.headers()["content-type"], "application/json");
    let report: serde_json::Value = diagnosis.json().await.unwrap();
    let findings: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["route"].as_str().unwrap().to_string(),
                f["pattern"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        findings.contains(&(
            "n_plus_one_queries".into(),
            "GET /orders".into(),
            "SELECT qty FROM lines WHERE order_id = ?".into()
        )),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|(kind, route, _)| kind == "consecutive_http_calls" && route == "GET /quote"),
        "{findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|(_, route, _)| route == "GET /quote-concurrent"),
        "concurrent calls are not a finding: {findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|(_, _, pattern)| pattern.contains("qty = ?")),
        "the spawned task's statements belong to no request: {findings:#?}"
    );
    let routes = report["routes"].as_array().unwrap();
    let orders = routes.iter().find(|r| r["route"] == "GET /orders").unwrap();
    assert!(orders["requests"].as_u64().unwrap() > 0);
    assert_eq!(
        orders["queries_max"].as_u64(),
        Some(7),
        "1 list + 6 per order"
    );
    let quote = routes.iter().find(|r| r["route"] == "GET /quote").unwrap();
    assert!(
        quote["p50_ms"].as_f64().unwrap() >= 180.0,
        "three 60 ms calls in a row"
    );
    assert_eq!(quote["calls_max"].as_u64(), Some(3));

    // The span profile: wall time by route and nested call, busy and waiting.
    assert_eq!(spans.status(), 200);
    let bytes = spans.bytes().await.unwrap();
    let profile = pprof::decode(&bytes).unwrap();
    let kinds: Vec<String> = profile.sample_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        kinds,
        [
            "wall/nanoseconds",
            "busy/nanoseconds",
            "waiting/nanoseconds"
        ]
    );
    let walls = folded::write(&profile, 0);
    let upstream_call = walls
        .lines()
        .find(|l| {
            l.starts_with("GET /quote;http: GET http://127.0.0.1:") && l.contains("/inventory/{id}")
        })
        .unwrap_or_else(|| panic!("no upstream call under GET /quote:\n{walls}"));
    let nanos: i64 = upstream_call.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(nanos >= 60_000_000, "{upstream_call}");
    assert!(
        walls
            .lines()
            .any(|l| l.starts_with("GET /orders;db: SELECT qty FROM lines WHERE order_id = ?")),
        "{walls}"
    );
    // Waiting on the upstream is nearly all waiting, not busy.
    let waiting = folded::write(&profile, 2);
    let waited: i64 = waiting
        .lines()
        .filter(|l| l.starts_with("GET /quote;http:"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    let walled: i64 = walls
        .lines()
        .filter(|l| l.starts_with("GET /quote;http:"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert!(waited * 10 >= walled * 9, "waited {waited} of {walled}");

    let path = temp_file("spans.pb.gz", &bytes);
    for index in ["wall", "busy", "waiting"] {
        let top = go_tool_pprof(&["-top", &format!("-sample_index={index}")], &path);
        assert!(
            top.contains("GET /quote"),
            "go tool pprof -sample_index={index}:\n{top}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_html_reports_and_bad_parameters() {
    common::install_span_layer();
    let service = start_service().await;
    let (_agent, base) = start(loopback().max_seconds(10));
    let load = tokio::spawn(drive(service, 2));
    let text = get(&format!("{base}/debug/pprof/diagnose?seconds=1")).await;
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    let text = text.text().await.unwrap();
    assert!(text.starts_with("pyrometer diagnose: "), "{text}");
    assert!(text.contains("GET /quote"), "{text}");
    let html = get(&format!(
        "{base}/debug/pprof/diagnose?seconds=1&format=html"
    ))
    .await;
    let html = html.text().await.unwrap();
    assert!(
        html.contains("<table>") && html.contains("GET /quote"),
        "{html}"
    );
    load.await.unwrap();

    let cases: &[(&str, &str)] = &[
        (
            "spans?seconds=0",
            "seconds: expected a whole number from 1 to 10",
        ),
        ("spans?seconds=11", "from 1 to 10"),
        (
            "spans?format=xml",
            "format: expected one of pprof, folded, svg",
        ),
        (
            "spans?sample_index=cpu",
            "sample_index: expected one of wall, busy, waiting",
        ),
        (
            "diagnose?format=svg",
            "format: expected one of text, json, html, got \"svg\"",
        ),
        ("diagnose?frequency=99", "unknown parameter \"frequency\""),
    ];
    for (path, message) in cases {
        let body = expect_error(get(&format!("{base}/debug/pprof/{path}")).await, 400).await;
        assert!(body.contains(message), "{path}: {body:?}");
    }
    let svg = get(&format!(
        "{base}/debug/pprof/spans?seconds=1&format=svg&sample_index=waiting"
    ))
    .await;
    assert_eq!(svg.status(), 200);
    assert!(svg
        .text()
        .await
        .unwrap()
        .contains("waiting time of request spans"));
}
