//! Where each planted problem shows, in the terms a person uses when reading a profile: which kind
//! of profile to take, and which frame takes most of it.
//!
//! The demo prints these shares before and after each fix, and the tests assert them, so the claim
//! "this is where you would look" is checked against real profiles rather than written down once.
//! Problems that cost waiting rather than CPU or memory (sequential calls, a missing timeout) and the
//! N+1 pattern show in latency, query counts and span profiles instead, and have no signature here.

use crate::profiles::{self, Fetched, Kind};
use crate::shop::fixes::Problem;

/// What a problem looks like in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub kind: Kind,
    /// A frame whose function name contains this takes most of the profile while the problem is
    /// planted.
    pub frame: &'static str,
    /// What that frame is doing, in a few words.
    pub meaning: &'static str,
}

/// The signature of a problem, if it shows in CPU or allocation profiles.
pub fn signature(problem: Problem) -> Option<Signature> {
    let (kind, frame, meaning) = match problem {
        Problem::Unindexed => (
            Kind::Cpu,
            "sqlite3VdbeExec",
            "SQLite stepping through every row",
        ),
        Problem::HotAlloc => (Kind::Allocs, "export_planted", "the renderer's allocations"),
        Problem::ConnPerRequest => (
            Kind::Cpu,
            "sqlite3Init",
            "SQLite loading the schema into each new connection",
        ),
        Problem::NoCache => (Kind::Cpu, "catalog::compute", "recomputing the catalog"),
        Problem::NPlusOne | Problem::SequentialCalls | Problem::NoTimeout => return None,
    };
    Some(Signature {
        kind,
        frame,
        meaning,
    })
}

/// The share (0 to 1) of a profile under the signature's frame.
pub fn share(signature: Signature, profile: &Fetched) -> f64 {
    profiles::share(&profile.profile, |name| name.contains(signature.frame))
}

/// The signature's share in the profile of its kind among `taken`, if one was taken. Without an
/// allocation profile, the CPU profile stands in: allocating also costs CPU.
pub fn share_in(signature: Signature, taken: &[(Kind, Fetched)]) -> Option<f64> {
    let find = |kind: Kind| taken.iter().find(|(k, _)| *k == kind);
    find(signature.kind)
        .or_else(|| find(Kind::Cpu))
        .map(|(_, profile)| share(signature, profile))
}

/// "sqlite3VdbeExec (SQLite stepping through every row): 91% of cpu before, 4% after".
pub fn describe(
    problem: Problem,
    before: &[(Kind, Fetched)],
    after: &[(Kind, Fetched)],
) -> Option<String> {
    let mut signature = signature(problem)?;
    if !before.iter().any(|(kind, _)| *kind == signature.kind) {
        signature.kind = Kind::Cpu;
    }
    let (b, a) = (share_in(signature, before)?, share_in(signature, after)?);
    Some(format!(
        "{} ({}): {:.0}% of the {} profile before, {:.0}% after",
        signature.frame,
        signature.meaning,
        b * 100.0,
        signature.kind.stem(),
        a * 100.0
    ))
}
