//! The profile model shared by the agent and the viewer, and its codecs.
//!
//! A [`Profile`] mirrors pprof's `profile.proto` with the string table resolved: samples point at
//! locations, locations at functions, and every index is a plain `usize` into the owning vector.
//! Keeping the model this close to pprof means a profile written by Go's runtime survives a decode
//! and encode round trip, while the agent, the folded-stack reader and the dhat reader all build the
//! same structure through [`ProfileBuilder`], which interns functions and locations.
//!
//! Codecs: [`pprof`] (profile.proto, gzip-compressed or not), [`folded`] (collapsed stacks) and
//! [`flamegraph`] (SVG through inferno, coloured by [`origin`]); [`merge`] combines profiles; [`names`] shortens function names and [`trim`] cuts stacks down to
//! the service's own code, for reading.

pub mod flamegraph;
pub mod folded;
pub mod merge;
pub mod names;
pub mod origin;
pub mod pprof;
pub mod trim;

use std::collections::HashMap;
use std::fmt;

/// The kind and unit of one sample value, as in pprof: `cpu`/`nanoseconds`, `alloc_space`/`bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueType {
    pub kind: String,
    pub unit: String,
}

impl ValueType {
    pub fn new(kind: impl Into<String>, unit: impl Into<String>) -> Self {
        ValueType {
            kind: kind.into(),
            unit: unit.into(),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.unit)
    }
}

/// A loaded object (executable or shared library), as pprof records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub memory_start: u64,
    pub memory_limit: u64,
    pub file_offset: u64,
    pub filename: String,
    pub build_id: String,
    /// The profile carries function names for this mapping, so readers need not symbolize.
    pub has_functions: bool,
    pub has_filenames: bool,
    pub has_line_numbers: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Function {
    /// Demangled, human-readable name.
    pub name: String,
    /// The name as the linker knows it (mangled), or empty.
    pub system_name: String,
    pub filename: String,
    pub start_line: i64,
}

/// One source line of a location; several lines mean inlined calls, innermost first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Line {
    pub function: usize,
    pub line: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Location {
    pub mapping: Option<usize>,
    pub address: u64,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelValue {
    Str(String),
    Num { value: i64, unit: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Leaf first, as in pprof.
    pub locations: Vec<usize>,
    /// One value per entry of [`Profile::sample_types`].
    pub values: Vec<i64>,
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub sample_types: Vec<ValueType>,
    /// The `kind` of the sample type readers show unless told otherwise.
    pub default_sample_type: Option<String>,
    pub period_type: Option<ValueType>,
    pub period: i64,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub comments: Vec<String>,
    pub mappings: Vec<Mapping>,
    pub functions: Vec<Function>,
    pub locations: Vec<Location>,
    pub samples: Vec<Sample>,
}

/// A frame of a stack as readers show it: one function at one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub function: &'a Function,
    pub line: i64,
}

/// Which sample value to look at, by index or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleIndex {
    Default,
    Named(String),
}

/// The asked-for sample type does not exist in the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSampleType {
    pub asked: String,
    pub available: Vec<String>,
}

impl fmt::Display for UnknownSampleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sample type {:?} is not in this profile; it has: {}",
            self.asked,
            self.available.join(", ")
        )
    }
}

impl std::error::Error for UnknownSampleType {}

impl Profile {
    /// The frames of a sample, leaf first, with inlined calls expanded.
    pub fn frames<'a>(&'a self, sample: &'a Sample) -> impl Iterator<Item = Frame<'a>> + 'a {
        sample.locations.iter().flat_map(move |&loc| {
            self.locations
                .get(loc)
                .into_iter()
                .flat_map(|l| l.lines.iter())
                .filter_map(move |line| {
                    self.functions.get(line.function).map(|function| Frame {
                        function,
                        line: line.line,
                    })
                })
        })
    }

    /// The position in [`Profile::sample_types`] of the sample type to show: the named one, else
    /// the profile's default, else the last one (pprof's rule).
    pub fn sample_index(&self, which: &SampleIndex) -> Result<usize, UnknownSampleType> {
        let find = |kind: &str| self.sample_types.iter().position(|t| t.kind == kind);
        let unknown = |asked: &str| UnknownSampleType {
            asked: asked.to_string(),
            available: self.sample_types.iter().map(|t| t.kind.clone()).collect(),
        };
        match which {
            SampleIndex::Named(name) => find(name).ok_or_else(|| unknown(name)),
            SampleIndex::Default => Ok(self
                .default_sample_type
                .as_deref()
                .and_then(find)
                .unwrap_or(self.sample_types.len().saturating_sub(1))),
        }
    }

    /// The sum of one sample value over all samples, saturating instead of overflowing.
    pub fn total(&self, index: usize) -> i64 {
        self.samples
            .iter()
            .filter_map(|s| s.values.get(index))
            .fold(0i64, |acc, v| acc.saturating_add(*v))
    }
}

/// Builds a [`Profile`], interning functions and locations so that equal frames share one entry.
#[derive(Debug, Default)]
pub struct ProfileBuilder {
    profile: Profile,
    functions: HashMap<Function, usize>,
    locations: HashMap<Location, usize>,
}

impl ProfileBuilder {
    pub fn new(sample_types: Vec<ValueType>) -> Self {
        ProfileBuilder {
            profile: Profile {
                sample_types,
                ..Profile::default()
            },
            ..ProfileBuilder::default()
        }
    }

    /// Gives access to the fields that are not interned: period, times, comments, mappings.
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    pub fn function(&mut self, function: Function) -> usize {
        if let Some(&id) = self.functions.get(&function) {
            return id;
        }
        let id = self.profile.functions.len();
        self.profile.functions.push(function.clone());
        self.functions.insert(function, id);
        id
    }

    /// Interns a location made of one function at one line, with no address.
    pub fn named_location(&mut self, name: &str, filename: &str, line: i64) -> usize {
        let function = self.function(Function {
            name: name.to_string(),
            filename: filename.to_string(),
            ..Function::default()
        });
        self.location(Location {
            mapping: None,
            address: 0,
            lines: vec![Line { function, line }],
        })
    }

    pub fn location(&mut self, location: Location) -> usize {
        if let Some(&id) = self.locations.get(&location) {
            return id;
        }
        let id = self.profile.locations.len();
        self.profile.locations.push(location.clone());
        self.locations.insert(location, id);
        id
    }

    pub fn sample(&mut self, locations: Vec<usize>, values: Vec<i64>) {
        self.profile.samples.push(Sample {
            locations,
            values,
            labels: Vec::new(),
        });
    }

    pub fn build(self) -> Profile {
        self.profile
    }
}
