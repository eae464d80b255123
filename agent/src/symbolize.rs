//! Turns raw instruction addresses captured by the samplers into profile locations: demangled
//! function names by their full path, files and lines (inlined calls expanded), and the mapping
//! each address lies in.
//!
//! Symbolization reads debug information and allocates freely, so it runs after a window closes,
//! on an ordinary thread, never inside a signal handler or the allocator.
//!
//! # Stacks
//!
//! A stack is given leaf first, as the unwinders produce it. Every address but the leaf's is a
//! return address: it points after a call, so it is looked up one byte earlier, inside the call
//! instruction. The leaf is a return address too when the stack was captured by a call (the heap
//! sampler's), but for a stack interrupted by a signal (the CPU sampler's) it is the exact address
//! of the next instruction to run, and looking it up one byte earlier would put a sample on a
//! function's first byte into the function before it. The caller says which with [`Leaf`].
//! Address 0 is what unwinders report for the outermost frame of some threads: it is no call site
//! and is dropped.
//!
//! # Names
//!
//! Objects are read with addr2line (DWARF, for files, lines and inlined calls) and their symbol
//! table. With `debug = "line-tables-only"`, DWARF names functions by their short name only
//! (`poll`, `{closure#0}`), while the symbol table has the full path of every function that was
//! not inlined; so the outermost frame at an address, the one the symbol belongs to, takes the
//! symbol's name when DWARF's lacks a path. Inlined frames can only carry what DWARF has: their
//! path with `debug = "limited"` or more, their short name with `line-tables-only`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;

use addr2line::Loader;
use findshlibs::{Segment, SharedLibrary, TargetSharedLibrary};

use crate::profile::{Function, Line, Location, Mapping, ProfileBuilder};

/// What the innermost address of a stack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// The address of the instruction that was about to run when the thread was interrupted.
    Exact,
    /// A return address, like every caller's: the stack was captured by a function call.
    #[cfg_attr(not(feature = "heap"), allow(dead_code))]
    ReturnAddress,
}

/// A loaded object, read when an address first needs it.
struct Object {
    /// The object as loaded.
    file: PathBuf,
    /// The file to read: the object's detached debug file when one is installed, else itself.
    path: PathBuf,
    /// Added to an address in the file to give its address in memory.
    bias: usize,
    /// `None` until read; `Some(None)` when it could not be read (no file, as for the vDSO).
    loader: Option<Option<Loader>>,
}

/// Resolves addresses into locations of one profile, resolving each distinct address once.
pub(crate) struct Symbolizer {
    /// `(start, end, mapping index)` of every loaded code segment.
    segments: Vec<(usize, usize, usize)>,
    /// The object of every mapping, by mapping index.
    objects: Vec<usize>,
    loaded: Vec<Object>,
    /// Every looked-up address resolved so far, with its functions and lines, innermost first.
    resolved: HashMap<usize, Vec<(Function, i64)>>,
    /// Looked-up addresses already interned as locations of the profile being built.
    locations: HashMap<usize, usize>,
}

impl Symbolizer {
    /// Records the process's loaded objects as the profile's mappings.
    pub(crate) fn new(builder: &mut ProfileBuilder) -> Self {
        let exe = std::env::current_exe().unwrap_or_default();
        let mut segments = Vec::new();
        let mut objects = Vec::new();
        let mut loaded = Vec::new();
        let mappings = &mut builder.profile_mut().mappings;
        TargetSharedLibrary::each(|lib| {
            let name = lib.name().to_string_lossy();
            let path = if name.is_empty() {
                exe.clone()
            } else {
                PathBuf::from(name.as_ref())
            };
            let filename = path.display().to_string();
            let build_id = lib.id().map(|id| id.to_string()).unwrap_or_default();
            let object = loaded.len();
            loaded.push(Object {
                path: debug_file(&build_id).unwrap_or_else(|| path.clone()),
                file: path,
                bias: lib.virtual_memory_bias().0,
                loader: None,
            });
            for segment in lib.segments().filter(|s| s.is_code()) {
                let start = segment.actual_virtual_memory_address(lib).0;
                let end = start + segment.len();
                segments.push((start, end, mappings.len()));
                objects.push(object);
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
            objects,
            loaded,
            resolved: HashMap::new(),
            locations: HashMap::new(),
        }
    }

    /// The locations of a stack given leaf first (see the module's docs for [`Leaf`]), interned
    /// in the profile being built, leaf first; address 0 is left out.
    pub(crate) fn stack(
        &mut self,
        builder: &mut ProfileBuilder,
        ips: &[usize],
        leaf: Leaf,
    ) -> Vec<usize> {
        ips.iter()
            .enumerate()
            .filter(|&(_, &ip)| ip != 0)
            .map(|(i, &ip)| {
                let exact = i == 0 && leaf == Leaf::Exact;
                self.location(builder, lookup_address(ip, exact))
            })
            .collect()
    }

    /// The names of the functions at a return address, innermost inlined call first.
    #[cfg(feature = "cpu")]
    pub(crate) fn function_names(&mut self, ip: usize) -> impl Iterator<Item = &str> {
        self.resolve(lookup_address(ip, false))
            .iter()
            .map(|(f, _)| f.name.as_str())
    }

    fn location(&mut self, builder: &mut ProfileBuilder, address: usize) -> usize {
        if let Some(&id) = self.locations.get(&address) {
            return id;
        }
        let lines = self
            .resolve(address)
            .iter()
            .map(|(function, line)| Line {
                function: builder.function(function.clone()),
                line: *line,
            })
            .collect();
        let id = builder.location(Location {
            mapping: self.mapping_of(address),
            address: address as u64,
            lines,
        });
        self.locations.insert(address, id);
        id
    }

    fn resolve(&mut self, address: usize) -> &[(Function, i64)] {
        if !self.resolved.contains_key(&address) {
            let mut lines = self.read(address);
            if lines.is_empty() {
                lines.push((self.unknown(address), 0));
            }
            self.resolved.insert(address, lines);
        }
        &self.resolved[&address]
    }

    /// The frames at an address from its object's DWARF and symbol table, innermost first.
    fn read(&mut self, address: usize) -> Vec<(Function, i64)> {
        let Some(mapping) = self.mapping_of(address) else {
            return Vec::new();
        };
        let object = &mut self.loaded[self.objects[mapping]];
        let probe = address.wrapping_sub(object.bias) as u64;
        let path = &object.path;
        let Some(loader) = object
            .loader
            .get_or_insert_with(|| Loader::new(path).ok())
            .as_ref()
        else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        if let Ok(mut frames) = loader.find_frames(probe) {
            while let Ok(Some(frame)) = frames.next() {
                let name = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.raw_name().ok())
                    .map(|raw| demangle(&raw).into_owned())
                    .unwrap_or_default();
                let (filename, line) = frame
                    .location
                    .map(|l| (l.file.unwrap_or_default().to_string(), l.line.unwrap_or(0)))
                    .unwrap_or_default();
                let function = Function {
                    name,
                    filename,
                    ..Function::default()
                };
                lines.push((function, i64::from(line)));
            }
        }
        if let Some(symbol) = loader.find_symbol(probe) {
            match lines.last_mut() {
                Some((physical, _)) if !has_path(&physical.name) => {
                    physical.name = demangle(symbol).into_owned();
                    physical.system_name = symbol.to_string();
                }
                Some((physical, _)) => physical.system_name = symbol.to_string(),
                None => lines.push((
                    Function {
                        name: demangle(symbol).into_owned(),
                        system_name: symbol.to_string(),
                        ..Function::default()
                    },
                    0,
                )),
            }
        }
        lines.retain(|(function, _)| !function.name.is_empty());
        lines
    }

    /// A frame with no symbol: named by its object, as perf does, when it lies in one (a library
    /// stripped of its internal symbols), else by its address.
    fn unknown(&self, address: usize) -> Function {
        let object = self
            .mapping_of(address)
            .map(|m| &self.loaded[self.objects[m]].file);
        let name = match object.and_then(|f| f.file_name()) {
            Some(file) => format!("[{}]", file.to_string_lossy()),
            None => format!("{address:#x}"),
        };
        Function {
            name,
            ..Function::default()
        }
    }

    fn mapping_of(&self, ip: usize) -> Option<usize> {
        let i = self.segments.partition_point(|&(start, _, _)| start <= ip);
        let &(start, end, mapping) = self.segments.get(i.checked_sub(1)?)?;
        (start..end).contains(&ip).then_some(mapping)
    }
}

/// The detached debug file of an object, where distributions install it (Debian's `libc6-dbg`
/// puts libc's there): it has the symbols of the functions a stripped library does not export,
/// such as `start_thread` at the root of every thread.
fn debug_file(build_id: &str) -> Option<PathBuf> {
    let (dir, rest) = (build_id.get(..2)?, build_id.get(2..)?);
    let path = PathBuf::from(format!("/usr/lib/debug/.build-id/{dir}/{rest}.debug"));
    path.is_file().then_some(path)
}

/// Where to look an address up: a return address points after its call, so one byte earlier.
fn lookup_address(ip: usize, exact: bool) -> usize {
    if exact {
        ip
    } else {
        ip.saturating_sub(1)
    }
}

/// Whether a name has a path (`a::b`, `<T as U>::f`) outside its generic arguments: the short
/// names of DWARF's line tables have only generic arguments (`drop_in_place<alloc::string::String>`).
pub(crate) fn has_path(name: &str) -> bool {
    let mut depth = 0usize;
    let mut previous = ' ';
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            // The arrow of a function type (`impl Fn() -> T`) closes nothing.
            '>' if previous != '-' => depth = depth.saturating_sub(1),
            ':' if depth == 0 && previous == ':' => return true,
            _ => {}
        }
        previous = c;
    }
    false
}

/// A Rust name (legacy or v0 mangling) demangled without its hash; anything else as it is.
fn demangle(name: &str) -> Cow<'_, str> {
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => Cow::Owned(format!("{demangled:#}")),
        Err(_) => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn stack_here() -> Vec<usize> {
        let mut ips = Vec::new();
        backtrace::trace(|frame| {
            ips.push(frame.ip() as usize);
            true
        });
        ips
    }

    #[test]
    fn names_carry_paths_and_zero_is_dropped() {
        let mut ips = std::hint::black_box(stack_here());
        // The unwinder may end the stack with address 0 itself; one more is sure to be there.
        ips.push(0);
        let depth = ips.iter().filter(|&&ip| ip != 0).count();
        let mut builder = ProfileBuilder::new(Vec::new());
        let mut symbolizer = Symbolizer::new(&mut builder);
        let stack = symbolizer.stack(&mut builder, &ips, Leaf::ReturnAddress);
        assert_eq!(stack.len(), depth, "address 0 is not a frame");
        let profile = builder.build();
        let names: Vec<&str> = stack
            .iter()
            .flat_map(|&l| &profile.locations[l].lines)
            .map(|l| profile.functions[l.function].name.as_str())
            .collect();
        let test = "pyrometer::symbolize::tests::names_carry_paths_and_zero_is_dropped";
        assert!(names.contains(&test), "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with("0x")), "{names:?}");
    }

    #[test]
    fn an_exact_leaf_is_looked_up_at_its_own_address() {
        // The first byte of a function: looked up one byte earlier, it would land in whatever
        // precedes the function.
        let start = stack_here as *const () as usize;
        let mut builder = ProfileBuilder::new(Vec::new());
        let mut symbolizer = Symbolizer::new(&mut builder);
        let exact = symbolizer.stack(&mut builder, &[start], Leaf::Exact)[0];
        let profile = builder.build();
        let location = &profile.locations[exact];
        assert_eq!(location.address, start as u64);
        let name = &profile.functions[location.lines.last().unwrap().function].name;
        assert!(name.ends_with("stack_here"), "{name}");
    }

    #[test]
    fn paths_are_told_from_generic_arguments() {
        assert!(has_path("tokio::runtime::park::wake"));
        assert!(has_path("<alloc::vec::Vec<T> as core::ops::Drop>::drop"));
        assert!(!has_path("drop_in_place<alloc::string::String>"));
        assert!(!has_path("{closure#0}<std::env::Args>"));
        assert!(!has_path("poll"));
        assert!(!has_path(
            "{async_block#0}<F, fn() -> Fut, core::option::Option<T>>"
        ));
    }

    #[test]
    fn demangles_without_hash() {
        assert_eq!(
            demangle("_ZN1t4shop7catalog7compute17hd66467b7b8e8196dE"),
            "t::shop::catalog::compute"
        );
        assert_eq!(demangle("sqlite3VdbeExec"), "sqlite3VdbeExec");
    }
}
