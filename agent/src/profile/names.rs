//! Short function names, as go tool pprof shows them: the path kept, generic arguments dropped.
//!
//! Rust's demangled names carry every generic argument (`<hyper::proto::h1::dispatch::Server<S,
//! B> as hyper::proto::h1::dispatch::Dispatch>::poll_msg`), so one function becomes as many rows
//! as it has instantiations, and flame graph labels are truncated before the name's useful end.
//! [`short_names`] drops the arguments (`<hyper::proto::h1::dispatch::Server as
//! hyper::proto::h1::dispatch::Dispatch>::poll_msg`), names closures `{closure}` whichever way they
//! were mangled, and merges the functions that end up with the same name and file into one, so
//! that a row's value is the sum over its instantiations and rows add up as users expect.

use std::collections::HashMap;

use super::{Function, Profile};

/// The profile with every function renamed by [`short_name`] and functions of equal short name
/// and file merged into one. Samples and locations are unchanged, so every total is too.
pub fn short_names(mut profile: Profile) -> Profile {
    let mut merged: HashMap<(String, String), usize> = HashMap::new();
    let mut functions: Vec<Function> = Vec::new();
    let remap: Vec<usize> = profile
        .functions
        .iter()
        .map(|f| {
            let name = short_name(&f.name);
            *merged
                .entry((name.clone(), f.filename.clone()))
                .or_insert_with(|| {
                    functions.push(Function { name, ..f.clone() });
                    functions.len() - 1
                })
        })
        .collect();
    for location in &mut profile.locations {
        for line in &mut location.lines {
            line.function = remap.get(line.function).copied().unwrap_or(line.function);
        }
    }
    profile.functions = functions;
    profile
}

/// A demangled Rust name without its generic arguments, closures as `{closure}`.
///
/// A `<` that follows a name (`Vec<T>`) or `::` (`size_of::<T>`) opens generic arguments, which
/// are dropped; any other `<` opens a qualified path (`<T as Trait>::f`), which is kept with the
/// arguments inside it dropped in turn.
pub fn short_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // For each open `<`: whether it is kept (a qualified path) or dropped (generic arguments).
    let mut open: Vec<bool> = Vec::new();
    let mut dropping = 0usize;
    let mut prev = ' ';
    for c in name.chars() {
        match c {
            '<' => {
                let generic = dropping > 0
                    || prev.is_alphanumeric()
                    || matches!(prev, '_' | '}' | ']' | '>')
                    || out.ends_with("::");
                if generic {
                    if dropping == 0 && out.ends_with("::") {
                        out.truncate(out.len() - 2);
                    }
                    dropping += 1;
                } else {
                    out.push(c);
                }
                open.push(!generic);
            }
            // The arrow of a function type (`fn() -> T`) closes nothing.
            '>' if prev != '-' => match open.pop() {
                Some(false) => dropping -= 1,
                Some(true) => out.push(c),
                None => out.push(c),
            },
            _ if dropping == 0 => out.push(c),
            _ => {}
        }
        prev = c;
    }
    normalize_closures(&out)
}

/// `{{closure}}` (legacy mangling) and `{closure#N}` (v0) both become `{closure}`.
fn normalize_closures(name: &str) -> String {
    let mut out = name.replace("{{closure}}", "{closure}");
    while let Some(start) = out.find("{closure#") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        out.replace_range(start..start + len + 1, "{closure}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Line, Location, ProfileBuilder, ValueType};

    #[test]
    fn generic_arguments_go_paths_stay() {
        let cases = [
            ("alloc::vec::Vec<T,A>::push", "alloc::vec::Vec::push"),
            (
                "<hyper::proto::h1::dispatch::Server<S, B> as hyper::proto::h1::dispatch::Dispatch>::poll_msg",
                "<hyper::proto::h1::dispatch::Server as hyper::proto::h1::dispatch::Dispatch>::poll_msg",
            ),
            ("core::ptr::drop_in_place::<alloc::string::String>", "core::ptr::drop_in_place"),
            (
                "<fn() -> core::result::Result<(), alloc::string::String> as core::ops::function::FnOnce<()>>::call_once",
                "<fn() -> core::result::Result as core::ops::function::FnOnce>::call_once",
            ),
            (
                "tokio::runtime::task::harness::Harness<T,S>::poll::{{closure}}",
                "tokio::runtime::task::harness::Harness::poll::{closure}",
            ),
            ("shop::catalog::compute::{closure#0}::{closure#12}", "shop::catalog::compute::{closure}::{closure}"),
            ("{closure#0}<std::env::Args>", "{closure}"),
            ("sqlite3VdbeExec", "sqlite3VdbeExec"),
            ("[libc.so.6]", "[libc.so.6]"),
        ];
        for (full, short) in cases {
            assert_eq!(short_name(full), short, "{full}");
        }
    }

    #[test]
    fn instantiations_merge_into_one_function_and_totals_stay() {
        let mut builder = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        let location = |builder: &mut ProfileBuilder, name: &str, address: u64| {
            let function = builder.function(Function {
                name: name.to_string(),
                filename: "src/vec.rs".into(),
                ..Function::default()
            });
            builder.location(Location {
                mapping: None,
                address,
                lines: vec![Line { function, line: 7 }],
            })
        };
        let a = location(&mut builder, "alloc::vec::Vec<u8>::push", 1);
        let b = location(&mut builder, "alloc::vec::Vec<u64>::push", 2);
        builder.sample(vec![a], vec![3]);
        builder.sample(vec![b], vec![4]);
        let full = builder.build();
        let short = short_names(full.clone());
        assert_eq!(full.functions.len(), 2);
        assert_eq!(short.functions.len(), 1);
        assert_eq!(short.functions[0].name, "alloc::vec::Vec::push");
        assert_eq!(short.total(0), full.total(0));
        assert!(short.samples.iter().all(|s| short
            .frames(s)
            .all(|f| f.function.name == "alloc::vec::Vec::push")));
    }
}
