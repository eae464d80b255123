//! Request spans: where request time goes, waiting included, and the backend problems visible
//! in it (N+1 queries, sequential calls, slow queries, a connection per request, calls without
//! timeouts).
//!
//! CPU profiles cannot see a request that waits, and most slow backends are slow while their
//! tasks wait on a database or an API. The service's own tracing spans can see it: install
//! [`SpansLayer`] next to its other layers, and a window ([`Window`]) collects every request
//! tree that finishes while it is open. [`profile::build`] turns them into a wall-time profile,
//! [`diagnose::diagnose`] into per-route percentiles and findings.
//!
//! What is recognized, by OpenTelemetry's field names (current and older) and the common
//! crates' conventions:
//! - requests: `http.route` (or axum's `matched_path`, or `route`); tower-http's `request`
//!   span (its `uri`, with ids folded into `{id}`, stands in for the route, for at most
//!   [`MAX_URI_ROUTES`] routes per window; `request_span`, with the feature `axum` or `axum07`,
//!   records the route instead);
//! - statements: spans with `db.query.text` / `db.statement`, and sqlx's `sqlx::query` events
//!   (their start is the event's time less `elapsed_secs`);
//! - outbound calls: spans with `url.full` / `http.url` and `http.request.method`;
//! - connection set-up: spans named `*connect*` or with `db.operation` `connect`, and PRAGMA or
//!   SET statements.
//!
//! Spans of tasks spawned without `.instrument(..)` have no parent; they are kept as trees of
//! their own, outside any request, and never counted against a route.

pub mod budget;
pub mod diagnose;
mod layer;
pub mod normalize;
pub mod profile;
pub mod report;
#[cfg(any(feature = "axum", feature = "axum07"))]
mod route;
pub mod trace;

pub use diagnose::{diagnose, DiagnoseConfig, Finding, FindingKind, Report};
pub use layer::{
    is_installed, NotInstalled, Recording, SpansLayer, WhileRecording, Window, MAX_CHILDREN,
    MAX_TRACES,
};
#[cfg(any(feature = "axum", feature = "axum07"))]
pub use route::request_span;
pub use trace::{MAX_URI_ROUTES, OTHER_ROUTE};
