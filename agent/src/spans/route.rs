//! A span maker for tower-http's `TraceLayer` that records the route axum matched.
//!
//! tower-http's default `request` span carries only the URI, so a window can only fold ids out of
//! it (`/users/42` becomes `/users/{id}`): names and tags (`/users/alice`) stay one route per URI,
//! up to [`MAX_URI_ROUTES`](super::MAX_URI_ROUTES). axum knows the template it matched
//! (`/users/{name}`) and leaves it in the request's extensions as `MatchedPath`; [`request_span`]
//! records it as `http.route` in the span tower-http makes by default (named `request`, at DEBUG,
//! with `method`, `uri` and `version`), so the service's logs stay as they were.
//!
//! axum puts `MatchedPath` in the extensions before the middleware of `Router::layer` runs, so the
//! `TraceLayer` goes there, not around the router. One function serves axum 0.8 (feature `axum`)
//! and 0.7 (feature `axum07`): both build on the same `http` crate and differ only in the
//! `MatchedPath` type looked up.

use http::{Extensions, Request};
use tracing::Span;

/// The span tower-http's `TraceLayer` makes by default, plus `http.route`, for
/// `TraceLayer::new_for_http().make_span_with(pyrometer::spans::request_span)`.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        http.route = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Some(route) = matched_route(request.extensions()) {
            span.record("http.route", route);
        }
    }
    span
}

/// The route template axum matched, under whichever axum versions are enabled.
fn matched_route(extensions: &Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    #[cfg(feature = "axum07")]
    if let Some(path) = extensions.get::<axum07::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    None
}
