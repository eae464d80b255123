//! The recorded shape of a request: a tree of timed nodes (spans, and database statements that a
//! driver reports as events), each classified by the OpenTelemetry fields it carries.

use std::time::{Duration, Instant};

/// What a node stands for, from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A server request: `http.route` (or axum's `matched_path`, or `route`).
    Request {
        route: String,
        method: Option<String>,
        /// The concrete path of this request, for examples in reports.
        path: Option<String>,
    },
    /// A database statement: `db.query.text` or `db.statement`, or a sqlx `sqlx::query` event.
    Db {
        statement: String,
    },
    /// Opening a database connection (a span named `*connect*`, or `db.operation` `connect`).
    Connect,
    /// An outbound HTTP call: `url.full` (or `http.url`) with `http.request.method`.
    Http {
        method: String,
        url: String,
    },
    Other,
}

/// One span or statement of a request, with its children in the order they started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub start: Instant,
    pub end: Instant,
    /// Time the span was entered (its future being polled); the rest of its wall time it waited.
    pub busy: Duration,
    /// An error recorded on the span (`error.type`, `error`, `otel.status_code`), if any.
    pub error: Option<String>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn new(name: impl Into<String>, kind: Kind, start: Instant, end: Instant) -> Node {
        Node {
            name: name.into(),
            kind,
            start,
            end: end.max(start),
            busy: Duration::ZERO,
            error: None,
            children: Vec::new(),
        }
    }

    pub fn wall(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// This node and every node below it, depth first, each with its parent.
    pub fn walk(&self) -> Vec<(Option<&Node>, &Node)> {
        let mut out = vec![(None, self)];
        let mut i = 0;
        while i < out.len() {
            let node = out[i].1;
            out.extend(node.children.iter().map(|c| (Some(node), c)));
            i += 1;
        }
        out
    }

    /// True when an error on the span says it gave up waiting.
    pub fn timed_out(&self) -> bool {
        self.error.as_deref().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("timeout") || e.contains("timed out") || e.contains("deadline")
        })
    }
}

/// A completed tree: a request, or spans that ran outside any request.
#[derive(Debug, Clone)]
pub struct Trace {
    pub root: Node,
    /// The root is a request inside another recorded span (its tree is also in that span's trace).
    pub nested: bool,
}

impl Trace {
    /// The route, method and concrete path, when the root is a request.
    pub fn request(&self) -> Option<(&str, Option<&str>, Option<&str>)> {
        match &self.root.kind {
            Kind::Request {
                route,
                method,
                path,
            } => Some((route, method.as_deref(), path.as_deref())),
            _ => None,
        }
    }
}
