//! Windows: who may open one while others are open, and what each gets.
//!
//! The rule. One engine runs while any window is open, at one rate: the rate of the window that
//! started it. A new window joins the running engine when it asks for that rate, or for the
//! default rate ([`DEFAULT_FREQUENCY`]), so a person's default request is never refused because a
//! scraper is running; a default window that joins an engine at another rate is sampled at that
//! rate, and its profile says so. A window at any other rate, or any second window on the
//! one-window [`Engine::Setitimer`], is refused with [`CpuError::Busy`], which says when the last
//! open window ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
use super::per_thread::{Clock, Collector, Window};
use super::report::{self, Stack, Timing};
use super::setitimer::Setitimer;
use super::{CpuError, Engine, DEFAULT_FREQUENCY, ENGINE_VARIABLE, MAX_FREQUENCY};
use crate::profile::Profile;
use crate::symbolize::Symbolizer;

/// What samples while windows are open.
enum Sampler {
    /// A per-thread engine's collector, which every window joins.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    PerThread(Collector),
    /// pprof-rs, whose one window holds the profiler itself.
    Setitimer,
}

/// An open window's hold on what samples it.
enum Open {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    Window(std::sync::Arc<Window>),
    Setitimer(Setitimer),
}

/// The running engine and its open windows.
struct Running {
    engine: Engine,
    frequency: u32,
    sampler: Sampler,
    /// Planned ends of the open windows, by window id.
    windows: Vec<(u64, Instant)>,
    /// Why the preferred engine is not the one running, if it is not.
    fallback: Option<String>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn running() -> MutexGuard<'static, Option<Running>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// True while at least one CPU window is open.
pub fn is_running() -> bool {
    running().is_some()
}

/// What is sampling now, if any window is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub engine: Engine,
    pub frequency: u32,
    /// Open windows.
    pub windows: usize,
    /// Until the last open window is planned to end.
    pub ends_in: Duration,
}

pub fn status() -> Option<Status> {
    running().as_ref().map(|r| Status {
        engine: r.engine,
        frequency: r.frequency,
        windows: r.windows.len(),
        ends_in: ends_in(r),
    })
}

fn ends_in(running: &Running) -> Duration {
    let now = Instant::now();
    running
        .windows
        .iter()
        .map(|(_, end)| end.saturating_duration_since(now))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// Opens a window sampling every thread `frequency` times per second of its CPU time, on the
/// engine `PYROMETER_CPU_ENGINE` names or else the best this platform allows. `window` is how
/// long the caller means to keep it open (used only to tell others when the engine will be free).
pub fn start(frequency: u32, window: Duration) -> Result<CpuSession, CpuError> {
    let engine = match std::env::var(ENGINE_VARIABLE) {
        Ok(name) if !name.is_empty() => Some(name.parse()?),
        _ => None,
    };
    start_with(engine, frequency, window)
}

/// [`start`] on a given engine (`None`: the best this platform allows).
pub fn start_with(
    engine: Option<Engine>,
    frequency: u32,
    window: Duration,
) -> Result<CpuSession, CpuError> {
    assert!(
        (1..=MAX_FREQUENCY).contains(&frequency),
        "frequency is validated by callers"
    );
    let mut state = running();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let end = Instant::now() + window;
    let opened_at = SystemTime::now();
    let (running, open) = match state.as_mut() {
        Some(running) => {
            let joins = running.engine != Engine::Setitimer
                && engine.map_or(true, |e| e == running.engine)
                && (frequency == running.frequency || frequency == DEFAULT_FREQUENCY);
            if !joins {
                return Err(CpuError::Busy {
                    frequency: running.frequency,
                    ends_in: ends_in(running),
                });
            }
            let open = join(&running.sampler);
            (running, open)
        }
        None => {
            let (started, open) = start_engine(engine, frequency)?;
            (state.insert(started), open)
        }
    };
    running.windows.push((id, end));
    Ok(CpuSession {
        id,
        engine: running.engine,
        frequency: running.frequency,
        asked: frequency,
        fallback: running.fallback.clone(),
        opened_at,
        open: Some(open),
    })
}

/// Starts `wanted`, or the best engine there is: perf events, else per-thread timers, else
/// setitimer, and opens the first window on it.
fn start_engine(wanted: Option<Engine>, frequency: u32) -> Result<(Running, Open), CpuError> {
    let running = |engine, sampler, fallback| Running {
        engine,
        frequency,
        sampler,
        windows: Vec::new(),
        fallback,
    };
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    let fallback = {
        let candidates: &[(Engine, Clock)] = match wanted {
            None => &[
                (Engine::PerfEvent, Clock::PerfEvent),
                (Engine::ThreadTimer, Clock::Timer),
            ],
            Some(Engine::PerfEvent) => &[(Engine::PerfEvent, Clock::PerfEvent)],
            Some(Engine::ThreadTimer) => &[(Engine::ThreadTimer, Clock::Timer)],
            Some(Engine::Setitimer) => &[],
        };
        let mut refused = Vec::new();
        for &(engine, clock) in candidates {
            match Collector::start(clock, frequency) {
                Ok(collector) => {
                    let fallback = (!refused.is_empty()).then(|| refused.join("; "));
                    let sampler = Sampler::PerThread(collector);
                    let open = join(&sampler);
                    return Ok((running(engine, sampler, fallback), open));
                }
                Err(e) => refused.push(format!("{} refused: {e}", engine.description())),
            }
        }
        if wanted.is_some() && !refused.is_empty() {
            return Err(CpuError::Engine(refused.join("; ")));
        }
        (!refused.is_empty()).then(|| refused.join("; "))
    };
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    let fallback = match wanted {
        Some(engine @ (Engine::PerfEvent | Engine::ThreadTimer)) => {
            return Err(CpuError::Engine(format!(
                "the {engine} engine needs Linux on x86_64 or aarch64"
            )))
        }
        Some(Engine::Setitimer) => None,
        None => Some("per-thread clocks need Linux on x86_64 or aarch64".to_string()),
    };
    let open = Open::Setitimer(Setitimer::start(frequency)?);
    Ok((
        running(Engine::Setitimer, Sampler::Setitimer, fallback),
        open,
    ))
}

/// Opens a window on a running per-thread engine.
fn join(sampler: &Sampler) -> Open {
    match sampler {
        #[cfg(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        Sampler::PerThread(collector) => Open::Window(collector.open()),
        Sampler::Setitimer => unreachable!("the setitimer engine serves one window"),
    }
}

/// An open CPU window. Dropping it closes the window and discards what it collected; the engine
/// stops when its last window closes.
pub struct CpuSession {
    id: u64,
    engine: Engine,
    frequency: u32,
    asked: u32,
    fallback: Option<String>,
    opened_at: SystemTime,
    open: Option<Open>,
}

impl CpuSession {
    /// The rate this window is sampled at (the running engine's, which may differ from the rate
    /// asked for: see the module docs).
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes the window and builds its profile. With `per_thread`, every stack is rooted at the
    /// name of its thread; otherwise threads are merged (tokio's workers are interchangeable).
    pub fn finish(mut self, per_thread: bool) -> Result<Profile, CpuError> {
        let open = self.open.take().expect("a session is finished once");
        let mut builder = report::builder();
        let mut symbolizer = Symbolizer::new(&mut builder);
        let mut comments = vec![
            format!(
                "engine={}: {}",
                self.engine.name(),
                self.engine.description()
            ),
            format!("frequency={}Hz", self.frequency),
        ];
        if self.asked != self.frequency {
            comments.push(format!(
                "asked for {} Hz; sampled at {} Hz, the rate of a window already open",
                self.asked, self.frequency
            ));
        }
        if let Some(why) = &self.fallback {
            comments.push(format!("fallback: {why}"));
        }
        let (stacks, timing) = match open {
            #[cfg(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Open::Window(window) => {
                let collected = close(self.id, |sampler| match sampler {
                    Sampler::PerThread(collector) => collector.close(&window),
                    Sampler::Setitimer => unreachable!("a window is on a per-thread engine"),
                });
                if collected.lost > 0 {
                    comments.push(format!(
                        "lost={} periods (the sample ring was full)",
                        collected.lost
                    ));
                }
                let stacks = collected
                    .counts
                    .into_iter()
                    .map(|(key, periods)| {
                        let tid = key[0] as i32;
                        Stack {
                            ips: key[1..].to_vec(),
                            thread: collected.names.get(&tid).cloned().unwrap_or_default(),
                            thread_id: tid as u64,
                            periods,
                        }
                    })
                    .collect();
                let timing = Timing {
                    start_nanos: self
                        .opened_at
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or(Duration::ZERO)
                        .as_nanos() as i64,
                    duration: self.opened_at.elapsed().unwrap_or(Duration::ZERO),
                };
                (stacks, timing)
            }
            Open::Setitimer(setitimer) => {
                let result = setitimer.finish(&mut symbolizer);
                close(self.id, |_| ());
                result?
            }
        };
        builder.profile_mut().comments = comments;
        let period = Duration::from_nanos(1_000_000_000 / u64::from(self.frequency));
        Ok(report::build(
            builder, symbolizer, stacks, period, timing, per_thread,
        ))
    }
}

impl Drop for CpuSession {
    fn drop(&mut self) {
        match self.open.take() {
            None => {}
            #[cfg(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Some(Open::Window(window)) => close(self.id, |sampler| {
                if let Sampler::PerThread(collector) = sampler {
                    collector.close(&window);
                }
            }),
            Some(Open::Setitimer(setitimer)) => {
                drop(setitimer);
                close(self.id, |_| ());
            }
        }
    }
}

/// Runs `with` on the running sampler, forgets window `id`, and stops the engine if it was the
/// last window.
fn close<T>(id: u64, with: impl FnOnce(&Sampler) -> T) -> T {
    let mut state = running();
    let running = state.as_mut().expect("an open window has a running engine");
    let result = with(&running.sampler);
    running.windows.retain(|(w, _)| *w != id);
    if running.windows.is_empty() {
        *state = None;
    }
    result
}
