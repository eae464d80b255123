//! A window's request trees as a pprof profile of wall time, split into busy (polled) and
//! waiting, by span stack: the route at the root, then the spans inside it.
//!
//! Each node contributes its own time: its wall time not covered by its children (concurrent
//! children are merged first, so overlapping calls are not counted twice), and its busy time
//! less its children's. The waiting part is what a CPU profile cannot see.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::layer::Recording;
use super::normalize;
use super::trace::{Kind, Node};
use crate::profile::{Profile, ProfileBuilder, ValueType};

/// Builds the profile: sample types `wall`, `busy` and `waiting`, in nanoseconds.
pub fn build(recording: &Recording, time_nanos: i64) -> Profile {
    let mut builder = ProfileBuilder::new(vec![
        ValueType::new("wall", "nanoseconds"),
        ValueType::new("busy", "nanoseconds"),
        ValueType::new("waiting", "nanoseconds"),
    ]);
    {
        let p = builder.profile_mut();
        p.default_sample_type = Some("wall".into());
        p.period_type = Some(ValueType::new("wall", "nanoseconds"));
        p.period = 1;
        p.time_nanos = time_nanos;
        p.duration_nanos = recording.duration.as_nanos() as i64;
    }
    let mut totals: HashMap<Vec<usize>, [i64; 3]> = HashMap::new();
    for trace in recording.traces.iter().filter(|t| !t.nested) {
        let mut stack = Vec::new();
        add_node(&mut builder, &mut totals, &mut stack, &trace.root, true);
    }
    let mut samples: Vec<_> = totals.into_iter().collect();
    samples.sort();
    for (stack, values) in samples {
        builder.sample(stack, values.to_vec());
    }
    builder.build()
}

fn add_node(
    builder: &mut ProfileBuilder,
    totals: &mut HashMap<Vec<usize>, [i64; 3]>,
    stack: &mut Vec<usize>,
    node: &Node,
    root: bool,
) {
    let location = builder.named_location(&frame_name(node, root), "", 0);
    stack.insert(0, location);
    let own_wall = node.wall().saturating_sub(covered(node));
    let children_busy: Duration = node.children.iter().map(|c| c.busy).sum();
    let own_busy = node.busy.saturating_sub(children_busy).min(own_wall);
    let own_waiting = own_wall - own_busy;
    if !own_wall.is_zero() {
        let entry = totals.entry(stack.clone()).or_insert([0; 3]);
        entry[0] += own_wall.as_nanos() as i64;
        entry[1] += own_busy.as_nanos() as i64;
        entry[2] += own_waiting.as_nanos() as i64;
    }
    for child in &node.children {
        add_node(builder, totals, stack, child, false);
    }
    stack.remove(0);
}

/// How much of a node's wall time its children cover, overlaps merged.
fn covered(node: &Node) -> Duration {
    let mut intervals: Vec<(Instant, Instant)> = node
        .children
        .iter()
        .map(|c| (c.start.max(node.start), c.end.min(node.end)))
        .filter(|(s, e)| s < e)
        .collect();
    intervals.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (s, e) in intervals {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    total
}

/// What a flame graph shows for a node: the route for a request, the normalized statement or URL
/// for a call, the span's name otherwise.
fn frame_name(node: &Node, root: bool) -> String {
    let name = match &node.kind {
        Kind::Request { route, method, .. } => match method {
            Some(m) => format!("{m} {route}"),
            None => route.clone(),
        },
        Kind::Db { statement } => format!("db: {}", shorten(&normalize::statement(statement))),
        Kind::Http { method, url } => format!("http: {method} {}", normalize::url(url)),
        Kind::Connect => format!("connect: {}", node.name),
        Kind::Other => node.name.clone(),
    };
    if root && !matches!(node.kind, Kind::Request { .. }) {
        format!("(outside requests) {name}")
    } else {
        name
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::trace::Trace;

    fn ms(base: Instant, m: u64) -> Instant {
        base + Duration::from_millis(m)
    }

    #[test]
    fn wall_time_is_split_by_stack_without_double_counting_overlaps() {
        let t = Instant::now();
        let mut request = Node::new(
            "http.server",
            Kind::Request {
                route: "/orders".into(),
                method: Some("GET".into()),
                path: None,
                from_uri: false,
            },
            t,
            ms(t, 100),
        );
        request.busy = Duration::from_millis(30);
        let db = |a, b| {
            Node::new(
                "db.query",
                Kind::Db {
                    statement: "SELECT * FROM t WHERE id = 1".into(),
                },
                ms(t, a),
                ms(t, b),
            )
        };
        // Two overlapping statements (10..50 and 30..60) cover 50 ms, not 60.
        request.children = vec![db(10, 50), db(30, 60)];
        request.children[0].busy = Duration::from_millis(5);
        let recording = Recording {
            traces: vec![Trace {
                root: request,
                nested: false,
            }],
            opened: t,
            duration: Duration::from_secs(1),
            dropped_traces: 0,
            dropped_children: 0,
        };
        let profile = build(&recording, 0);
        let folded = crate::profile::folded::write(&profile, 0);
        assert_eq!(
            folded,
            "GET /orders 50000000\nGET /orders;db: SELECT * FROM t WHERE id = ? 70000000\n"
        );
        // The request's own busy time is 30 - 5 ms; the rest of its own 50 ms it waited.
        let busy = crate::profile::folded::write(&profile, 1);
        assert!(busy.contains("GET /orders 25000000\n"), "{busy}");
        let waiting = crate::profile::folded::write(&profile, 2);
        assert!(waiting.contains("GET /orders 25000000\n"), "{waiting}");
    }
}
