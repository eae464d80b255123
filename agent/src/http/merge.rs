//! The endpoints mounted in a service's own axum 0.8 app (the optional `axum` feature). The paths
//! under `/debug/pprof` are handed whole to the same request handler the agent's own server uses,
//! so both answer alike; every other path stays the app's, including its fallback.

use axum::extract::Request;
use axum::routing::any;
use axum::Router;

use super::{routes, HttpConfig, Shared};

/// The `/debug/pprof/...` endpoints. Merge it into an app with `app.merge(router(config))`.
pub fn router(config: HttpConfig) -> Router {
    let shared = Shared::new(config);
    let endpoints = move |request: Request| {
        let shared = shared.clone();
        // No endpoint reads a body: it is dropped here rather than held for a whole window.
        let (head, _) = request.into_parts();
        async move { routes::handle(&shared, &head).await }
    };
    Router::new()
        .route("/debug/pprof", any(endpoints.clone()))
        .route("/debug/pprof/", any(endpoints.clone()))
        .route("/debug/pprof/{*endpoint}", any(endpoints))
}
