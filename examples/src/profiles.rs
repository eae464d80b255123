//! Taking profiles through the agent's HTTP endpoints, as a user would with curl, and reading them.
//!
//! The demo and the tests both ask the running agent for profiles over loopback and decode the
//! pprof bytes with the agent's own `profile` model; [`share`] answers the question a person asks of
//! a flame graph: how much of the total sits under frames like this one?

use std::net::SocketAddr;
use std::time::Duration;

use pyrometer::profile::{pprof, Profile, SampleIndex};

/// A profile kind the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/debug/pprof/profile`: CPU samples.
    Cpu,
    /// `/debug/pprof/allocs`: allocations made during the window.
    Allocs,
    /// `/debug/pprof/spans`: wall time of tracing spans, waiting included.
    Spans,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Cpu => "/debug/pprof/profile",
            Kind::Allocs => "/debug/pprof/allocs",
            Kind::Spans => "/debug/pprof/spans",
        }
    }

    /// The stem of file names (`cpu`, `allocs`).
    pub fn stem(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Allocs => "allocs",
            Kind::Spans => "spans",
        }
    }
}

/// Why a profile could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The agent could not be reached or the transfer broke.
    Http(String),
    /// The agent answered with an error status and its one-line message.
    Status(u16, String),
    /// The body is not a pprof profile.
    Decode(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http(e) => write!(f, "asking the agent failed: {e}"),
            FetchError::Status(status, body) => {
                write!(f, "the agent answered {status}: {}", body.trim())
            }
            FetchError::Decode(e) => write!(f, "the agent's profile does not decode: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// A profile as the agent sent it (gzip-compressed pprof) and decoded.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub raw: Vec<u8>,
    pub profile: Profile,
}

/// Asks the agent at `agent` (loopback) for a profile of `seconds`.
pub async fn fetch(agent: SocketAddr, kind: Kind, seconds: u64) -> Result<Fetched, FetchError> {
    let url = format!("http://{agent}{}?seconds={seconds}", kind.path());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(seconds + 60))
        .build()
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if !status.is_success() {
        return Err(FetchError::Status(
            status.as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    let profile = pprof::decode(&body).map_err(|e| FetchError::Decode(e.to_string()))?;
    Ok(Fetched {
        raw: body.to_vec(),
        profile,
    })
}

/// The share (0 to 1) of the profile's default sample value in samples that have a frame whose
/// function name satisfies `matches`.
pub fn share(profile: &Profile, matches: impl Fn(&str) -> bool) -> f64 {
    let Ok(index) = profile.sample_index(&SampleIndex::Default) else {
        return 0.0;
    };
    let total = profile.total(index);
    if total <= 0 {
        return 0.0;
    }
    let hit: i64 = profile
        .samples
        .iter()
        .filter(|s| profile.frames(s).any(|f| matches(&f.function.name)))
        .filter_map(|s| s.values.get(index))
        .sum();
    hit as f64 / total as f64
}
