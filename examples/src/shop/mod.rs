//! The shop: an axum service over a real SQLite database, with the classic backend killers planted,
//! each on its own route and each switchable to its fixed form (see [`fixes`]).
//!
//! [`Shop::start`] creates a database in a temporary folder, seeds it, starts the upstream
//! "inventory/payments" service on loopback and then the shop itself, all on the caller's tokio
//! runtime. Dropping the [`Shop`] stops both servers and deletes the database.
//!
//! | route | problem | fixed form |
//! | --- | --- | --- |
//! | `GET /orders?before=&limit=` | N+1 queries | one query |
//! | `GET /orders/lookup?reference=` | WHERE on an unindexed column | the index |
//! | `GET /orders/export?from=&limit=` | allocation in the hot path | one buffer |
//! | `GET /customers/{id}` | a connection per request | a shared pool |
//! | `GET /orders/{id}/quote` | sequential upstream calls | `tokio::join!` |
//! | `GET /orders/{id}/payment` | no timeout on a stalling upstream | timeout + retry |
//! | `GET /catalog` | recomputed per request | TTL cache + `Cache-Control` |

pub mod admin;
pub mod catalog;
pub mod db;
pub mod error;
pub mod fixes;
pub mod outbound;
pub mod render;
pub mod routes;
pub mod seed;
pub mod telemetry;
pub mod upstream;
pub mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::sync::oneshot;

use db::Db;
use fixes::{Fixes, Problem};
use outbound::{RetryPolicy, Upstream};
use seed::SeedSize;
use upstream::UpstreamSettings;

/// How to start the shop.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// Where the shop listens (port 0 picks a free one). Loopback by default.
    pub addr: SocketAddr,
    pub seed: SeedSize,
    /// Connections in the shared pool: enough for the expected concurrency.
    pub pool_size: u32,
    /// Problems that start fixed.
    pub fixed: Vec<Problem>,
    /// Latency of every upstream call.
    pub upstream_latency: Duration,
    /// Every n-th payments call stalls (0: never), for `upstream_stall`.
    pub stall_every: u64,
    pub upstream_stall: Duration,
    /// How long the fixed catalog is cached.
    pub catalog_ttl: Duration,
}

impl Default for ShopConfig {
    fn default() -> Self {
        let upstream = UpstreamSettings::default();
        ShopConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            seed: SeedSize::default(),
            pool_size: 8,
            fixed: Vec::new(),
            upstream_latency: upstream.latency(),
            stall_every: 20,
            upstream_stall: Duration::from_millis(1500),
            catalog_ttl: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub db: Db,
    pub fixes: Fixes,
    pub upstream: Upstream,
    pub catalog: catalog::CatalogCache,
}

/// Why the shop did not start.
#[derive(Debug)]
pub enum StartError {
    Io(std::io::Error),
    Db(sqlx::Error),
    Client(reqwest::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(e) => write!(f, "cannot start the shop: {e}"),
            StartError::Db(e) => write!(f, "cannot create the shop's database: {e}"),
            StartError::Client(e) => write!(f, "cannot create the upstream client: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running shop. Dropping it stops the servers and removes the database.
pub struct Shop {
    addr: SocketAddr,
    upstream_addr: SocketAddr,
    stop: Vec<oneshot::Sender<()>>,
    seed: SeedSize,
    // Declared last: the folder is removed after the servers stop.
    _dir: tempfile::TempDir,
}

impl Shop {
    /// Creates and seeds the database, then starts the upstream and the shop.
    pub async fn start(config: ShopConfig) -> Result<Shop, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("pyrometer-shop-")
            .tempdir()
            .map_err(StartError::Io)?;
        let db = Db::open(&dir.path().join("shop.db"), config.pool_size)
            .await
            .map_err(StartError::Db)?;
        let mut conn = db.connect().await.map_err(StartError::Db)?;
        seed::seed(&mut conn, config.seed)
            .await
            .map_err(StartError::Db)?;
        drop(conn);

        let mut stop = Vec::new();
        let settings = Arc::new(UpstreamSettings::new(
            config.upstream_latency,
            config.stall_every,
            config.upstream_stall,
        ));
        let (listener, upstream_addr) = upstream::bind().await.map_err(StartError::Io)?;
        let (tx, rx) = oneshot::channel();
        stop.push(tx);
        tokio::spawn(upstream::serve(listener, settings, async {
            let _ = rx.await;
        }));

        let state = Arc::new(AppState {
            db,
            fixes: Fixes::default(),
            upstream: Upstream::new(upstream_addr, RetryPolicy::default())
                .map_err(StartError::Client)?,
            catalog: catalog::CatalogCache::new(config.catalog_ttl),
        });
        for problem in &config.fixed {
            admin::apply(&state, *problem, true)
                .await
                .map_err(StartError::Db)?;
            state.fixes.set(*problem, true);
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(StartError::Io)?;
        let addr = listener.local_addr().map_err(StartError::Io)?;
        let (tx, rx) = oneshot::channel();
        stop.push(tx);
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Shop {
            addr,
            upstream_addr,
            stop,
            seed: config.seed,
            _dir: dir,
        })
    }

    /// Where the shop listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the upstream listens (its `/control` route changes latency and stalls).
    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream_addr
    }

    pub fn seed(&self) -> SeedSize {
        self.seed
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// The shop's routes, with the request span and query count around each.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/orders", get(routes::list_orders))
        .route("/orders/lookup", get(routes::lookup))
        .route("/orders/export", get(routes::export))
        .route("/orders/{id}/quote", get(routes::quote))
        .route("/orders/{id}/payment", get(routes::payment))
        .route("/customers/{id}", get(routes::customer))
        .route("/catalog", get(routes::catalog))
        .route("/admin/fixes", get(admin::list))
        .route("/admin/fixes/{name}", post(admin::set))
        .route("/admin/stats", get(admin::stats))
        .fallback(not_found)
        .layer(middleware::from_fn(telemetry::trace_request))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> error::ShopError {
    error::ShopError::not_found(format!("no route {}; GET / lists the routes", uri.path()))
}

async fn index() -> String {
    let mut out = String::from("pyrometer shop: each route has one planted problem\n\n");
    for problem in Problem::ALL {
        let (planted, fixed) = problem.describe();
        out.push_str(&format!(
            "GET {:<30} {:<17} planted: {planted}; fixed: {fixed}\n",
            workload::example_path(problem),
            problem.name()
        ));
    }
    out.push_str(
        "\nGET  /admin/fixes                  which problems are fixed\n\
         POST /admin/fixes/NAME?fixed=true  fix one (fixed=false plants it again)\n\
         GET  /admin/stats                  connections opened outside the pool\n",
    );
    out
}
