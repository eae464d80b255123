//! The seven planted problems and the switches that turn each into its fixed form.
//!
//! Measuring a change means changing one thing at a time, so every problem has its own switch,
//! settable at start (`--fix` or `SHOP_FIX`, a comma-separated list of names or `all`) and at run time
//! (`POST /admin/fixes/{name}?fixed=true`). Handlers read their switch on every request, so a switch
//! flipped under load takes effect on the next request.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// One planted problem. Each lives on its own route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// A list route that runs one query per listed order for its lines.
    NPlusOne,
    /// A lookup by a column that has no index.
    Unindexed,
    /// Rendering that builds, clones and concatenates strings and vectors per item.
    HotAlloc,
    /// A new database connection opened for every request.
    ConnPerRequest,
    /// Three independent upstream calls made one after the other.
    SequentialCalls,
    /// An upstream call without a timeout, to an upstream that sometimes stalls.
    NoTimeout,
    /// A rarely changing catalog recomputed on every request.
    NoCache,
}

impl Problem {
    pub const ALL: [Problem; 7] = [
        Problem::NPlusOne,
        Problem::Unindexed,
        Problem::HotAlloc,
        Problem::ConnPerRequest,
        Problem::SequentialCalls,
        Problem::NoTimeout,
        Problem::NoCache,
    ];

    /// The name used on the command line, in the environment and in admin paths.
    pub fn name(self) -> &'static str {
        match self {
            Problem::NPlusOne => "n-plus-one",
            Problem::Unindexed => "unindexed",
            Problem::HotAlloc => "hot-alloc",
            Problem::ConnPerRequest => "conn-per-request",
            Problem::SequentialCalls => "sequential-calls",
            Problem::NoTimeout => "no-timeout",
            Problem::NoCache => "no-cache",
        }
    }

    /// What is wrong, and what the fix does, in a few words.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Problem::NPlusOne => (
                "one query per order for its lines",
                "one query with IN (...)",
            ),
            Problem::Unindexed => ("WHERE on a column without index", "CREATE INDEX"),
            Problem::HotAlloc => (
                "strings cloned and re-concatenated per item",
                "one preallocated buffer",
            ),
            Problem::ConnPerRequest => ("new connection per request", "shared pool"),
            Problem::SequentialCalls => ("three upstream calls in sequence", "tokio::join!"),
            Problem::NoTimeout => ("upstream call without timeout", "timeout + bounded retry"),
            Problem::NoCache => (
                "catalog recomputed per request",
                "TTL cache + Cache-Control",
            ),
        }
    }

    fn index(self) -> usize {
        Problem::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProblem(pub String);

impl fmt::Display for UnknownProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Problem::ALL.iter().map(|p| p.name()).collect();
        write!(
            f,
            "unknown problem {:?}; known: {}, or all",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownProblem {}

impl FromStr for Problem {
    type Err = UnknownProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Problem::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| UnknownProblem(s.to_string()))
    }
}

/// Parses `"unindexed,no-cache"`, `"all"` or `""` into the list of problems to fix.
pub fn parse_list(list: &str) -> Result<Vec<Problem>, UnknownProblem> {
    let list = list.trim();
    if list == "all" {
        return Ok(Problem::ALL.to_vec());
    }
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Which problems are fixed right now. Shared by all handlers; reads are one relaxed load.
#[derive(Debug, Default)]
pub struct Fixes {
    fixed: [AtomicBool; 7],
}

impl Fixes {
    pub fn new(fixed: &[Problem]) -> Self {
        let fixes = Fixes::default();
        for problem in fixed {
            fixes.set(*problem, true);
        }
        fixes
    }

    pub fn is_fixed(&self, problem: Problem) -> bool {
        self.fixed[problem.index()].load(Ordering::Relaxed)
    }

    /// Sets the switch and returns its previous state.
    pub fn set(&self, problem: Problem, fixed: bool) -> bool {
        self.fixed[problem.index()].swap(fixed, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_parse() {
        for problem in Problem::ALL {
            assert_eq!(problem.name().parse::<Problem>(), Ok(problem));
        }
        assert_eq!(parse_list("all").unwrap().len(), 7);
        assert_eq!(parse_list("").unwrap(), vec![]);
        assert_eq!(
            parse_list("unindexed, no-cache").unwrap(),
            vec![Problem::Unindexed, Problem::NoCache]
        );
        let err = parse_list("unindexed,fast").unwrap_err();
        assert!(err.to_string().contains("\"fast\""), "{err}");
    }

    #[test]
    fn switches_are_independent() {
        let fixes = Fixes::new(&[Problem::NoCache]);
        assert!(fixes.is_fixed(Problem::NoCache));
        assert!(!fixes.set(Problem::Unindexed, true));
        assert!(fixes.is_fixed(Problem::Unindexed));
        assert!(!fixes.is_fixed(Problem::NPlusOne));
    }
}
