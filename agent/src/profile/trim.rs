//! Trimmed stacks: flame graphs that start near the service's own code.
//!
//! A request's stack in a tokio/axum service is 100 frames or more before the handler: the
//! thread's start, the worker's scheduler loop, the task's poll, then hyper's connection,
//! tower's and axum's layers, each adding `poll` after `poll`. A person looking for the
//! handler's hot function has to zoom through all of it. [`trim`] makes two cuts:
//!
//! - everything below the innermost executor task poll (tokio's `Core::poll`/`Harness::poll`)
//!   goes: it is the same machinery for every task, and the task's future is what matters;
//! - every run of runtime and framework frames (tokio, hyper, tower, axum, futures, std's and
//!   libc's thread start, and the `core`/`std` glue between them) that has the service's own code
//!   above it becomes one frame labelled with the crates it stood for, such as
//!   `[tokio, hyper, axum]`. Runs at the top of a stack stay as they are: there the framework is
//!   what spends the time (parsing, polling I/O), and hiding it would hide the cost.
//!
//! Values are untouched: each sample keeps its weight, so every total is the same. The result is
//! meant for drawing; its locations have no addresses.

use super::{Function, Line, Location, Profile, ProfileBuilder};

/// The crates whose frames are runtime and framework plumbing.
const FRAMEWORK: &[&str] = &[
    "tokio",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "tower_http",
    "tower_layer",
    "tower_service",
    "axum",
    "axum_core",
    "futures",
    "futures_util",
    "futures_core",
    "tracing",
    "tracing_futures",
    "std",
    "core",
    "alloc",
];

/// libc's functions at the root of every thread.
const THREAD_START: &[&str] = &["start_thread", "clone3", "__clone3", "clone", "__clone"];

/// The profile with every stack trimmed as the module's docs say.
pub fn trim(profile: &Profile) -> Profile {
    let mut builder = ProfileBuilder::new(profile.sample_types.clone());
    {
        let p = builder.profile_mut();
        p.default_sample_type = profile.default_sample_type.clone();
        p.period_type = profile.period_type.clone();
        p.period = profile.period;
        p.time_nanos = profile.time_nanos;
        p.duration_nanos = profile.duration_nanos;
        p.comments = profile.comments.clone();
    }
    for sample in &profile.samples {
        let mut frames: Vec<(&Function, i64)> = profile
            .frames(sample)
            .map(|f| (f.function, f.line))
            .collect();
        frames.reverse();
        let start = frames
            .iter()
            .rposition(|(f, _)| is_task_poll(f))
            .map_or(0, |i| i + 1);
        let last_app = frames
            .iter()
            .rposition(|(f, _)| framework_crate(f).is_none());
        let mut locations = Vec::new();
        let mut run: Vec<&str> = Vec::new();
        let mut in_run = 0;
        for (i, &(function, line)) in frames.iter().enumerate().skip(start) {
            let framework = framework_crate(function);
            match framework {
                Some(krate) if last_app.is_some_and(|j| j > i) => {
                    in_run += 1;
                    if !run.contains(&krate) {
                        run.push(krate);
                    }
                    continue;
                }
                _ => {}
            }
            if in_run > 0 {
                locations.push(builder.named_location(&run_label(&run), "", 0));
                run.clear();
                in_run = 0;
            }
            let function = builder.function(function.clone());
            locations.push(builder.location(Location {
                mapping: None,
                address: 0,
                lines: vec![Line { function, line }],
            }));
        }
        locations.reverse();
        builder.sample(locations, sample.values.clone());
        if let Some(last) = builder.profile_mut().samples.last_mut() {
            last.labels = sample.labels.clone();
        }
    }
    builder.build()
}

/// The label of a folded run: its crates, std's glue left out unless it is all there was.
fn run_label(crates: &[&str]) -> String {
    let own: Vec<&str> = crates
        .iter()
        .copied()
        .filter(|c| !matches!(*c, "std" | "core" | "alloc"))
        .collect();
    let shown = if own.is_empty() { crates } else { &own };
    format!("[{}]", shown.join(", "))
}

/// The executor's poll of one task: below it, the worker's loop; above it, the task's future.
fn is_task_poll(function: &Function) -> bool {
    let name = function.name.trim_start_matches('<');
    let last = name.rsplit("::").next().unwrap_or(name);
    if name.starts_with("tokio::runtime::task::") {
        return last.starts_with("poll");
    }
    // Inlined, with the short names of line tables only: told by the file.
    !name.contains("::")
        && name.starts_with("poll")
        && ["runtime/task/core.rs", "runtime/task/harness.rs"]
            .iter()
            .any(|f| function.filename.contains("tokio-") && function.filename.ends_with(f))
}

/// The framework crate a frame belongs to, if any: from its path, or for a short name, from its
/// file (a crate's sources sit in `NAME-VERSION/src/`, std's in `library/NAME/src/`).
fn framework_crate(function: &Function) -> Option<&'static str> {
    let name = function.name.trim_start_matches('<');
    if THREAD_START.contains(&name) || name == "[libc.so.6]" {
        return Some("std");
    }
    let krate = match name.split_once("::") {
        Some((krate, _)) if !krate.contains(['<', ' ', '{']) => krate.to_string(),
        _ => crate_of_file(&function.filename)?,
    };
    FRAMEWORK.iter().copied().find(|&f| f == krate)
}

fn crate_of_file(filename: &str) -> Option<String> {
    filename.match_indices("/src/").find_map(|(src, _)| {
        let parent = &filename[..src];
        let dir = parent.rsplit('/').next()?;
        if parent.ends_with(&format!("library/{dir}")) {
            return Some(dir.to_string());
        }
        let (name, version) = dir.rsplit_once('-')?;
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| name.replace('-', "_"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ValueType;

    fn profile(stacks: &[(&[&str], i64)]) -> Profile {
        let mut builder = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        for (names, value) in stacks {
            // Given root first, stored leaf first.
            let locations = names
                .iter()
                .rev()
                .map(|n| builder.named_location(n, "", 0))
                .collect();
            builder.sample(locations, vec![*value]);
        }
        builder.build()
    }

    fn names(profile: &Profile) -> Vec<Vec<String>> {
        profile
            .samples
            .iter()
            .map(|s| {
                let mut n: Vec<String> =
                    profile.frames(s).map(|f| f.function.name.clone()).collect();
                n.reverse();
                n
            })
            .collect()
    }

    #[test]
    fn cuts_below_the_task_poll_and_folds_framework_runs() {
        let request: &[&str] = &[
            "start_thread",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "tokio::runtime::scheduler::multi_thread::worker::Context::run",
            "tokio::runtime::task::raw::poll",
            "tokio::runtime::task::harness::Harness::poll",
            "hyper::proto::h1::dispatch::Dispatcher::poll_loop",
            "<tower::util::map_response::MapResponseFuture as core::future::future::Future>::poll",
            "<axum::routing::route::RouteFuture as core::future::future::Future>::poll",
            "shop::routes::catalog::{closure}",
            "shop::catalog::compute",
            "alloc::vec::Vec::push",
        ];
        let idle: &[&str] = &[
            "start_thread",
            "tokio::runtime::scheduler::multi_thread::worker::Context::park",
            "epoll_wait",
        ];
        let full = profile(&[(request, 5), (idle, 2)]);
        let trimmed = trim(&full);
        assert_eq!(trimmed.total(0), full.total(0));
        assert_eq!(
            names(&trimmed),
            vec![
                vec![
                    "[hyper, tower, axum]",
                    "shop::routes::catalog::{closure}",
                    "shop::catalog::compute",
                    "alloc::vec::Vec::push",
                ],
                // No task: the thread's start and the worker's loop fold up to the system call.
                vec!["[tokio]", "epoll_wait"],
            ]
        );
    }

    #[test]
    fn short_names_of_framework_frames_are_told_by_their_file() {
        let poll = Function {
            name: "poll".into(),
            filename: "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/task/core.rs".into(),
            ..Function::default()
        };
        assert!(is_task_poll(&poll));
        assert_eq!(framework_crate(&poll), Some("tokio"));
        let next = Function {
            name: "next<u8>".into(),
            filename:
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/iter/range.rs"
                    .into(),
            ..Function::default()
        };
        assert_eq!(framework_crate(&next), Some("core"));
        let own = Function {
            name: "compute".into(),
            filename: "/work/shop/src/catalog.rs".into(),
            ..Function::default()
        };
        assert_eq!(framework_crate(&own), None);
    }
}
