//! Turns raw instruction addresses captured by the samplers into profile locations: demangled
//! function names, files and lines (inlined calls expanded), and the mapping each address lies in.
//!
//! Symbolization reads debug information and allocates freely, so it runs after a window closes,
//! on an ordinary thread, never inside a signal handler or the allocator.

use std::collections::HashMap;
use std::ffi::c_void;

use findshlibs::{Segment, SharedLibrary, TargetSharedLibrary};

use crate::profile::{Function, Line, Location, Mapping, ProfileBuilder};

/// Resolves addresses into locations of one profile, resolving each distinct address once.
pub(crate) struct Symbolizer {
    /// `(start, end, mapping index)` of every loaded code segment.
    segments: Vec<(usize, usize, usize)>,
    /// Every address resolved so far, with its functions and lines, innermost first.
    resolved: HashMap<usize, Vec<(Function, i64)>>,
    /// Addresses already interned as locations of the profile being built.
    locations: HashMap<usize, usize>,
}

impl Symbolizer {
    /// Records the process's loaded objects as the profile's mappings.
    pub(crate) fn new(builder: &mut ProfileBuilder) -> Self {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut segments = Vec::new();
        let mappings = &mut builder.profile_mut().mappings;
        TargetSharedLibrary::each(|lib| {
            let name = lib.name().to_string_lossy();
            let filename = if name.is_empty() {
                exe.clone()
            } else {
                name.into_owned()
            };
            let build_id = lib.id().map(|id| id.to_string()).unwrap_or_default();
            for segment in lib.segments().filter(|s| s.is_code()) {
                let start = segment.actual_virtual_memory_address(lib).0;
                let end = start + segment.len();
                segments.push((start, end, mappings.len()));
                mappings.push(Mapping {
                    memory_start: start as u64,
                    memory_limit: end as u64,
                    file_offset: segment.stated_virtual_memory_address().0 as u64,
                    filename: filename.clone(),
                    build_id: build_id.clone(),
                    has_functions: true,
                    has_filenames: true,
                    has_line_numbers: true,
                });
            }
        });
        segments.sort_unstable();
        Symbolizer {
            segments,
            resolved: HashMap::new(),
            locations: HashMap::new(),
        }
    }

    /// The names of the functions at an address, innermost inlined call first.
    #[cfg(feature = "cpu")]
    pub(crate) fn function_names(&mut self, ip: usize) -> impl Iterator<Item = &str> {
        self.resolve(ip).iter().map(|(f, _)| f.name.as_str())
    }

    /// The location of a return address (or, for the interrupted frame, an instruction address),
    /// interned in the profile being built.
    pub(crate) fn location(&mut self, builder: &mut ProfileBuilder, ip: usize) -> usize {
        if let Some(&id) = self.locations.get(&ip) {
            return id;
        }
        let lines = self
            .resolve(ip)
            .iter()
            .map(|(function, line)| Line {
                function: builder.function(function.clone()),
                line: *line,
            })
            .collect();
        let id = builder.location(Location {
            mapping: self.mapping_of(ip),
            address: ip as u64,
            lines,
        });
        self.locations.insert(ip, id);
        id
    }

    fn resolve(&mut self, ip: usize) -> &[(Function, i64)] {
        self.resolved.entry(ip).or_insert_with(|| {
            let mut lines = Vec::new();
            // A return address points after the call; the call itself is one byte earlier.
            let lookup = ip.saturating_sub(1) as *mut c_void;
            backtrace::resolve(lookup, |symbol| {
                let function = Function {
                    name: symbol
                        .name()
                        .map(|n| format!("{n:#}"))
                        .unwrap_or_else(|| format!("{ip:#x}")),
                    system_name: symbol
                        .name()
                        .and_then(|n| n.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    filename: symbol
                        .filename()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default(),
                    start_line: 0,
                };
                lines.push((function, symbol.lineno().map_or(0, i64::from)));
            });
            if lines.is_empty() {
                let unknown = Function {
                    name: format!("{ip:#x}"),
                    ..Function::default()
                };
                lines.push((unknown, 0));
            }
            lines
        })
    }

    fn mapping_of(&self, ip: usize) -> Option<usize> {
        let i = self.segments.partition_point(|&(start, _, _)| start <= ip);
        let &(start, end, mapping) = self.segments.get(i.checked_sub(1)?)?;
        (start..end).contains(&ip).then_some(mapping)
    }
}

impl Drop for Symbolizer {
    /// backtrace keeps the parsed debug information of every object it read (tens of MiB for a
    /// service with line tables); a profiler should not be what holds the most memory between
    /// profiles, so it is released, at the price of reading it again for the next profile.
    fn drop(&mut self) {
        backtrace::clear_symbol_cache();
    }
}
