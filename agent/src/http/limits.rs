//! Limits on open windows, per kind and for the agent as a whole, and the span windows' memory
//! budget.
//!
//! A window holds memory for as long as it is open: a span or diagnose window a copy of every
//! request that finishes meanwhile, a heap window two copies of the sampler's tables, a CPU window
//! the engine's buffers. Nothing used to bound how many were open, and 50 span and diagnose
//! windows on a loaded service grew it by 36 MB/s. Now a request for one window more than a limit
//! allows gets a one-line 503 with `Retry-After` (when the soonest open window of that kind ends),
//! naming the limit and how to raise it; and the span windows together keep what fits in their
//! budget ([`crate::spans::budget`]), counting the rest as left out.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::ApiError;
use crate::spans::budget;

/// How many windows may be open at once, and the span windows' memory budget. Set in code with
/// [`crate::AgentBuilder::limits`]; the environment (`PYROMETER_MAX_WINDOWS` and the others named
/// on each setter) overrides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    windows: usize,
    span_windows: usize,
    diagnose_windows: usize,
    heap_windows: usize,
    cpu_windows: usize,
    span_memory_mib: usize,
}

impl Default for Limits {
    /// 50 windows in all, any mix of span and diagnose windows among them, 16 heap windows, 4 CPU
    /// windows, and 256 MiB for the span windows' recordings: 50 span and diagnose windows of 300 s
    /// on the shop example under load stay within 512 MiB of the service's own memory (README,
    /// "Limits").
    fn default() -> Self {
        Limits {
            windows: 50,
            span_windows: 50,
            diagnose_windows: 50,
            heap_windows: 16,
            cpu_windows: 4,
            span_memory_mib: budget::DEFAULT_BUDGET >> 20,
        }
    }
}

/// The kinds of window, each with its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Spans,
    Diagnose,
    /// `/heap` and `/allocs` with `seconds`.
    Heap,
    Cpu,
}

/// One limit's names, for messages and the environment.
struct Setting {
    what: &'static str,
    method: &'static str,
    env: &'static str,
}

const WINDOWS: Setting = Setting {
    what: "windows of all kinds",
    method: "max_windows",
    env: "PYROMETER_MAX_WINDOWS",
};
const SPAN_MEMORY: Setting = Setting {
    what: "MiB of span windows' recordings",
    method: "span_memory_mib",
    env: "PYROMETER_SPAN_MEMORY_MIB",
};

impl Kind {
    fn setting(self) -> Setting {
        match self {
            Kind::Spans => Setting {
                what: "span windows",
                method: "max_span_windows",
                env: "PYROMETER_MAX_SPAN_WINDOWS",
            },
            Kind::Diagnose => Setting {
                what: "diagnose windows",
                method: "max_diagnose_windows",
                env: "PYROMETER_MAX_DIAGNOSE_WINDOWS",
            },
            Kind::Heap => Setting {
                what: "heap and allocs windows",
                method: "max_heap_windows",
                env: "PYROMETER_MAX_HEAP_WINDOWS",
            },
            Kind::Cpu => Setting {
                what: "CPU windows",
                method: "max_cpu_windows",
                env: "PYROMETER_MAX_CPU_WINDOWS",
            },
        }
    }

    fn records_spans(self) -> bool {
        matches!(self, Kind::Spans | Kind::Diagnose)
    }
}

/// A setting of [`Limits`] from the environment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for LimitError {}

impl Limits {
    /// Windows of all kinds open at once (default 50; `PYROMETER_MAX_WINDOWS`).
    pub fn max_windows(mut self, n: usize) -> Self {
        self.windows = n;
        self
    }

    /// `/debug/pprof/spans` windows open at once (default 50; `PYROMETER_MAX_SPAN_WINDOWS`).
    pub fn max_span_windows(mut self, n: usize) -> Self {
        self.span_windows = n;
        self
    }

    /// `/debug/pprof/diagnose` windows open at once (default 50;
    /// `PYROMETER_MAX_DIAGNOSE_WINDOWS`).
    pub fn max_diagnose_windows(mut self, n: usize) -> Self {
        self.diagnose_windows = n;
        self
    }

    /// `/heap` and `/allocs` windows (with `seconds`) open at once (default 16;
    /// `PYROMETER_MAX_HEAP_WINDOWS`). A heap profile of the present is not a window.
    pub fn max_heap_windows(mut self, n: usize) -> Self {
        self.heap_windows = n;
        self
    }

    /// CPU windows open at once (default 4; `PYROMETER_MAX_CPU_WINDOWS`). The sampling engine
    /// may allow fewer, and answers 409 past its own limit.
    pub fn max_cpu_windows(mut self, n: usize) -> Self {
        self.cpu_windows = n;
        self
    }

    /// The memory that span and diagnose windows' recordings may take together, in MiB (default
    /// 256; `PYROMETER_SPAN_MEMORY_MIB`). Requests that finish once it is used up are left out of
    /// the windows and counted.
    pub fn span_memory_mib(mut self, mib: usize) -> Self {
        self.span_memory_mib = mib;
        self
    }

    /// The span windows' budget in bytes.
    pub(crate) fn span_memory_bytes(&self) -> usize {
        self.span_memory_mib.saturating_mul(1 << 20)
    }

    fn of(&self, kind: Kind) -> usize {
        match kind {
            Kind::Spans => self.span_windows,
            Kind::Diagnose => self.diagnose_windows,
            Kind::Heap => self.heap_windows,
            Kind::Cpu => self.cpu_windows,
        }
    }

    /// Applies the environment, through `env` (the variable's value, if set and not blank), over
    /// what was set in code, and checks every value.
    pub(crate) fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Limits, LimitError> {
        let fields: [(Setting, &mut usize); 6] = [
            (WINDOWS, &mut self.windows),
            (Kind::Spans.setting(), &mut self.span_windows),
            (Kind::Diagnose.setting(), &mut self.diagnose_windows),
            (Kind::Heap.setting(), &mut self.heap_windows),
            (Kind::Cpu.setting(), &mut self.cpu_windows),
            (SPAN_MEMORY, &mut self.span_memory_mib),
        ];
        for (setting, value) in fields {
            if let Some(raw) = env(setting.env) {
                *value = raw.trim().parse().map_err(|_| LimitError {
                    setting: setting.env,
                    message: format!("{raw:?} is not a whole number of {}", setting.what),
                })?;
            }
            if *value == 0 {
                return Err(LimitError {
                    setting: setting.method,
                    message: format!(
                        "must be at least 1 (the number of {}; set with .{}(..) or {})",
                        setting.what, setting.method, setting.env
                    ),
                });
            }
        }
        Ok(self)
    }
}

/// The windows one agent has open, checked against its limits.
#[derive(Debug)]
pub(crate) struct OpenWindows {
    limits: Limits,
    /// Each open window's kind and when it is planned to end.
    open: Mutex<Vec<(u64, Kind, Instant)>>,
}

/// An open window's place; dropping it (the window ended or its client went away) frees it.
#[derive(Debug)]
pub(crate) struct Claim {
    windows: Arc<OpenWindows>,
    id: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.windows.lock().retain(|(id, _, _)| *id != self.id);
    }
}

impl OpenWindows {
    pub(crate) fn new(limits: Limits) -> Arc<OpenWindows> {
        Arc::new(OpenWindows {
            limits,
            open: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Kind, Instant)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The windows open against their limits, for the index page.
    pub(crate) fn status(&self) -> String {
        let open = self.lock();
        let count = |kind: Kind| open.iter().filter(|(_, k, _)| *k == kind).count();
        let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
        format!(
            "{} of {} windows open (spans {}/{}, diagnose {}/{}, heap {}/{}, CPU {}/{}); span \
             recordings hold {:.1} of {} MiB",
            open.len(),
            self.limits.windows,
            count(Kind::Spans),
            self.limits.span_windows,
            count(Kind::Diagnose),
            self.limits.diagnose_windows,
            count(Kind::Heap),
            self.limits.heap_windows,
            count(Kind::Cpu),
            self.limits.cpu_windows,
            mib(budget::charged()),
            self.limits.span_memory_mib,
        )
    }

    /// Takes a place for a window of `kind` lasting `length`, or says which limit is reached.
    pub(crate) fn claim(self: &Arc<Self>, kind: Kind, length: Duration) -> Result<Claim, ApiError> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut open = self.lock();
        let now = Instant::now();
        let soonest_end = |of_kind: &dyn Fn(Kind) -> bool| {
            open.iter()
                .filter(|(_, k, _)| of_kind(*k))
                .map(|(_, _, end)| end.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::ZERO)
        };
        let refuse = |setting: Setting, reason: String, wait: Duration| {
            let retry = wait.as_secs() + 1;
            ApiError::unavailable(
                format!(
                    "{reason}; retry in about {retry} s, or raise the limit with \
                     Agent::builder().limits(Limits::default().{}(N)) or {}=N",
                    setting.method, setting.env
                ),
                retry,
            )
        };
        let limit = self.limits.of(kind);
        if open.iter().filter(|(_, k, _)| *k == kind).count() >= limit {
            let setting = kind.setting();
            let reason = format!("{limit} {} are open, the most allowed", setting.what);
            return Err(refuse(setting, reason, soonest_end(&|k| k == kind)));
        }
        if open.len() >= self.limits.windows {
            let reason = format!(
                "{} {} are open, the most allowed",
                self.limits.windows, WINDOWS.what
            );
            return Err(refuse(WINDOWS, reason, soonest_end(&|_| true)));
        }
        if kind.records_spans() && budget::charged() >= budget::budget() {
            let reason = format!(
                "the open span and diagnose windows' recordings fill their memory budget of \
                 {} MiB",
                self.limits.span_memory_mib
            );
            return Err(refuse(
                SPAN_MEMORY,
                reason,
                soonest_end(&Kind::records_spans),
            ));
        }
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push((id, kind, now + length));
        drop(open);
        Ok(Claim {
            windows: self.clone(),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_code_and_bad_values_are_named() {
        let env = |name: &str| (name == "PYROMETER_MAX_WINDOWS").then(|| " 80 ".to_string());
        let limits = Limits::default().max_span_windows(7).with_env(env).unwrap();
        assert_eq!((limits.windows, limits.span_windows), (80, 7));

        let err = Limits::default()
            .with_env(|name| (name == "PYROMETER_SPAN_MEMORY_MIB").then(|| "lots".into()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"PYROMETER_SPAN_MEMORY_MIB: "lots" is not a whole number of MiB of span windows' recordings"#
        );
        let err = Limits::default()
            .max_heap_windows(0)
            .with_env(|_| None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_heap_windows: must be at least 1 (the number of heap and allocs windows; set \
             with .max_heap_windows(..) or PYROMETER_MAX_HEAP_WINDOWS)"
        );
    }

    #[test]
    fn a_place_is_freed_when_its_claim_is_dropped() {
        let windows = OpenWindows::new(Limits::default().max_cpu_windows(1));
        let claim = windows.claim(Kind::Cpu, Duration::from_secs(30)).unwrap();
        let err = windows
            .claim(Kind::Cpu, Duration::from_secs(30))
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 503);
        assert!(
            err.message.starts_with(
                "1 CPU windows are open, the most allowed; retry in about 30 s, or raise the \
                 limit with Agent::builder().limits(Limits::default().max_cpu_windows(N)) or \
                 PYROMETER_MAX_CPU_WINDOWS=N"
            ),
            "{}",
            err.message
        );
        assert!(windows.claim(Kind::Heap, Duration::from_secs(1)).is_ok());
        drop(claim);
        assert!(windows.claim(Kind::Cpu, Duration::from_secs(30)).is_ok());
    }
}
