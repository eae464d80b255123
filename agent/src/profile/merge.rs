//! Merging several profiles into one, as `go tool pprof a.pb.gz b.pb.gz` does.
//!
//! Profiles taken from several replicas of a service, or one window after another, are only
//! useful together. Merging re-interns every function, location and mapping through one
//! [`ProfileBuilder`], so equal frames from different files become one frame and a flame graph
//! of the merge looks like one profile, not several side by side. Only profiles with the same
//! sample types (kind and unit, in the same order) can be merged: adding bytes to nanoseconds
//! would be meaningless, so that is an error naming the first profile that differs.

use std::fmt;

use super::{Profile, ProfileBuilder, Sample};

/// The profile at `index` (0-based, in the order given) has other sample types than the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    pub index: usize,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot merge: profile {} has sample types [{}] but the first has [{}]",
            self.index + 1,
            self.found,
            self.expected
        )
    }
}

impl std::error::Error for MergeError {}

fn describe_types(p: &Profile) -> String {
    p.sample_types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Merges the profiles: samples are concatenated, durations added, the earliest start time
/// kept, and comments collected. The first profile's period and default sample type win.
pub fn merge(profiles: Vec<Profile>) -> Result<Profile, MergeError> {
    let mut profiles = profiles.into_iter();
    let Some(first) = profiles.next() else {
        return Ok(Profile::default());
    };
    let rest: Vec<Profile> = profiles.collect();
    if rest.is_empty() {
        return Ok(first);
    }
    for (i, p) in rest.iter().enumerate() {
        if p.sample_types != first.sample_types {
            return Err(MergeError {
                index: i + 1,
                expected: describe_types(&first),
                found: describe_types(p),
            });
        }
    }

    let mut builder = ProfileBuilder::new(first.sample_types.clone());
    {
        let out = builder.profile_mut();
        out.default_sample_type = first.default_sample_type.clone();
        out.period_type = first.period_type.clone();
        out.period = first.period;
    }
    let mut time_nanos = i64::MAX;
    let mut duration_nanos = 0i64;
    for p in std::iter::once(first).chain(rest) {
        if p.time_nanos != 0 {
            time_nanos = time_nanos.min(p.time_nanos);
        }
        duration_nanos = duration_nanos.saturating_add(p.duration_nanos);
        copy_into(&mut builder, p);
    }
    let out = builder.profile_mut();
    out.time_nanos = if time_nanos == i64::MAX {
        0
    } else {
        time_nanos
    };
    out.duration_nanos = duration_nanos;
    Ok(builder.build())
}

/// Adds one profile's samples to the builder, mapping its indices to the builder's.
fn copy_into(builder: &mut ProfileBuilder, p: Profile) {
    let mapping_base = builder.profile_mut().mappings.len();
    builder.profile_mut().mappings.extend(p.mappings);
    let functions: Vec<usize> = p
        .functions
        .into_iter()
        .map(|f| builder.function(f))
        .collect();
    let locations: Vec<usize> = p
        .locations
        .into_iter()
        .map(|mut l| {
            l.mapping = l.mapping.map(|m| m + mapping_base);
            for line in &mut l.lines {
                line.function = functions[line.function];
            }
            builder.location(l)
        })
        .collect();
    for comment in p.comments {
        let comments = &mut builder.profile_mut().comments;
        if !comments.contains(&comment) {
            comments.push(comment);
        }
    }
    for s in p.samples {
        let locations = s.locations.iter().map(|&l| locations[l]).collect();
        builder
            .profile_mut()
            .samples
            .push(Sample { locations, ..s });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{folded, ValueType};

    #[test]
    fn equal_frames_from_two_profiles_become_one() {
        let a = folded::parse(b"main;work 3\nmain 1\n").unwrap();
        let b = folded::parse(b"main;work 2\nmain;idle 4\n").unwrap();
        let m = merge(vec![a, b]).unwrap();
        assert_eq!(m.total(0), 10);
        assert_eq!(m.functions.len(), 3);
        assert_eq!(folded::write(&m, 0), "main 1\nmain;idle 4\nmain;work 5\n");
    }

    #[test]
    fn different_sample_types_are_refused() {
        let a = folded::parse(b"main 1\n").unwrap();
        let mut b = a.clone();
        b.sample_types = vec![ValueType::new("alloc_space", "bytes")];
        let err = merge(vec![a.clone(), a, b]).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err
            .to_string()
            .contains("profile 3 has sample types [alloc_space/bytes]"));
    }
}
