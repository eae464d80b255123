//! Where a function comes from: the service's own code, a dependency, or the runtime underneath
//! (Rust's std, core and alloc, tokio, libc, Go's standard library).
//!
//! A flame graph coloured by origin answers the first question an engineer asks of a hot frame,
//! "is this mine?", the way clinic flame tells app, dependency and core code apart. The rules use
//! what a profile has: the function's name (its crate or package) and, when present, its file
//! (crates from the cargo registry are dependencies, files under `/rustc/` are std). Which crates
//! are "the service" is given by the caller, or inferred from the crates that define `main`.

use std::collections::HashSet;

use super::{Function, Profile};

/// The three colours of a flame graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The service's own crates (or Go's `main` package).
    App,
    /// Any other crate or package.
    Dependency,
    /// std, core, alloc, tokio, C runtime symbols, Go's standard library.
    Runtime,
}

/// Crate names whose code counts as the runtime underneath a Rust service.
const RUNTIME_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "tokio",
    "proc_macro",
    "test",
    "panic_unwind",
    "panic_abort",
    "std_detect",
    "compiler_builtins",
];

/// Path fragments of sources that belong to dependencies.
const DEPENDENCY_PATHS: &[&str] = &["/.cargo/registry/", "/.cargo/git/", "/go/pkg/mod/"];

/// Path fragments of sources that belong to the runtime.
const RUNTIME_PATHS: &[&str] = &[
    "/rustc/",
    "/library/std/",
    "/library/core/",
    "/library/alloc/",
    "/usr/lib/go",
    "/usr/local/go/",
];

/// Classifies functions, knowing which crates are the service's own.
#[derive(Debug, Clone, Default)]
pub struct OriginRules {
    app_crates: HashSet<String>,
}

impl OriginRules {
    /// Rules with the given app crates, or, when none are given, the crates that define a `main`
    /// function in this profile (`shop::main` makes `shop` the app).
    pub fn for_profile(profile: &Profile, app_crates: &[String]) -> Self {
        let app_crates = if app_crates.is_empty() {
            profile
                .functions
                .iter()
                .filter_map(|f| {
                    let (module, item) = f.name.rsplit_once("::")?;
                    (item == "main" && !module.contains(['<', ' '])).then(|| crate_of(&f.name))
                })
                .filter(|c| !RUNTIME_CRATES.contains(&c.as_str()))
                .collect()
        } else {
            app_crates.iter().cloned().collect()
        };
        OriginRules { app_crates }
    }

    pub fn classify(&self, function: &Function) -> Origin {
        let name = function.name.as_str();
        let file = function.filename.as_str();
        let krate = crate_of(name);
        // Go's `main` package, or a C program's `main`, is the program itself.
        if self.app_crates.contains(&krate) || krate == "main" {
            return Origin::App;
        }
        if is_runtime_crate(&krate) || name.starts_with("__rust") || name.starts_with("rust_") {
            return Origin::Runtime;
        }
        if DEPENDENCY_PATHS.iter().any(|p| file.contains(p)) {
            return Origin::Dependency;
        }
        if RUNTIME_PATHS.iter().any(|p| file.contains(p))
            || RUNTIME_RELATIVE_PATHS.iter().any(|p| file.starts_with(p))
        {
            return Origin::Runtime;
        }
        let rust_path = name.contains("::");
        if !rust_path && krate != name {
            // A Go symbol: the standard library has no dot in its first path element, modules
            // do (github.com/...).
            let first = krate.split('/').next().unwrap_or("");
            return if first.contains('.') {
                Origin::Dependency
            } else {
                Origin::Runtime
            };
        }
        if !file.is_empty() && self.app_crates.is_empty() {
            // A source file outside the registry and the toolchain is the service's own.
            return Origin::App;
        }
        if !rust_path {
            // A bare symbol without source (memcpy, _start, [unknown]): C runtime or kernel.
            return Origin::Runtime;
        }
        Origin::Dependency
    }
}

/// Std's sources as backtraces of release builds name them, relative to the library root.
const RUNTIME_RELATIVE_PATHS: &[&str] = &["std/src/", "core/src/", "alloc/src/"];

/// Runtime crates, and primitive types, whose inherent methods live in core (`<u64>::fmt`).
fn is_runtime_crate(krate: &str) -> bool {
    const PRIMITIVES: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool", "char", "str",
    ];
    RUNTIME_CRATES.contains(&krate) || PRIMITIVES.contains(&krate) || krate.starts_with('[')
}

/// The crate (Rust) or package (Go) a function name belongs to: `<alloc::vec::Vec<T>>::push`
/// gives `alloc`, `crypto/sha256.block` gives `crypto/sha256`, `memcpy` gives `memcpy`.
pub fn crate_of(name: &str) -> String {
    let name = name.trim_start_matches(['<', '&', '*', '(']);
    let name = name
        .strip_prefix("dyn ")
        .or_else(|| name.strip_prefix("impl "))
        .or_else(|| name.strip_prefix("mut "))
        .or_else(|| name.strip_prefix("const "))
        .unwrap_or(name);
    if let Some((root, _)) = name.split_once("::") {
        // `<u64 as core::fmt::Display>::fmt` belongs to `u64`, `fold<core::..>` to `fold`.
        let end = root.find([' ', '<']).unwrap_or(root.len());
        return root[..end].to_string();
    }
    // Go: the package is everything up to the first `.` after the last `/`.
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].find('.') {
        Some(dot) => name[..slash + dot].to_string(),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, filename: &str) -> Function {
        Function {
            name: name.into(),
            filename: filename.into(),
            ..Function::default()
        }
    }

    #[test]
    fn crates_of_rust_and_go_names() {
        assert_eq!(
            crate_of("<alloc::raw_vec::RawVecInner>::grow_amortized"),
            "alloc"
        );
        assert_eq!(crate_of("<shop::Db as core::fmt::Debug>::fmt"), "shop");
        assert_eq!(crate_of("crypto/sha256.(*digest).Write"), "crypto/sha256");
        assert_eq!(crate_of("github.com/a/b.F"), "github.com/a/b");
        assert_eq!(crate_of("memcpy"), "memcpy");
        assert_eq!(crate_of("<u64 as core::fmt::Display>::fmt"), "u64");
    }

    #[test]
    fn app_is_inferred_from_main() {
        let mut b = crate::profile::ProfileBuilder::new(vec![]);
        b.named_location("shop::main", "", 0);
        let rules = OriginRules::for_profile(&b.build(), &[]);
        assert_eq!(
            rules.classify(&named("shop::orders::total", "")),
            Origin::App
        );
        assert_eq!(
            rules.classify(&named("serde_json::to_vec", "")),
            Origin::Dependency
        );
        assert_eq!(
            rules.classify(&named("tokio::runtime::park", "")),
            Origin::Runtime
        );
        assert_eq!(
            rules.classify(&named("<alloc::vec::Vec<T>>::push", "")),
            Origin::Runtime
        );
        assert_eq!(
            rules.classify(&named("__libc_start_main", "")),
            Origin::Runtime
        );
    }

    #[test]
    fn files_decide_when_no_app_crate_is_known() {
        let rules = OriginRules::default();
        let dep = named(
            "hyper::proto::h1::decode",
            "/home/u/.cargo/registry/src/x/hyper/src/a.rs",
        );
        assert_eq!(rules.classify(&dep), Origin::Dependency);
        assert_eq!(
            rules.classify(&named("shop::handler", "src/handler.rs")),
            Origin::App
        );
        assert_eq!(
            rules.classify(&named("main.buildItems", "/tmp/x/main.go")),
            Origin::App
        );
        assert_eq!(
            rules.classify(&named(
                "runtime.mallocgc",
                "/usr/lib/go-1.19/src/runtime/malloc.go"
            )),
            Origin::Runtime
        );
        assert_eq!(
            rules.classify(&named("crypto/sha256.block", "")),
            Origin::Runtime
        );
    }
}
