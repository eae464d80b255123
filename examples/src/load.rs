//! A bounded load generator for services on this machine.
//!
//! Measuring a change needs the same load before and after it: a fixed number of concurrent
//! clients, each sending its next request when the previous one has answered (a closed loop), for
//! a fixed duration or request count. Latencies go into one HDR histogram per route (microseconds,
//! three significant digits), so p50, p95 and p99 are exact to 0.1% whatever the spread.
//!
//! It sends traffic to loopback addresses only (127.0.0.0/8, ::1, `localhost`) and refuses any
//! other target before sending a byte; every run is bounded in time and count and stops by itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The most concurrent clients a run may have.
pub const MAX_CONCURRENCY: usize = 512;
/// The longest a run may last.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most requests a run may send.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// The longest a histogram records (longer requests are recorded as this).
const MAX_RECORDED: Duration = Duration::from_secs(120);

/// Why a run did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The target is not a loopback address.
    NotLoopback(String),
    /// A setting is out of its range.
    Bounds(String),
    /// The HTTP client could not be built.
    Client(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotLoopback(target) => write!(
                f,
                "refusing to send load to {target}: the load generator only targets loopback \
                 (127.0.0.0/8, [::1] or localhost)"
            ),
            LoadError::Bounds(message) => f.write_str(message),
            LoadError::Client(message) => write!(f, "cannot build the HTTP client: {message}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Parses `http://127.0.0.1:8080`, `127.0.0.1:8080`, `localhost:8080` or `[::1]:8080` into a
/// loopback socket address, refusing anything else (other hosts are never resolved).
pub fn loopback_target(target: &str) -> Result<SocketAddr, LoadError> {
    let refuse = || LoadError::NotLoopback(target.to_string());
    let rest = target.trim();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let authority = rest.split('/').next().unwrap_or("");
    let addr = match authority.strip_prefix("localhost:") {
        Some(port) => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse().map_err(|_| refuse())?,
        ),
        None => authority.parse::<SocketAddr>().map_err(|_| refuse())?,
    };
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(refuse())
    }
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No new request after this long (requests in flight finish).
    After(Duration),
    /// After this many requests in all.
    Requests(u64),
}

/// One kind of request: a label for the report and how to make a path.
pub struct Target {
    pub label: String,
    pub path: Box<dyn Fn(&mut fastrand::Rng) -> String + Send + Sync>,
}

impl Target {
    pub fn new(
        label: impl Into<String>,
        path: impl Fn(&mut fastrand::Rng) -> String + Send + Sync + 'static,
    ) -> Target {
        Target {
            label: label.into(),
            path: Box::new(path),
        }
    }
}

/// A run: where, how many clients, when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub addr: SocketAddr,
    pub concurrency: usize,
    pub stop: Stop,
    /// A request that takes longer fails (and counts as failed).
    pub request_timeout: Duration,
    /// Seeds the clients' random paths, so runs are repeatable.
    pub seed: u64,
}

impl Plan {
    pub fn new(addr: SocketAddr, concurrency: usize, stop: Stop) -> Plan {
        Plan {
            addr,
            concurrency,
            stop,
            request_timeout: Duration::from_secs(30),
            seed: 1,
        }
    }

    fn check(&self) -> Result<(), LoadError> {
        if !self.addr.ip().is_loopback() {
            return Err(LoadError::NotLoopback(self.addr.to_string()));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(LoadError::Bounds(format!(
                "concurrency must be from 1 to {MAX_CONCURRENCY}, got {}",
                self.concurrency
            )));
        }
        match self.stop {
            Stop::After(d) if d.is_zero() || d > MAX_DURATION => Err(LoadError::Bounds(format!(
                "duration must be more than 0 and at most {} s, got {d:?}",
                MAX_DURATION.as_secs()
            ))),
            Stop::Requests(n) if n == 0 || n > MAX_REQUESTS => Err(LoadError::Bounds(format!(
                "request count must be from 1 to {MAX_REQUESTS}, got {n}"
            ))),
            _ if self.request_timeout.is_zero() || self.request_timeout > MAX_RECORDED => {
                Err(LoadError::Bounds(format!(
                    "request timeout must be more than 0 and at most {} s",
                    MAX_RECORDED.as_secs()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// What one route got.
#[derive(Debug, Clone)]
pub struct RouteStats {
    pub label: String,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests answered otherwise, or not at all; by status (0: no answer).
    pub failed: BTreeMap<u16, u64>,
    /// Latency of every finished request, in microseconds.
    pub latency: Histogram<u64>,
    /// The run's wall time, for throughput.
    pub elapsed: Duration,
}

impl RouteStats {
    fn new(label: &str) -> RouteStats {
        RouteStats {
            label: label.to_string(),
            ok: 0,
            failed: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, MAX_RECORDED.as_micros() as u64, 3)
                .expect("valid histogram bounds"),
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, latency: Duration, status: Option<u16>) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_RECORDED.as_micros() as u64);
        self.latency.saturating_record(micros);
        match status {
            Some(s) if (200..300).contains(&s) => self.ok += 1,
            other => *self.failed.entry(other.unwrap_or(0)).or_default() += 1,
        }
    }

    fn merge(&mut self, other: &RouteStats) {
        self.ok += other.ok;
        for (status, n) in &other.failed {
            *self.failed.entry(*status).or_default() += n;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Requests that finished, answered or not.
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    pub fn failures(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The latency at quantile `q` (0.5 for p50).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }

    /// Answered requests per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests() as f64 / secs
        } else {
            0.0
        }
    }
}

/// The result of a run: one entry per target, in the order given.
#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub routes: Vec<RouteStats>,
}

impl Report {
    pub fn route(&self, label: &str) -> Option<&RouteStats> {
        self.routes.iter().find(|r| r.label == label)
    }
}

/// Runs `plan` over `targets` (clients take them in turn) and returns the latencies per target.
pub async fn run(plan: Plan, targets: Vec<Target>) -> Result<Report, LoadError> {
    plan.check()?;
    if targets.is_empty() {
        return Err(LoadError::Bounds("no targets to send requests to".into()));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(plan.request_timeout)
        .build()
        .map_err(|e| LoadError::Client(e.to_string()))?;
    let targets = Arc::new(targets);
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(plan.concurrency);
    for worker in 0..plan.concurrency {
        let (client, targets, issued) = (client.clone(), targets.clone(), issued.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(plan.seed.wrapping_add(worker as u64));
            let mut stats: Vec<RouteStats> =
                targets.iter().map(|t| RouteStats::new(&t.label)).collect();
            let mut next = worker % targets.len();
            loop {
                let go = match plan.stop {
                    Stop::After(d) => start.elapsed() < d,
                    Stop::Requests(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                };
                if !go {
                    break;
                }
                let url = format!("http://{}{}", plan.addr, (targets[next].path)(&mut rng));
                let sent = Instant::now();
                let status = match client.get(&url).send().await {
                    // The latency includes reading the whole body.
                    Ok(response) => {
                        let status = response.status().as_u16();
                        response.bytes().await.ok().map(|_| status)
                    }
                    Err(_) => None,
                };
                stats[next].record(sent.elapsed(), status);
                next = (next + 1) % targets.len();
            }
            stats
        }));
    }
    let mut routes: Vec<RouteStats> = targets.iter().map(|t| RouteStats::new(&t.label)).collect();
    for worker in workers {
        // A worker only ends by finishing its loop; a panic there is a bug worth surfacing.
        let stats = worker.await.expect("load worker panicked");
        for (total, part) in routes.iter_mut().zip(&stats) {
            total.merge(part);
        }
    }
    let elapsed = start.elapsed();
    for route in &mut routes {
        route.elapsed = elapsed;
    }
    Ok(Report { elapsed, routes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "127.0.0.2:80/x",
            "localhost:9",
            "http://[::1]:8080/",
        ] {
            assert!(loopback_target(ok).unwrap().ip().is_loopback(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:80",
            "192.168.1.5:8080",
            "example.com:80",
            "http://localhost.evil.test:80",
            "[2001:db8::1]:80",
            "0.0.0.0:8080",
        ] {
            let err = loopback_target(bad).unwrap_err();
            assert!(matches!(err, LoadError::NotLoopback(_)), "{bad}: {err}");
            assert!(err.to_string().contains("refusing"), "{err}");
        }
    }

    #[test]
    fn plans_out_of_bounds_are_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let far: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let ok = Plan::new(addr, 4, Stop::Requests(10));
        assert!(ok.check().is_ok());
        assert!(matches!(
            Plan { addr: far, ..ok }.check(),
            Err(LoadError::NotLoopback(_))
        ));
        assert!(Plan {
            concurrency: 0,
            ..ok
        }
        .check()
        .is_err());
        assert!(Plan {
            stop: Stop::Requests(0),
            ..ok
        }
        .check()
        .is_err());
        assert!(Plan {
            stop: Stop::After(Duration::from_secs(7200)),
            ..ok
        }
        .check()
        .is_err());
    }
}
