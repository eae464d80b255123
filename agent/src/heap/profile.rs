//! Heap profiles from the sampler's tables, in Go's form: four sample types (`alloc_objects`,
//! `alloc_space`, `inuse_objects`, `inuse_space`), period type `space/bytes` with the sample
//! rate as period, values already scaled to estimates of the true totals.
//!
//! A [`Snapshot`] copies the tables' running sums; the difference of two snapshots is what
//! happened between them. Symbolizing (slow, allocating) happens only when a profile is built,
//! and only for the stacks that have something to show.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sampler::sample_rate;
use super::table::{self, TableCopy};
use crate::profile::{Profile, ProfileBuilder, ValueType};
use crate::symbolize::{Leaf, Symbolizer};

/// The sample types of heap profiles, in Go's order.
pub const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

/// Names the frame of samples whose stack was not recorded (the unwinder found nothing, or the
/// stack table was full).
const UNRECORDED: &str = "[stack not recorded]";

/// The sampler's running sums at one moment, or their change over a window.
#[derive(Debug, Clone)]
pub struct Snapshot {
    start: SystemTime,
    /// `Some` for the change over a window.
    window: Option<Duration>,
    rate: usize,
    table: TableCopy,
}

impl Snapshot {
    /// The running sums now: live blocks, and everything allocated since sampling began.
    pub fn take() -> Snapshot {
        Snapshot {
            start: SystemTime::now(),
            window: None,
            rate: sample_rate().unwrap_or(0),
            table: table::copy(),
        }
    }

    /// What changed from `earlier` to `self`: allocations made in between, and the growth (or,
    /// negative, the shrinking) of the live heap.
    pub fn since(mut self, earlier: &Snapshot) -> Snapshot {
        for (i, stack) in self.table.stacks.iter_mut().enumerate() {
            if let Some(before) = earlier.table.stacks.get(i) {
                stack.counts = stack.counts.minus(&before.counts);
            }
        }
        self.window = Some(self.start.duration_since(earlier.start).unwrap_or_default());
        self.start = earlier.start;
        self
    }

    /// The length of the window, for the change over one.
    pub fn window(&self) -> Option<Duration> {
        self.window
    }

    /// The mean bytes between samples when the snapshot was taken.
    pub fn rate(&self) -> usize {
        self.rate
    }

    /// Builds the profile, with `default_type` (one of [`SAMPLE_TYPES`]) as the sample type
    /// readers show first.
    pub fn profile(&self, default_type: &str) -> Profile {
        let mut builder = ProfileBuilder::new(
            SAMPLE_TYPES
                .iter()
                .map(|&(kind, unit)| ValueType::new(kind, unit))
                .collect(),
        );
        {
            let p = builder.profile_mut();
            p.default_sample_type = Some(default_type.to_string());
            p.period_type = Some(ValueType::new("space", "bytes"));
            p.period = self.rate as i64;
            p.time_nanos = self
                .start
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as i64;
            p.duration_nanos = self.window.unwrap_or_default().as_nanos() as i64;
            p.comments.push(format!(
                "sampled on average once every {} bytes allocated; values are unbiased estimates",
                self.rate
            ));
        }
        let mut symbolizer = Symbolizer::new(&mut builder);
        let mut samples: HashMap<Vec<usize>, [f64; 4]> = HashMap::new();
        for stack in &self.table.stacks {
            let c = stack.counts;
            let values = [
                c.alloc_objects,
                c.alloc_bytes,
                c.inuse_objects,
                c.inuse_bytes,
            ];
            if values.iter().all(|v| v.round() == 0.0) {
                continue;
            }
            let frames = self
                .table
                .frames
                .get(stack.start as usize..(stack.start + stack.len) as usize)
                .unwrap_or_default();
            let mut locations = symbolizer.stack(&mut builder, frames, Leaf::ReturnAddress);
            let profile = builder.profile_mut();
            let sampler = locations
                .iter()
                .take_while(|&&loc| is_sampler(profile, loc))
                .count();
            locations.drain(..sampler);
            if locations.is_empty() {
                locations.push(builder.named_location(UNRECORDED, "", 0));
            }
            let sums = samples.entry(locations).or_default();
            for (sum, v) in sums.iter_mut().zip(values) {
                *sum += v;
            }
        }
        for (locations, sums) in samples {
            builder.sample(locations, sums.iter().map(|v| v.round() as i64).collect());
        }
        builder.build()
    }
}

/// Whether a location is the sampler at work rather than the code that allocated: the unwinder,
/// the sampler's own functions, and the global allocator's entry points that lead to them. Every
/// captured stack starts (leaf first) with a run of these; the first frame past the run is the
/// allocating code. The test is on the frame that owns the address (the outermost of its inlined
/// calls): the symbolizer names it by its full path from the symbol table, whatever the debug info.
fn is_sampler(profile: &Profile, location: usize) -> bool {
    let Some(line) = profile.locations[location].lines.last() else {
        return false;
    };
    let name = profile.functions[line.function].name.as_str();
    let last = name.rsplit("::").next().unwrap_or(name);
    const OWN: &[&str] = &["pyrometer::heap::", "backtrace::"];
    OWN.iter()
        .any(|own| name.trim_start_matches('<').starts_with(own))
        || name.starts_with("_Unwind_")
        || last.starts_with("__rust_alloc")
        || last.starts_with("__rust_realloc")
        || last.starts_with("__rg_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Function, Line, Location};

    fn location(builder: &mut ProfileBuilder, name: &str) -> usize {
        builder.named_location(name, "", 0)
    }

    #[test]
    fn the_leading_run_of_sampler_frames_is_what_is_cut() {
        let mut builder = ProfileBuilder::new(Vec::new());
        let names = [
            "_Unwind_Backtrace",
            "backtrace::backtrace::libunwind::trace::trace_fn",
            "pyrometer::heap::stack::capture",
            "pyrometer::heap::allocator::SamplingAllocator<A>::alloc_at_countdown_end",
            "<pyrometer::heap::allocator::SamplingAllocator<A> as core::alloc::global::GlobalAlloc>::alloc",
            "__rustc::__rust_alloc",
            "alloc::raw_vec::finish_grow",
            // A later frame of pyrometer's own heap code is the service's allocation, not the
            // sampler's: only the leading run goes.
            "pyrometer::heap::profile::Snapshot::profile",
        ];
        let stack: Vec<usize> = names.iter().map(|n| location(&mut builder, n)).collect();
        // A sampler frame whose inlined callees have short names is still the sampler's.
        let short = builder.function(Function {
            name: "record_alloc".into(),
            ..Function::default()
        });
        let owner = builder.function(Function {
            name: "pyrometer::heap::allocator::SamplingAllocator<A>::alloc_at_countdown_end".into(),
            ..Function::default()
        });
        let inlined = builder.location(Location {
            lines: vec![
                Line {
                    function: short,
                    line: 1,
                },
                Line {
                    function: owner,
                    line: 2,
                },
            ],
            ..Location::default()
        });
        let profile = builder.build();
        let cut = |stack: &[usize]| {
            stack
                .iter()
                .take_while(|&&l| is_sampler(&profile, l))
                .count()
        };
        assert_eq!(cut(&stack), 6);
        assert_eq!(cut(&[inlined, stack[6]]), 1);
        assert_eq!(cut(&stack[6..]), 0);
    }
}
