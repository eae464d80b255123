//! The recorded shape of a request: a tree of timed nodes (spans, and database statements that a
//! driver reports as events), each classified by the OpenTelemetry fields it carries.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Distinct routes folded from URIs kept per window; requests beyond them are counted under
/// [`OTHER_ROUTE`], so a service whose URIs carry names or tags (`/users/alice`) cannot fill a
/// report with one row per URI. Routes recorded as templates (`http.route`) are never bounded.
pub const MAX_URI_ROUTES: usize = 100;
/// The one route, without a method, of requests beyond [`MAX_URI_ROUTES`].
pub const OTHER_ROUTE: &str = "other";

/// What a node stands for, from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A server request: `http.route` (or axum's `matched_path`, or `route`).
    Request {
        route: String,
        method: Option<String>,
        /// The concrete path of this request, for examples in reports.
        path: Option<String>,
        /// No route template was recorded: the route is the path with its ids folded, one of
        /// at most [`MAX_URI_ROUTES`] per window.
        from_uri: bool,
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
                ..
            } => Some((route, method.as_deref(), path.as_deref())),
            _ => None,
        }
    }
}

/// Keeps the first [`MAX_URI_ROUTES`] distinct method and route pairs folded from URIs, in the
/// order of `traces`, and moves every later request of another pair to [`OTHER_ROUTE`]. Nested
/// requests are bounded too, the same way in their own trace and in the tree holding them.
pub fn bound_uri_routes(traces: &mut [Trace]) {
    fn visit(node: &mut Node, kept: &mut HashSet<(Option<String>, String)>) {
        if let Kind::Request {
            route,
            method,
            from_uri: true,
            ..
        } = &mut node.kind
        {
            let key = (method.clone(), route.clone());
            if !kept.contains(&key) {
                if kept.len() < MAX_URI_ROUTES {
                    kept.insert(key);
                } else {
                    *route = OTHER_ROUTE.to_string();
                    *method = None;
                }
            }
        }
        for child in &mut node.children {
            visit(child, kept);
        }
    }
    let mut kept = HashSet::new();
    for trace in traces {
        visit(&mut trace.root, &mut kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(route: &str, from_uri: bool, children: Vec<Node>) -> Node {
        let t = Instant::now();
        let mut node = Node::new(
            "request",
            Kind::Request {
                route: route.into(),
                method: Some("GET".into()),
                path: Some(route.into()),
                from_uri,
            },
            t,
            t,
        );
        node.children = children;
        node
    }

    fn routes(traces: &[Trace]) -> HashSet<String> {
        traces
            .iter()
            .flat_map(|t| t.root.walk())
            .filter_map(|(_, n)| match &n.kind {
                Kind::Request { route, method, .. } => {
                    Some(format!("{} {route}", method.as_deref().unwrap_or("*")))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn routes_from_uris_are_bounded_and_templates_are_not() {
        let mut traces: Vec<Trace> = (0..300)
            .map(|i| Trace {
                root: request(&format!("/users/user{i}"), true, vec![]),
                nested: false,
            })
            .chain((0..150).map(|i| Trace {
                root: request(&format!("/template{i}"), false, vec![]),
                nested: false,
            }))
            .collect();
        // A request folded from its URI inside a recorded span, after the bound is reached.
        traces.push(Trace {
            root: Node {
                children: vec![request("/users/late", true, vec![])],
                ..Node::new("job", Kind::Other, Instant::now(), Instant::now())
            },
            nested: false,
        });
        bound_uri_routes(&mut traces);
        let routes = routes(&traces);
        let from_uris = routes.iter().filter(|r| r.contains("/users/")).count();
        let templates = routes.iter().filter(|r| r.contains("/template")).count();
        assert_eq!(from_uris, MAX_URI_ROUTES);
        assert!(routes.contains("GET /users/user99"));
        assert!(!routes.contains("GET /users/user100"));
        assert!(!routes.contains("GET /users/late"));
        assert!(routes.contains(&format!("* {OTHER_ROUTE}")));
        assert_eq!(templates, 150);
        assert_eq!(routes.len(), MAX_URI_ROUTES + 150 + 1);
    }
}
