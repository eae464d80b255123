//! The upstream "inventory/payments" service the shop calls: a second axum server on loopback,
//! inside the same process, whose latency and stalls can be set at start and at run time.
//!
//! Outbound-call problems only show against an upstream that behaves like a real one: every call
//! takes a while, and now and then one hangs. Stalls are deterministic (every n-th payments call),
//! so a test or a benchmark sees the same number of them in every run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// How the upstream behaves. All values can be changed while it runs.
#[derive(Debug)]
pub struct UpstreamSettings {
    latency_us: AtomicU64,
    stall_every: AtomicU64,
    stall_ms: AtomicU64,
    payments: AtomicU64,
}

impl UpstreamSettings {
    /// `latency` for every call; every `stall_every`-th payments call (0: never) hangs a further
    /// `stall`.
    pub fn new(latency: Duration, stall_every: u64, stall: Duration) -> Self {
        UpstreamSettings {
            latency_us: AtomicU64::new(latency.as_micros() as u64),
            stall_every: AtomicU64::new(stall_every),
            stall_ms: AtomicU64::new(stall.as_millis() as u64),
            payments: AtomicU64::new(0),
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    fn describe(&self) -> Value {
        json!({
            "latency_ms": self.latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            "stall_every": self.stall_every.load(Ordering::Relaxed),
            "stall_ms": self.stall_ms.load(Ordering::Relaxed),
        })
    }

    /// The extra wait of the next payments call.
    fn next_stall(&self) -> Option<Duration> {
        let every = self.stall_every.load(Ordering::Relaxed);
        let n = self.payments.fetch_add(1, Ordering::Relaxed) + 1;
        (every > 0 && n.is_multiple_of(every))
            .then(|| Duration::from_millis(self.stall_ms.load(Ordering::Relaxed)))
    }
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings::new(Duration::from_millis(10), 20, Duration::from_millis(1500))
    }
}

/// The upstream's routes.
pub fn router(settings: Arc<UpstreamSettings>) -> Router {
    Router::new()
        .route("/inventory/{order}", get(inventory))
        .route("/pricing/{order}", get(pricing))
        .route("/shipping/{order}", get(shipping))
        .route("/payments/{order}", get(payment))
        .route("/control", get(show).post(control))
        .with_state(settings)
}

/// Serves the upstream on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Arc<UpstreamSettings>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(settings))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the upstream's listener on loopback.
pub async fn bind() -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn inventory(State(s): State<Arc<UpstreamSettings>>, Path(order): Path<u64>) -> Json<Value> {
    tokio::time::sleep(s.latency()).await;
    Json(json!({ "order": order, "reserved": order % 17 != 0 }))
}

async fn pricing(State(s): State<Arc<UpstreamSettings>>, Path(order): Path<u64>) -> Json<Value> {
    tokio::time::sleep(s.latency()).await;
    Json(json!({ "order": order, "discount_cents": (order * 37) % 500 }))
}

async fn shipping(State(s): State<Arc<UpstreamSettings>>, Path(order): Path<u64>) -> Json<Value> {
    tokio::time::sleep(s.latency()).await;
    Json(json!({ "order": order, "days": 1 + order % 5 }))
}

async fn payment(State(s): State<Arc<UpstreamSettings>>, Path(order): Path<u64>) -> Json<Value> {
    let wait = s.latency() + s.next_stall().unwrap_or_default();
    tokio::time::sleep(wait).await;
    Json(json!({ "order": order, "status": if order % 9 == 0 { "refunded" } else { "captured" } }))
}

#[derive(Debug, Deserialize)]
struct Control {
    latency_ms: Option<f64>,
    stall_every: Option<u64>,
    stall_ms: Option<u64>,
}

async fn show(State(s): State<Arc<UpstreamSettings>>) -> Json<Value> {
    Json(s.describe())
}

/// `POST /control?latency_ms=5&stall_every=10&stall_ms=2000`: changes what is given.
async fn control(
    State(s): State<Arc<UpstreamSettings>>,
    Query(c): Query<Control>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    if let Some(ms) = c.latency_ms {
        if !(0.0..=60_000.0).contains(&ms) {
            return Err((
                axum::http::StatusCode::BAD_REQUEST,
                format!("latency_ms must be between 0 and 60000, got {ms}"),
            ));
        }
        s.latency_us.store((ms * 1000.0) as u64, Ordering::Relaxed);
    }
    if let Some(every) = c.stall_every {
        s.stall_every.store(every, Ordering::Relaxed);
    }
    if let Some(ms) = c.stall_ms {
        s.stall_ms.store(ms.min(60_000), Ordering::Relaxed);
    }
    Ok(Json(s.describe()))
}
