//! Per-route latency and the backend performance problems visible in request trees.
//!
//! The detectors follow Sentry's performance-issue detectors and their published default
//! thresholds (all configurable through [`DiagnoseConfig`]):
//!
//! | finding | reported when |
//! | --- | --- |
//! | N+1 queries | one request runs the same normalized statement 5+ times in a row after a different statement, 50 ms or more together |
//! | consecutive queries / calls | sibling calls that ran one after another, without overlap, with different statements or URLs, where running them at once would save 100 ms or more |
//! | slow query | a statement's p95 is 500 ms or more |
//! | connection per request | connection set-up (a connect span, or PRAGMA/SET statements) in at least half the requests of a route |
//! | no timeout | an outbound call whose slowest calls take 10x the median and 1 s or more, and none of which ever ended in a timeout |
//! | repeated calls | one request calls the same URL pattern 5+ times |

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::layer::Recording;
use super::normalize;
use super::trace::{Kind, Node, Trace};

/// Thresholds of the detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnoseConfig {
    pub n_plus_one_min_repeats: usize,
    pub n_plus_one_min_total: Duration,
    pub consecutive_db_min_saved: Duration,
    pub consecutive_http_min_saved: Duration,
    pub slow_query_p95: Duration,
    /// Share of a route's requests that open a connection, from 0 to 1.
    pub connection_per_request_share: f64,
    pub no_timeout_ratio: u32,
    pub no_timeout_min: Duration,
    /// Calls needed before the slowest can be compared with the median.
    pub no_timeout_min_calls: usize,
    pub repeated_call_min: usize,
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        DiagnoseConfig {
            n_plus_one_min_repeats: 5,
            n_plus_one_min_total: Duration::from_millis(50),
            consecutive_db_min_saved: Duration::from_millis(100),
            consecutive_http_min_saved: Duration::from_millis(100),
            slow_query_p95: Duration::from_millis(500),
            connection_per_request_share: 0.5,
            no_timeout_ratio: 10,
            no_timeout_min: Duration::from_secs(1),
            no_timeout_min_calls: 5,
            repeated_call_min: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    NPlusOneQueries,
    ConsecutiveQueries,
    ConsecutiveHttpCalls,
    SlowQuery,
    ConnectionPerRequest,
    NoTimeout,
    RepeatedHttpCalls,
}

impl FindingKind {
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::NPlusOneQueries => "N+1 queries",
            FindingKind::ConsecutiveQueries => "consecutive queries that could run concurrently",
            FindingKind::ConsecutiveHttpCalls => {
                "sequential outbound calls that could run concurrently"
            }
            FindingKind::SlowQuery => "slow query",
            FindingKind::ConnectionPerRequest => "a new database connection per request",
            FindingKind::NoTimeout => "outbound call without a timeout",
            FindingKind::RepeatedHttpCalls => "repeated outbound calls in one request",
        }
    }
}

/// One problem, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub title: &'static str,
    pub route: String,
    /// The normalized statement(s) or URL pattern(s).
    pub pattern: String,
    /// Executions (or calls) that make up the finding.
    pub occurrences: u64,
    /// Requests in which it was seen.
    pub requests: u64,
    /// Time it cost, in milliseconds (for consecutive calls: what running them at once would save).
    pub cost_ms: f64,
    pub example: String,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteStats {
    pub route: String,
    pub requests: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub queries_mean: f64,
    pub queries_max: u64,
    pub calls_mean: f64,
    pub calls_max: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub requests: u64,
    pub routes: Vec<RouteStats>,
    pub findings: Vec<Finding>,
    /// Requests left out because the window was full, and spans left out of very large requests.
    pub dropped_requests: usize,
    pub dropped_spans: usize,
}

/// A request of the window, with what the detectors need.
struct RequestView<'a> {
    route: String,
    path: String,
    node: &'a Node,
    /// Offset of the request's start in the window.
    offset: Duration,
}

impl RequestView<'_> {
    fn example(&self) -> String {
        format!(
            "{} at +{:.1} s in the window, took {:.0} ms",
            self.path,
            self.offset.as_secs_f64(),
            ms(self.node.wall())
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A statement that sets up a connection rather than doing the request's work.
fn is_setup(statement: &str) -> bool {
    let head = statement
        .trim_start()
        .get(..7)
        .unwrap_or("")
        .to_ascii_uppercase();
    head.starts_with("PRAGMA") || head.starts_with("SET ")
}

fn is_read(statement: &str) -> bool {
    let head = statement
        .trim_start()
        .get(..6)
        .unwrap_or("")
        .to_ascii_uppercase();
    head == "SELECT" || head.starts_with("WITH")
}

/// A call a detector looks at: a statement or an outbound request, with its pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallClass {
    Db,
    Http,
}

fn call_of(node: &Node) -> Option<(CallClass, String, bool)> {
    match &node.kind {
        Kind::Db { statement } if !is_setup(statement) => Some((
            CallClass::Db,
            normalize::statement(statement),
            is_read(statement),
        )),
        Kind::Http { method, url } => Some((
            CallClass::Http,
            format!("{method} {}", normalize::url(url)),
            matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS"),
        )),
        _ => None,
    }
}

#[derive(Default)]
struct Evidence {
    occurrences: u64,
    requests: u64,
    cost: Duration,
    example: Option<String>,
}

impl Evidence {
    fn add(&mut self, occurrences: u64, cost: Duration, example: impl FnOnce() -> String) {
        self.occurrences += occurrences;
        self.requests += 1;
        self.cost += cost;
        self.example.get_or_insert_with(example);
    }
}

type Key = (FindingKind, String, String);

/// Analyses what a window recorded.
pub fn diagnose(recording: &Recording, config: &DiagnoseConfig) -> Report {
    let opened = recording.opened;
    let requests: Vec<RequestView> = recording
        .traces
        .iter()
        .filter_map(|t: &Trace| {
            let (route, method, path) = t.request()?;
            let route = match method {
                Some(m) => format!("{m} {route}"),
                None => route.to_string(),
            };
            let path = match (method, path) {
                (Some(m), Some(p)) => format!("{m} {p}"),
                (_, Some(p)) => p.to_string(),
                _ => route.clone(),
            };
            Some(RequestView {
                route,
                path,
                node: &t.root,
                offset: t.root.start.saturating_duration_since(opened),
            })
        })
        .collect();

    let mut evidence: BTreeMap<Key, Evidence> = BTreeMap::new();
    for request in &requests {
        detect_n_plus_one(request, config, &mut evidence);
        detect_consecutive(request, config, &mut evidence);
        detect_repeated_calls(request, config, &mut evidence);
    }
    detect_slow_queries(&requests, config, &mut evidence);
    detect_connection_per_request(&requests, config, &mut evidence);
    detect_no_timeout(&requests, config, &mut evidence);

    let mut findings: Vec<Finding> = evidence
        .into_iter()
        .map(|((kind, route, pattern), e)| Finding {
            kind,
            title: kind.title(),
            hint: hint(kind, &pattern),
            route,
            pattern,
            occurrences: e.occurrences,
            requests: e.requests,
            cost_ms: ms(e.cost),
            example: e.example.unwrap_or_default(),
        })
        .collect();
    findings.sort_by(|a, b| b.cost_ms.total_cmp(&a.cost_ms));

    Report {
        seconds: recording.duration.as_secs_f64(),
        requests: requests.len() as u64,
        routes: route_stats(&requests),
        findings,
        dropped_requests: recording.dropped_traces,
        dropped_spans: recording.dropped_children,
    }
}

fn hint(kind: FindingKind, pattern: &str) -> String {
    match kind {
        FindingKind::NPlusOneQueries => {
            "load the rows for all items in one query (a JOIN, or WHERE … IN (…)) instead of one per item".into()
        }
        FindingKind::ConsecutiveQueries | FindingKind::ConsecutiveHttpCalls => {
            "these calls do not depend on each other: run them concurrently (tokio::join!, futures::try_join!)".into()
        }
        FindingKind::SlowQuery => {
            let columns = normalize::where_columns(pattern);
            if columns.is_empty() {
                "check the query plan (EXPLAIN QUERY PLAN / EXPLAIN) for a full table scan".into()
            } else {
                format!(
                    "its WHERE clause compares {}: check the query plan (EXPLAIN QUERY PLAN / EXPLAIN) for a missing index",
                    columns.join(", ")
                )
            }
        }
        FindingKind::ConnectionPerRequest => {
            "take connections from a pool (sqlx::Pool) sized for the concurrency instead of connecting per request".into()
        }
        FindingKind::NoTimeout => {
            "set a timeout on the call (reqwest RequestBuilder::timeout, tokio::time::timeout) and retry idempotent calls with backoff".into()
        }
        FindingKind::RepeatedHttpCalls => {
            "batch the calls into one, or cache the answers for the length of the request".into()
        }
    }
}

fn detect_n_plus_one(
    request: &RequestView,
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    let mut statements: Vec<(&Node, String)> = request
        .node
        .walk()
        .into_iter()
        .filter_map(|(_, n)| match call_of(n) {
            Some((CallClass::Db, pattern, _)) => Some((n, pattern)),
            _ => None,
        })
        .collect();
    statements.sort_by_key(|(n, _)| n.start);
    let mut i = 0;
    while i < statements.len() {
        let pattern = &statements[i].1;
        let run = statements[i..]
            .iter()
            .take_while(|(_, p)| p == pattern)
            .count();
        let total: Duration = statements[i..i + run].iter().map(|(n, _)| n.wall()).sum();
        if i > 0 && run >= config.n_plus_one_min_repeats && total >= config.n_plus_one_min_total {
            out.entry((
                FindingKind::NPlusOneQueries,
                request.route.clone(),
                pattern.clone(),
            ))
            .or_default()
            .add(run as u64, total, || request.example());
        }
        i += run;
    }
}

fn detect_consecutive(
    request: &RequestView,
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    for (_, parent) in request.node.walk() {
        let mut run: Vec<(&Node, CallClass, String)> = Vec::new();
        let flush = |run: &mut Vec<(&Node, CallClass, String)>,
                     out: &mut BTreeMap<Key, Evidence>| {
            if run.len() >= 2 {
                let class = run[0].1;
                let total: Duration = run.iter().map(|(n, _, _)| n.wall()).sum();
                let longest = run
                    .iter()
                    .map(|(n, _, _)| n.wall())
                    .max()
                    .unwrap_or_default();
                let saved = total - longest;
                let (kind, threshold) = match class {
                    CallClass::Db => (
                        FindingKind::ConsecutiveQueries,
                        config.consecutive_db_min_saved,
                    ),
                    CallClass::Http => (
                        FindingKind::ConsecutiveHttpCalls,
                        config.consecutive_http_min_saved,
                    ),
                };
                if saved >= threshold {
                    let pattern = run
                        .iter()
                        .map(|(_, _, p)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ");
                    out.entry((kind, request.route.clone(), pattern))
                        .or_default()
                        .add(run.len() as u64, saved, || request.example());
                }
            }
            run.clear();
        };
        for child in &parent.children {
            let call = call_of(child).filter(|(_, _, idempotent)| *idempotent);
            let continues = match (&call, run.last()) {
                (Some((class, pattern, _)), Some((last, last_class, _))) => {
                    class == last_class
                        && child.start >= last.end
                        && !run.iter().any(|(_, _, p)| p == pattern)
                }
                _ => false,
            };
            if !continues {
                flush(&mut run, out);
            }
            if let Some((class, pattern, _)) = call {
                run.push((child, class, pattern));
            }
        }
        flush(&mut run, out);
    }
}

fn detect_repeated_calls(
    request: &RequestView,
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    let mut calls: HashMap<String, (u64, Duration)> = HashMap::new();
    for (_, node) in request.node.walk() {
        if let Some((CallClass::Http, pattern, _)) = call_of(node) {
            let entry = calls.entry(pattern).or_default();
            entry.0 += 1;
            entry.1 += node.wall();
        }
    }
    for (pattern, (count, cost)) in calls {
        if count as usize >= config.repeated_call_min {
            out.entry((
                FindingKind::RepeatedHttpCalls,
                request.route.clone(),
                pattern,
            ))
            .or_default()
            .add(count, cost, || request.example());
        }
    }
}

/// Every call of the window by route and pattern, with the request it belongs to.
fn calls_by_pattern<'a>(
    requests: &'a [RequestView<'a>],
    class: CallClass,
) -> BTreeMap<(String, String), Vec<(&'a RequestView<'a>, &'a Node)>> {
    let mut calls: BTreeMap<(String, String), Vec<_>> = BTreeMap::new();
    for request in requests {
        for (_, node) in request.node.walk() {
            if let Some((c, pattern, _)) = call_of(node) {
                if c == class {
                    calls
                        .entry((request.route.clone(), pattern))
                        .or_default()
                        .push((request, node));
                }
            }
        }
    }
    calls
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn detect_slow_queries(
    requests: &[RequestView],
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    for ((route, pattern), calls) in calls_by_pattern(requests, CallClass::Db) {
        let mut walls: Vec<Duration> = calls.iter().map(|(_, n)| n.wall()).collect();
        walls.sort();
        if percentile(&walls, 0.95) < config.slow_query_p95 {
            continue;
        }
        let (slowest_request, _) = calls
            .iter()
            .max_by_key(|(_, n)| n.wall())
            .expect("a pattern has calls");
        let entry = out
            .entry((FindingKind::SlowQuery, route, pattern))
            .or_default();
        entry.occurrences = calls.len() as u64;
        entry.requests = count_requests(&calls);
        entry.cost = walls.iter().sum();
        entry.example = Some(format!(
            "{} (the statement's p95 is {:.1} ms)",
            slowest_request.example(),
            ms(percentile(&walls, 0.95))
        ));
    }
}

fn count_requests(calls: &[(&RequestView, &Node)]) -> u64 {
    let mut seen: Vec<*const Node> = calls.iter().map(|(r, _)| r.node as *const Node).collect();
    seen.sort();
    seen.dedup();
    seen.len() as u64
}

fn detect_connection_per_request(
    requests: &[RequestView],
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    for (route, rs) in by_route(requests) {
        let mut with_setup = 0u64;
        let mut cost = Duration::ZERO;
        let mut pattern = String::new();
        let mut example = None;
        for r in &rs {
            let setup: Vec<&Node> = r
                .node
                .walk()
                .into_iter()
                .map(|(_, n)| n)
                .filter(|n| match &n.kind {
                    Kind::Connect => true,
                    Kind::Db { statement } => is_setup(statement),
                    _ => false,
                })
                .collect();
            if let Some(first) = setup.first() {
                with_setup += 1;
                cost += setup.iter().map(|n| n.wall()).sum::<Duration>();
                if pattern.is_empty() {
                    pattern = match &first.kind {
                        Kind::Db { statement } => normalize::statement(statement),
                        _ => first.name.clone(),
                    };
                }
                example.get_or_insert_with(|| r.example());
            }
        }
        let share = with_setup as f64 / rs.len() as f64;
        if with_setup >= 2 && share >= config.connection_per_request_share {
            out.insert(
                (
                    FindingKind::ConnectionPerRequest,
                    route.to_string(),
                    pattern,
                ),
                Evidence {
                    occurrences: with_setup,
                    requests: with_setup,
                    cost,
                    example,
                },
            );
        }
    }
}

fn detect_no_timeout(
    requests: &[RequestView],
    config: &DiagnoseConfig,
    out: &mut BTreeMap<Key, Evidence>,
) {
    for ((route, pattern), calls) in calls_by_pattern(requests, CallClass::Http) {
        if calls.len() < config.no_timeout_min_calls || calls.iter().any(|(_, n)| n.timed_out()) {
            continue;
        }
        let mut walls: Vec<Duration> = calls.iter().map(|(_, n)| n.wall()).collect();
        walls.sort();
        let median = percentile(&walls, 0.5);
        let slowest = *walls.last().expect("calls is not empty");
        if slowest < config.no_timeout_min || slowest < median * config.no_timeout_ratio {
            continue;
        }
        let stalled: Vec<&(&RequestView, &Node)> = calls
            .iter()
            .filter(|(_, n)| n.wall() >= median * config.no_timeout_ratio)
            .collect();
        let slowest_request = calls
            .iter()
            .max_by_key(|(_, n)| n.wall())
            .map(|(r, _)| r.example());
        out.insert(
            (FindingKind::NoTimeout, route, pattern),
            Evidence {
                occurrences: stalled.len() as u64,
                requests: count_requests(&stalled.iter().map(|c| **c).collect::<Vec<_>>()),
                cost: stalled.iter().map(|(_, n)| n.wall() - median).sum(),
                example: slowest_request,
            },
        );
    }
}

/// The requests of each route, routes in order.
fn by_route<'a, 'b>(
    requests: &'a [RequestView<'b>],
) -> BTreeMap<&'a str, Vec<&'a RequestView<'b>>> {
    let mut routes: BTreeMap<&str, Vec<&RequestView>> = BTreeMap::new();
    for r in requests {
        routes.entry(&r.route).or_default().push(r);
    }
    routes
}

fn route_stats(requests: &[RequestView]) -> Vec<RouteStats> {
    by_route(requests)
        .into_iter()
        .map(|(route, rs)| {
            // Microseconds, from 1 µs to an hour, 3 significant digits.
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
            let (mut queries, mut calls) = (Vec::new(), Vec::new());
            for r in &rs {
                let us = (r.node.wall().as_micros() as u64).clamp(1, 3_600_000_000);
                let _ = histogram.record(us);
                let (mut q, mut c) = (0u64, 0u64);
                for (_, n) in r.node.walk() {
                    match n.kind {
                        Kind::Db { .. } => q += 1,
                        Kind::Http { .. } => c += 1,
                        _ => {}
                    }
                }
                queries.push(q);
                calls.push(c);
            }
            let at = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
            let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
            RouteStats {
                route: route.to_string(),
                requests: rs.len() as u64,
                p50_ms: at(0.5),
                p95_ms: at(0.95),
                p99_ms: at(0.99),
                max_ms: histogram.max() as f64 / 1000.0,
                queries_mean: mean(&queries),
                queries_max: queries.iter().copied().max().unwrap_or(0),
                calls_mean: mean(&calls),
                calls_max: calls.iter().copied().max().unwrap_or(0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::spans::trace::Trace;

    /// Builds trees on a millisecond time line.
    struct Timeline(Instant);

    impl Timeline {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }

        fn request(&self, route: &str, from: u64, to: u64, children: Vec<Node>) -> Trace {
            let kind = Kind::Request {
                route: route.into(),
                method: Some("GET".into()),
                path: Some(route.into()),
                from_uri: false,
            };
            let mut root = Node::new("http.server", kind, self.at(from), self.at(to));
            root.children = children;
            Trace {
                root,
                nested: false,
            }
        }

        fn db(&self, sql: &str, from: u64, to: u64) -> Node {
            let kind = Kind::Db {
                statement: sql.into(),
            };
            Node::new("db.query", kind, self.at(from), self.at(to))
        }

        fn http(&self, url: &str, from: u64, to: u64) -> Node {
            let kind = Kind::Http {
                method: "GET".into(),
                url: url.into(),
            };
            Node::new("http.client", kind, self.at(from), self.at(to))
        }

        fn span(&self, name: &str, kind: Kind, from: u64, to: u64, children: Vec<Node>) -> Node {
            let mut node = Node::new(name, kind, self.at(from), self.at(to));
            node.children = children;
            node
        }
    }

    fn run(t: &Timeline, traces: Vec<Trace>, config: &DiagnoseConfig) -> Report {
        let recording = Recording {
            traces,
            opened: t.0,
            duration: Duration::from_secs(30),
            dropped_traces: 0,
            dropped_children: 0,
        };
        diagnose(&recording, config)
    }

    fn kinds(report: &Report) -> Vec<(FindingKind, &str)> {
        report
            .findings
            .iter()
            .map(|f| (f.kind, f.route.as_str()))
            .collect()
    }

    /// A list query, then one query per item, each `each` ms long.
    fn n_plus_one(t: &Timeline, items: u64, each: u64) -> Trace {
        let mut children = vec![t.db("SELECT id FROM orders LIMIT 50", 0, 5)];
        for i in 0..items {
            let start = 5 + i * each;
            children.push(t.db(
                &format!("SELECT * FROM lines WHERE order_id = {i}"),
                start,
                start + each,
            ));
        }
        t.request("/orders", 0, 10 + items * each, children)
    }

    #[test]
    fn n_plus_one_needs_five_repeats_after_a_source_and_fifty_ms() {
        let t = Timeline(Instant::now());
        let config = DiagnoseConfig::default();
        let report = run(&t, vec![n_plus_one(&t, 10, 10)], &config);
        assert_eq!(
            kinds(&report),
            [(FindingKind::NPlusOneQueries, "GET /orders")]
        );
        let f = &report.findings[0];
        assert_eq!(f.pattern, "SELECT * FROM lines WHERE order_id = ?");
        assert_eq!((f.occurrences, f.requests), (10, 1));
        assert_eq!(f.cost_ms.round(), 100.0);
        assert!(
            f.example.starts_with("GET /orders at +0.0 s"),
            "{}",
            f.example
        );

        // Four repeats, or five that take under 50 ms together, are not N+1.
        assert!(run(&t, vec![n_plus_one(&t, 4, 20)], &config)
            .findings
            .is_empty());
        assert!(run(&t, vec![n_plus_one(&t, 5, 9)], &config)
            .findings
            .is_empty());

        // Without a different statement before them, repeats are not reported either.
        let repeats = (0..10)
            .map(|i| {
                t.db(
                    &format!("SELECT 1 FROM t WHERE id = {i}"),
                    i * 10,
                    i * 10 + 10,
                )
            })
            .collect();
        assert!(run(&t, vec![t.request("/x", 0, 100, repeats)], &config)
            .findings
            .is_empty());
    }

    #[test]
    fn sequential_independent_calls_are_reported_with_the_time_concurrency_would_save() {
        let t = Timeline(Instant::now());
        let sequential = t.request(
            "/quote",
            0,
            300,
            vec![
                t.http("http://up/inventory/7", 0, 100),
                t.http("http://up/pricing/7", 100, 200),
                t.http("http://up/shipping/7", 200, 300),
            ],
        );
        let report = run(&t, vec![sequential], &DiagnoseConfig::default());
        assert_eq!(
            kinds(&report),
            [(FindingKind::ConsecutiveHttpCalls, "GET /quote")]
        );
        let f = &report.findings[0];
        assert_eq!(
            f.cost_ms.round(),
            200.0,
            "300 ms in sequence, 100 ms at once"
        );
        assert_eq!(
            f.pattern,
            "GET http://up/inventory/{id} → GET http://up/pricing/{id} → GET http://up/shipping/{id}"
        );
    }

    #[test]
    fn overlapping_calls_are_not_sequential() {
        let t = Timeline(Instant::now());
        let concurrent = t.request(
            "/quote",
            0,
            110,
            vec![
                t.http("http://up/inventory/7", 0, 100),
                t.http("http://up/pricing/7", 5, 105),
                t.http("http://up/shipping/7", 10, 110),
            ],
        );
        assert!(run(&t, vec![concurrent], &DiagnoseConfig::default())
            .findings
            .is_empty());

        // Overlapping repeats of one statement are still N+1 (the count is what hurts), but they
        // are not "consecutive" calls.
        let mut children = vec![t.db("SELECT id FROM orders", 0, 5)];
        children.extend((0..6).map(|i| {
            t.db(
                &format!("SELECT * FROM lines WHERE id = {i}"),
                5 + i,
                45 + i,
            )
        }));
        let report = run(
            &t,
            vec![t.request("/orders", 0, 60, children)],
            &DiagnoseConfig::default(),
        );
        assert_eq!(
            kinds(&report),
            [(FindingKind::NPlusOneQueries, "GET /orders")]
        );
    }

    #[test]
    fn slow_queries_name_the_columns_to_index() {
        let t = Timeline(Instant::now());
        let traces = (0..20)
            .map(|i| {
                let from = i * 1000;
                t.request(
                    "/lookup",
                    from,
                    from + 700,
                    vec![t.db(
                        "SELECT * FROM orders WHERE reference = 'R-1'",
                        from,
                        from + 600,
                    )],
                )
            })
            .collect();
        let report = run(&t, traces, &DiagnoseConfig::default());
        assert_eq!(kinds(&report), [(FindingKind::SlowQuery, "GET /lookup")]);
        assert!(
            report.findings[0].hint.contains("compares reference"),
            "{}",
            report.findings[0].hint
        );
        assert_eq!(report.findings[0].occurrences, 20);

        let fast = vec![t.request(
            "/lookup",
            0,
            50,
            vec![t.db("SELECT 1 FROM t WHERE a = 1", 0, 40)],
        )];
        assert!(run(&t, fast, &DiagnoseConfig::default())
            .findings
            .is_empty());
    }

    #[test]
    fn connection_setup_in_most_requests_is_reported() {
        let t = Timeline(Instant::now());
        let with_connect = |from: u64| {
            t.request(
                "/customers/{id}",
                from,
                from + 20,
                vec![
                    t.span("db.connect", Kind::Connect, from, from + 10, vec![]),
                    t.db("SELECT * FROM customers WHERE id = 3", from + 10, from + 15),
                ],
            )
        };
        let pooled = |from: u64| {
            t.request(
                "/customers/{id}",
                from,
                from + 10,
                vec![t.db("SELECT * FROM customers WHERE id = 3", from, from + 5)],
            )
        };
        let report = run(
            &t,
            vec![with_connect(0), with_connect(100), pooled(200)],
            &DiagnoseConfig::default(),
        );
        assert_eq!(
            kinds(&report),
            [(FindingKind::ConnectionPerRequest, "GET /customers/{id}")]
        );
        assert_eq!(report.findings[0].pattern, "db.connect");

        // PRAGMA statements run on connect count as set-up too; a minority of requests does not.
        let pragma = |from: u64| {
            t.request(
                "/c",
                from,
                from + 5,
                vec![t.db("PRAGMA foreign_keys = ON", from, from + 1)],
            )
        };
        let report = run(&t, vec![pragma(0), pragma(10)], &DiagnoseConfig::default());
        assert_eq!(
            kinds(&report),
            [(FindingKind::ConnectionPerRequest, "GET /c")]
        );
        let report = run(
            &t,
            vec![with_connect(0), pooled(100), pooled(200)],
            &DiagnoseConfig::default(),
        );
        assert!(report.findings.is_empty());
    }

    #[test]
    fn stalls_without_timeouts_are_reported_and_timeouts_clear_them() {
        let t = Timeline(Instant::now());
        let call = |from: u64, ms: u64| {
            t.request(
                "/pay",
                from,
                from + ms,
                vec![t.http("http://up/payments/1", from, from + ms)],
            )
        };
        let mut traces: Vec<Trace> = (0..19).map(|i| call(i * 100, 20)).collect();
        traces.push(call(5000, 1500));
        let report = run(&t, traces.clone(), &DiagnoseConfig::default());
        assert_eq!(kinds(&report), [(FindingKind::NoTimeout, "GET /pay")]);
        assert_eq!(report.findings[0].occurrences, 1);

        // The same stall, but some call of that pattern ended in a timeout: the caller has one.
        traces[3].root.children[0].error = Some("operation timed out".into());
        assert!(run(&t, traces, &DiagnoseConfig::default())
            .findings
            .is_empty());
    }

    #[test]
    fn repeated_calls_in_one_request() {
        let t = Timeline(Instant::now());
        let calls = (0..5)
            .map(|i| t.http(&format!("http://up/items/{i}"), i * 10, i * 10 + 5))
            .collect();
        let report = run(
            &t,
            vec![t.request("/cart", 0, 60, calls)],
            &DiagnoseConfig::default(),
        );
        assert_eq!(
            kinds(&report),
            [(FindingKind::RepeatedHttpCalls, "GET /cart")]
        );
        assert_eq!(report.findings[0].occurrences, 5);
    }

    #[test]
    fn spans_outside_requests_are_not_counted_against_a_route() {
        let t = Timeline(Instant::now());
        // A task spawned without `.instrument` runs its statements in a tree of its own.
        let orphan = Trace {
            root: t.span(
                "background",
                Kind::Other,
                0,
                500,
                (0..10)
                    .map(|i| {
                        t.db(
                            &format!("SELECT * FROM t WHERE id = {i}"),
                            i * 50,
                            i * 50 + 50,
                        )
                    })
                    .collect(),
            ),
            nested: false,
        };
        let request = t.request("/ok", 0, 10, vec![t.db("SELECT 1", 0, 5)]);
        let report = run(&t, vec![orphan, request], &DiagnoseConfig::default());
        assert_eq!(report.requests, 1);
        assert_eq!(report.routes.len(), 1);
        assert_eq!(report.routes[0].route, "GET /ok");
        assert!(report.findings.is_empty());
    }

    #[test]
    fn route_percentiles_and_counts() {
        let t = Timeline(Instant::now());
        let traces = (1..=100)
            .map(|i| {
                t.request(
                    "/r",
                    i * 1000,
                    i * 1000 + i,
                    vec![t.db("SELECT 1", i * 1000, i * 1000 + 1)],
                )
            })
            .collect();
        let report = run(&t, traces, &DiagnoseConfig::default());
        let r = &report.routes[0];
        assert_eq!(r.requests, 100);
        assert!((r.p50_ms - 50.0).abs() < 0.5, "{}", r.p50_ms);
        assert!((r.p95_ms - 95.0).abs() < 0.5, "{}", r.p95_ms);
        assert!((r.max_ms - 100.0).abs() < 0.5, "{}", r.max_ms);
        assert_eq!((r.queries_mean, r.queries_max), (1.0, 1));
    }
}
