//! Turning a window's stacks into a [`Profile`]: symbolized, after sampling, off signal context.

use std::collections::HashMap;
use std::time::Duration;

use crate::profile::{Profile, ProfileBuilder, ValueType};
use crate::symbolize::{Leaf, Symbolizer};

/// One distinct stack of a window.
pub(crate) struct Stack {
    /// Leaf first: the interrupted instruction, then return addresses.
    pub ips: Vec<usize>,
    pub thread: String,
    pub thread_id: u64,
    /// Timer periods it stands for.
    pub periods: u64,
}

pub(crate) struct Timing {
    /// When the window opened, in nanoseconds since the Unix epoch.
    pub start_nanos: i64,
    pub duration: Duration,
}

/// Builds the profile: `samples/count` in timer periods, `cpu/nanoseconds` as periods x `period`.
/// With `per_thread`, every stack is rooted at its thread's name.
pub(crate) fn build(
    mut builder: ProfileBuilder,
    mut symbolizer: Symbolizer,
    stacks: Vec<Stack>,
    period: Duration,
    timing: Timing,
    per_thread: bool,
) -> Profile {
    let period = period.as_nanos() as i64;
    {
        let p = builder.profile_mut();
        p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        p.period = period;
        p.time_nanos = timing.start_nanos;
        p.duration_nanos = timing.duration.as_nanos() as i64;
    }
    let mut merged: HashMap<Vec<usize>, i64> = HashMap::new();
    for stack in stacks {
        // Every engine's stacks start at the interrupted instruction.
        let mut locations = symbolizer.stack(&mut builder, &stack.ips, Leaf::Exact);
        if per_thread {
            let name = if stack.thread.is_empty() {
                format!("thread {}", stack.thread_id)
            } else {
                stack.thread
            };
            locations.push(builder.named_location(&name, "", 0));
        }
        *merged.entry(locations).or_insert(0) += stack.periods as i64;
    }
    drop(symbolizer);
    for (locations, count) in merged {
        builder.sample(locations, vec![count, count * period]);
    }
    builder.build()
}

/// A fresh builder with the CPU profile's sample types.
pub(crate) fn builder() -> ProfileBuilder {
    ProfileBuilder::new(vec![
        ValueType::new("samples", "count"),
        ValueType::new("cpu", "nanoseconds"),
    ])
}
