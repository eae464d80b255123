//! The tracing layer that records request trees while a window is open.
//!
//! # What code in this file may and may not do
//!
//! These callbacks run inside every span and event of the service, on its own threads, including
//! every poll of every instrumented future (`on_enter`/`on_exit`). So:
//!
//! - With no window open (the normal state), each callback does one relaxed atomic load and
//!   returns. No allocation, no lock, no clock read, no formatting.
//! - While a window is open, a callback may read the clock and store what it needs in the span's
//!   own extensions (tracing-subscriber's per-span slot: its lock is never contended, because a
//!   span is entered by one thread at a time); it may format the few fields it keeps (route,
//!   statement, URL, error). It takes no lock shared between threads: a finished request tree is
//!   handed to each open window through a lock-free queue, and the list of windows is read
//!   through an `ArcSwap`.
//! - Nothing here may panic or block: a missing span or extension is skipped.
//! - Memory is bounded: at most [`MAX_CHILDREN`] children are kept per span, [`MAX_TRACES`]
//!   trees per window, and all windows together within the budget of [`super::budget`]; what is
//!   left out is counted and reported.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::trace::{Kind, Node, Trace};
use super::{budget, normalize};

/// Children kept per span; a request that runs more statements than this is cut short.
pub const MAX_CHILDREN: usize = 4096;
/// Trees kept per window; a window on a very busy service keeps the first ones.
pub const MAX_TRACES: usize = 100_000;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static OPEN_WINDOWS: AtomicUsize = AtomicUsize::new(0);
static DROPPED_CHILDREN: AtomicUsize = AtomicUsize::new(0);

fn sinks() -> &'static ArcSwap<Vec<Arc<Sink>>> {
    static SINKS: OnceLock<ArcSwap<Vec<Arc<Sink>>>> = OnceLock::new();
    SINKS.get_or_init(|| ArcSwap::from_pointee(Vec::new()))
}

#[inline]
fn recording() -> bool {
    OPEN_WINDOWS.load(Ordering::Relaxed) != 0
}

/// True once a [`SpansLayer`] has been created (and so, presumably, installed).
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Records spans for `/debug/pprof/spans` and `/debug/pprof/diagnose`. Compose it with the
/// service's other layers, filtered by [`WhileRecording`] (and filter those, not the registry, or
/// the spans never reach this one):
///
/// ```no_run
/// use pyrometer::spans::{SpansLayer, WhileRecording};
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry()
///     .with(SpansLayer::new().with_filter(WhileRecording))
///     .init();
/// ```
#[derive(Debug)]
pub struct SpansLayer {
    _private: (),
}

impl SpansLayer {
    pub fn new() -> Self {
        INSTALLED.store(true, Ordering::Relaxed);
        SpansLayer { _private: () }
    }
}

impl Default for SpansLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// A per-layer filter that lets spans and events through to the [`SpansLayer`] only while a
/// window is open, and costs the service nothing between windows.
///
/// Between windows it tells tracing that the span layer wants nothing at all: every callsite's
/// interest is `never` and its level hint is `OFF`. So `LevelFilter::current()`, the interest of
/// every callsite and every `enabled!` answer are exactly those of the service's other layers:
/// libraries do no debug work they would not do without pyrometer, and spans no other layer
/// wants are never created. When the first window opens and when the last one closes, the
/// callsites' interest is rebuilt (`tracing::callsite::rebuild_interest_cache`).
///
/// While a window is open, it wants every span (request trees need their inner spans) and only
/// the events the layer reads: sqlx's `sqlx::query` statements, errors, and events carrying a
/// statement or error field. Other `debug!`/`trace!` events stay as the service had them, so a
/// window does not turn on the debug logging of every library either.
///
/// Combine it with a level: `WhileRecording.and(LevelFilter::INFO)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhileRecording;

impl WhileRecording {
    /// Whether the span layer reads spans or events of this callsite at all.
    fn wants(metadata: &Metadata<'_>) -> bool {
        metadata.is_span()
            || metadata.target().starts_with("sqlx::query")
            || *metadata.level() == tracing::Level::ERROR
            || metadata
                .fields()
                .iter()
                .any(|field| Fields::is_read(field.name()))
    }
}

impl<S> Filter<S> for WhileRecording {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        recording()
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        // `sometimes`, not `always`: a callsite registered while the last window closes may keep
        // this answer until the next rebuild, and `enabled` then still says no between windows.
        if recording() && Self::wants(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if recording() {
            LevelFilter::TRACE
        } else {
            LevelFilter::OFF
        })
    }
}

/// The fields the layer keeps, under their OpenTelemetry names and the older ones.
#[derive(Debug, Default)]
struct Fields {
    route: Option<String>,
    method: Option<String>,
    path: Option<String>,
    statement: Option<String>,
    summary: Option<String>,
    operation: Option<String>,
    url: Option<String>,
    error: Option<String>,
    elapsed: Option<Duration>,
}

impl Fields {
    /// Whether a field of this name is one the layer reads.
    fn is_read(name: &str) -> bool {
        name == "elapsed_secs"
            || name == "otel.status_code"
            || Fields::default().slot(name).is_some()
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "http.route" | "matched_path" | "route" => &mut self.route,
            "http.request.method" | "http.method" | "method" => &mut self.method,
            "url.path" | "uri" | "http.target" => &mut self.path,
            "db.query.text" | "db.statement" => &mut self.statement,
            "summary" => &mut self.summary,
            "db.operation.name" | "db.operation" => &mut self.operation,
            "url.full" | "http.url" => &mut self.url,
            "error.type" | "error" | "exception.message" => &mut self.error,
            _ => return None,
        })
    }

    fn kind(&self, name: &str) -> Kind {
        fn non_empty(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        if let Some(route) = non_empty(&self.route) {
            return Kind::Request {
                route: route.to_string(),
                method: self.method.clone(),
                path: self.path.clone(),
                from_uri: false,
            };
        }
        if matches!(name, "request" | "http_request" | "http.server") {
            if let Some(path) = non_empty(&self.path) {
                let path = path.split('?').next().unwrap_or(path);
                return Kind::Request {
                    route: normalize::url(path),
                    method: self.method.clone(),
                    path: Some(path.to_string()),
                    from_uri: true,
                };
            }
        }
        if let Some(statement) = non_empty(&self.statement).or(non_empty(&self.summary)) {
            return Kind::Db {
                statement: statement.to_string(),
            };
        }
        if let Some(url) = non_empty(&self.url) {
            return Kind::Http {
                method: self.method.clone().unwrap_or_else(|| "GET".into()),
                url: url.to_string(),
            };
        }
        let connect = name.to_ascii_lowercase().contains("connect")
            || self
                .operation
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("connect"));
        if connect {
            Kind::Connect
        } else {
            Kind::Other
        }
    }
}

struct Capture<'a>(&'a mut Fields);

impl Visit for Capture<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(slot) = self.0.slot(field.name()) {
            *slot = Some(value.to_string());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" && value.is_finite() && value >= 0.0 {
            self.0.elapsed = Some(Duration::from_secs_f64(value.min(1e9)));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if let Some(slot) = self.0.slot(field.name()) {
            *slot = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(slot) = self.0.slot(field.name()) {
            *slot = Some(format!("{value:?}"));
        } else if field.name() == "otel.status_code" && format!("{value:?}").contains("ERROR") {
            self.0.error.get_or_insert_with(|| "error".into());
        }
    }
}

/// What a span carries in its extensions while a window is open.
struct Recorded {
    name: &'static str,
    start: Instant,
    busy: Duration,
    entered_at: Option<Instant>,
    entered: u32,
    fields: Fields,
    children: Vec<Node>,
}

impl Recorded {
    fn into_node(self, end: Instant) -> Node {
        let mut children = self.children;
        children.sort_by_key(|c| c.start);
        Node {
            name: self.name.to_string(),
            kind: self.fields.kind(self.name),
            start: self.start,
            end: end.max(self.start),
            busy: self.busy,
            error: self.fields.error,
            children,
        }
    }

    fn adopt(&mut self, child: Node) {
        if self.children.len() < MAX_CHILDREN {
            self.children.push(child);
        } else {
            DROPPED_CHILDREN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn emit(trace: Trace) {
    let sinks = sinks().load();
    if let Some((last, rest)) = sinks.split_last() {
        let bytes = budget::trace_bytes(&trace);
        for sink in rest {
            sink.push(trace.clone(), bytes);
        }
        last.push(trace, bytes);
    }
}

impl<S> Layer<S> for SpansLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut Capture(&mut fields));
        span.extensions_mut().replace(Recorded {
            name: attrs.metadata().name(),
            start: Instant::now(),
            busy: Duration::ZERO,
            entered_at: None,
            entered: 0,
            fields,
            children: Vec::new(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(recorded) = extensions.get_mut::<Recorded>() {
            values.record(&mut Capture(&mut recorded.fields));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(r) = extensions.get_mut::<Recorded>() {
            if r.entered == 0 {
                r.entered_at = Some(Instant::now());
            }
            r.entered += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(r) = extensions.get_mut::<Recorded>() {
            r.entered = r.entered.saturating_sub(1);
            if r.entered == 0 {
                if let Some(at) = r.entered_at.take() {
                    r.busy += at.elapsed();
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut Capture(&mut fields));
        let is_statement =
            event.metadata().target().starts_with("sqlx::query") || fields.statement.is_some();
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(parent) = extensions.get_mut::<Recorded>() else {
            return;
        };
        if is_statement {
            // sqlx reports a statement once it is done, with how long it took.
            let end = Instant::now();
            let start = end
                .checked_sub(fields.elapsed.unwrap_or_default())
                .unwrap_or(end);
            let kind = fields.kind("sqlx::query");
            parent.adopt(Node::new("sqlx::query", kind, start, end));
        } else if let Some(error) = fields.error {
            parent.fields.error.get_or_insert(error);
        } else if *event.metadata().level() == tracing::Level::ERROR {
            parent.fields.error.get_or_insert_with(|| "error".into());
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !recording() {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let Some(recorded) = span.extensions_mut().remove::<Recorded>() else {
            return;
        };
        let node = recorded.into_node(Instant::now());
        let is_request = matches!(node.kind, Kind::Request { .. });
        if let Some(parent) = span.parent() {
            let mut extensions = parent.extensions_mut();
            if let Some(parent) = extensions.get_mut::<Recorded>() {
                if is_request {
                    emit(Trace {
                        root: node.clone(),
                        nested: true,
                    });
                }
                parent.adopt(node);
                return;
            }
        }
        emit(Trace {
            root: node,
            nested: false,
        });
    }
}

/// Where one window collects finished trees.
#[derive(Default)]
struct Sink {
    traces: SegQueue<Trace>,
    kept: AtomicUsize,
    dropped: AtomicUsize,
    /// Bytes charged against the budget for the trees in `traces`.
    charged: AtomicUsize,
}

impl Sink {
    fn push(&self, trace: Trace, bytes: usize) {
        if self.kept.fetch_add(1, Ordering::Relaxed) < MAX_TRACES && budget::try_charge(bytes) {
            self.charged.fetch_add(bytes, Ordering::Relaxed);
            self.traces.push(trace);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        budget::release(*self.charged.get_mut());
    }
}

/// The layer is not installed, so a window would record nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInstalled;

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "span recording is not enabled: add pyrometer::spans::SpansLayer::new() to the \
             service's tracing subscriber (tracing_subscriber::registry().with(..))",
        )
    }
}

impl std::error::Error for NotInstalled {}

/// An open recording window. Several may be open at once; each gets every tree that finishes
/// while it is open. Dropping it stops its recording.
pub struct Window {
    sink: Arc<Sink>,
    opened: Instant,
    dropped_children_before: usize,
}

/// What a window saw.
#[derive(Debug, Clone)]
pub struct Recording {
    pub traces: Vec<Trace>,
    /// When the window opened.
    pub opened: Instant,
    pub duration: Duration,
    /// Trees left out because the window, or the budget of all windows, was full.
    pub dropped_traces: usize,
    /// Spans and statements left out of trees that had [`MAX_CHILDREN`] already.
    pub dropped_children: usize,
}

impl Window {
    pub fn open() -> Result<Window, NotInstalled> {
        if !is_installed() {
            return Err(NotInstalled);
        }
        let sink = Arc::new(Sink::default());
        sinks().rcu(|current| {
            let mut next = Vec::clone(current);
            next.push(sink.clone());
            next
        });
        windows_changed(|open| open + 1);
        Ok(Window {
            sink,
            opened: Instant::now(),
            dropped_children_before: DROPPED_CHILDREN.load(Ordering::Relaxed),
        })
    }

    /// Closes the window and returns the trees that finished while it was open.
    pub fn finish(self) -> Recording {
        let duration = self.opened.elapsed();
        let mut traces = Vec::with_capacity(self.sink.traces.len());
        while let Some(trace) = self.sink.traces.pop() {
            traces.push(trace);
        }
        traces.sort_by_key(|t| t.root.start);
        super::trace::bound_uri_routes(&mut traces);
        Recording {
            traces,
            opened: self.opened,
            duration,
            dropped_traces: self.sink.dropped.load(Ordering::Relaxed),
            dropped_children: DROPPED_CHILDREN
                .load(Ordering::Relaxed)
                .saturating_sub(self.dropped_children_before),
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        sinks().rcu(|current| {
            current
                .iter()
                .filter(|s| !Arc::ptr_eq(s, &self.sink))
                .cloned()
                .collect::<Vec<_>>()
        });
        windows_changed(|open| open - 1);
    }
}

/// Changes the number of open windows and, when it goes from none to some or back, makes tracing
/// ask [`WhileRecording`] again for every callsite's interest and the maximum level.
///
/// The lock orders the count changes with their rebuilds, so the last rebuild always sees the last
/// count. A callsite first hit while a rebuild runs may compute its interest from the count just
/// before the change: one that misses the first window's opening is recorded from the next window
/// on, and one that keeps `sometimes` past the last window's close costs one `enabled` call per
/// use, which answers no. `LevelFilter::current()` is computed by the rebuild itself, so it is
/// always right once `open` or `drop` returns.
fn windows_changed(change: impl FnOnce(usize) -> usize) {
    static CHANGING: Mutex<()> = Mutex::new(());
    let _guard = CHANGING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = OPEN_WINDOWS.load(Ordering::Relaxed);
    let after = change(before);
    OPEN_WINDOWS.store(after, Ordering::Relaxed);
    if (before == 0) != (after == 0) {
        tracing::callsite::rebuild_interest_cache();
    }
}
