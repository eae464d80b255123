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
use crate::symbolize::Symbolizer;

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
            let mut locations: Vec<usize> = frames
                .iter()
                .map(|&ip| symbolizer.location(&mut builder, ip))
                .collect();
            let profile = builder.profile_mut();
            let sampler_end = locations
                .iter()
                .position(|&loc| is_location_of(profile, loc, is_entry_point))
                .or_else(|| {
                    locations
                        .iter()
                        .rposition(|&loc| is_location_of(profile, loc, is_sampler))
                });
            if let Some(end) = sampler_end {
                locations.drain(..=end);
            }
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

fn is_location_of(profile: &Profile, location: usize, test: fn(&str) -> bool) -> bool {
    profile.locations[location]
        .lines
        .iter()
        .any(|line| test(&profile.functions[line.function].name))
}

/// The global allocator's entry points: every captured stack runs through one of them, and
/// everything on the leaf side of it is the sampler at work, not the code that allocated.
fn is_entry_point(name: &str) -> bool {
    const ENTRY_POINTS: &[&str] = &[
        "__rust_alloc",
        "__rust_alloc_zeroed",
        "__rust_realloc",
        "__rg_alloc",
        "__rg_alloc_zeroed",
        "__rg_realloc",
    ];
    ENTRY_POINTS.contains(&name.rsplit("::").next().unwrap_or(name))
}

/// The wrapper itself, for stacks captured when it is called directly rather than as the global
/// allocator.
fn is_sampler(name: &str) -> bool {
    name.contains("pyrometer::heap::allocator::")
}
