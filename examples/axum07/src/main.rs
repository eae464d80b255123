//! A small service built the way many are: axum 0.7, tower-http 0.5's `TraceLayer`, and logging
//! that `tracing_subscriber::fmt().init()` set up. Then pyrometer added the way its README says:
//! the agent, the span layer next to the fmt layer, and the `TraceLayer`'s span made by
//! `pyrometer::spans::request_span` so that requests are grouped by axum's route.
//!
//! ```sh
//! cargo run -p pyrometer-example-axum07
//! curl http://127.0.0.1:3000/users/alice
//! curl 'http://127.0.0.1:6060/debug/pprof/diagnose?seconds=10'
//! ```
//!
//! The service listens on `APP_ADDR` (default 127.0.0.1:3000), the agent on `PYROMETER_ADDR`
//! (default 127.0.0.1:6060). For comparisons, `--without-pyrometer` runs the service as it was
//! before (`fmt().init()`, no agent), and `--default-span` keeps tower-http's default span.

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;
use tracing::level_filters::LevelFilter;

async fn user(Path(name): Path<String>) -> String {
    tracing::info!(%name, "user looked up");
    tracing::debug!(len = name.len(), "debug detail");
    format!("hello {name}\n")
}

fn addr(var: &str, default: &str) -> SocketAddr {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_string());
    value.parse().unwrap_or_else(|e| {
        eprintln!("{var}: expected an address like {default}, got {value:?}: {e}");
        std::process::exit(2)
    })
}

/// The app's logging as `fmt().init()` had it (INFO unless `RUST_LOG` says otherwise), with the
/// span layer beside it.
fn init_tracing_with_pyrometer() {
    use pyrometer::spans::{SpansLayer, WhileRecording};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter))
        .with(SpansLayer::new().with_filter(WhileRecording))
        .init();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pyrometer = !args.iter().any(|a| a == "--without-pyrometer");
    let default_span = args.iter().any(|a| a == "--default-span");
    let app_addr = addr("APP_ADDR", "127.0.0.1:3000");

    let _agent = if pyrometer {
        init_tracing_with_pyrometer();
        let agent_addr = addr("PYROMETER_ADDR", "127.0.0.1:6060");
        match pyrometer::Agent::builder().bind(agent_addr).start() {
            Ok(agent) => Some(agent),
            Err(e) => {
                tracing::warn!("profiler off: {e}");
                None
            }
        }
    } else {
        tracing_subscriber::fmt().init();
        None
    };

    let trace = TraceLayer::new_for_http();
    let router = Router::new().route("/users/:name", get(user));
    let router = if pyrometer && !default_span {
        router.layer(trace.make_span_with(pyrometer::spans::request_span))
    } else {
        router.layer(trace)
    };

    let listener = match tokio::net::TcpListener::bind(app_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {app_addr}: {e}");
            std::process::exit(1)
        }
    };
    tracing::info!(addr = %app_addr, max_level = %LevelFilter::current(), "listening");
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("server stopped: {e}");
    }
}
