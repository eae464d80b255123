//! The memory budget shared by every open span window, and what a recorded request costs.
//!
//! Each open window keeps its own copy of every request tree that finishes while it is open, so
//! memory grows with windows times requests: 50 windows on a service under load grew by 36 MB/s.
//! A per-window cap on trees does not bound that, so every tree a window keeps is charged, by
//! its estimated size, against one process-wide budget, and a tree that does not fit is left out
//! and counted, as trees past a window's [`MAX_TRACES`](super::MAX_TRACES) are. A finished
//! window's recording stays charged (see [`Held`]) until the profile or diagnosis built from it
//! is done, so recordings waiting for the build thread count too.
//!
//! Charging is a compare-and-swap loop on one atomic: no lock, no allocation, safe in the span
//! layer's callbacks.

use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::trace::{Kind, Node, Trace};
use super::Recording;

/// The budget unless set otherwise: one 300-s window of the shop example under full load fits.
pub const DEFAULT_BUDGET: usize = 256 * 1024 * 1024;

/// What the allocator adds to each block, on top of what was asked for.
const PER_ALLOCATION: usize = 16;

static BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_BUDGET);
static CHARGED: AtomicUsize = AtomicUsize::new(0);

/// Sets the budget of all span windows together, in bytes.
pub fn set_budget(bytes: usize) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

pub fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// The bytes charged now, by open windows and by recordings not yet built.
pub fn charged() -> usize {
    CHARGED.load(Ordering::Relaxed)
}

/// Charges `bytes` if they fit in the budget.
pub(super) fn try_charge(bytes: usize) -> bool {
    let budget = budget();
    CHARGED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |charged| {
            charged.checked_add(bytes).filter(|&total| total <= budget)
        })
        .is_ok()
}

pub(super) fn release(bytes: usize) {
    // Saturating, so that a budget changed mid-window cannot wrap the count.
    let _ = CHARGED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |charged| {
        Some(charged.saturating_sub(bytes))
    });
}

/// The estimated bytes a window's copy of `trace` takes, allocator overhead included.
pub(super) fn trace_bytes(trace: &Trace) -> usize {
    size_of::<Trace>() + node_bytes(&trace.root)
}

/// The heap bytes of `node` (its own struct is counted by whoever holds it).
fn node_bytes(node: &Node) -> usize {
    let string = |s: &String| s.capacity() + PER_ALLOCATION;
    let optional = |s: &Option<String>| s.as_ref().map_or(0, string);
    let kind = match &node.kind {
        Kind::Request {
            route,
            method,
            path,
            ..
        } => string(route) + optional(method) + optional(path),
        Kind::Db { statement } => string(statement),
        Kind::Http { method, url } => string(method) + string(url),
        Kind::Connect | Kind::Other => 0,
    };
    let children = if node.children.is_empty() {
        0
    } else {
        node.children.len() * size_of::<Node>() + PER_ALLOCATION
    };
    string(&node.name)
        + kind
        + optional(&node.error)
        + children
        + node.children.iter().map(node_bytes).sum::<usize>()
}

/// A finished window's recording, still charged against the budget until this is dropped (after
/// its profile or diagnosis is built).
#[derive(Debug)]
pub struct Held {
    bytes: usize,
}

impl Held {
    /// Charges `recording` whether or not it fits: its memory is already in use.
    pub fn new(recording: &Recording) -> Held {
        let bytes = recording.traces.iter().map(trace_bytes).sum();
        CHARGED.fetch_add(bytes, Ordering::Relaxed);
        Held { bytes }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn request(statements: usize) -> Trace {
        let now = Instant::now();
        let mut root = Node::new(
            "request",
            Kind::Request {
                route: "GET /orders/{id}".into(),
                method: Some("GET".into()),
                path: Some("/orders/7".into()),
                from_uri: false,
            },
            now,
            now,
        );
        root.children = (0..statements)
            .map(|_| {
                let statement = "SELECT * FROM lines WHERE order_id = ?".to_string();
                Node::new("sqlx::query", Kind::Db { statement }, now, now)
            })
            .collect();
        Trace {
            root,
            nested: false,
        }
    }

    #[test]
    fn a_tree_costs_more_with_more_children() {
        let one = trace_bytes(&request(1));
        let ten = trace_bytes(&request(10));
        assert!(one > size_of::<Trace>() + "GET /orders/{id}".len());
        // Each statement adds at least its node and its text.
        assert!(ten - one >= 9 * (size_of::<Node>() + 38), "{one} {ten}");
    }

    // The only test touching the process-wide counters, so it can assert on them exactly.
    #[test]
    fn charges_stop_at_the_budget_and_held_recordings_count() {
        set_budget(1000);
        assert!(try_charge(600));
        assert!(!try_charge(500), "600 + 500 is over 1000");
        assert!(try_charge(400));
        release(1000);
        assert_eq!(charged(), 0);

        let recording = Recording {
            traces: vec![request(3), request(3)],
            opened: Instant::now(),
            duration: std::time::Duration::ZERO,
            dropped_traces: 0,
            dropped_children: 0,
        };
        let held = Held::new(&recording);
        assert_eq!(charged(), 2 * trace_bytes(&request(3)));
        assert!(
            !try_charge(1),
            "a held recording over the budget leaves no room"
        );
        drop(held);
        assert_eq!(charged(), 0);
        set_budget(DEFAULT_BUDGET);
    }
}
