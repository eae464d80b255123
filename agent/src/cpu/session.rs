//! Windows: who may open one while others are open, and what each gets.
//!
//! The rule. One engine runs while any window is open, at one rate: the rate of the window that
//! started it. A new window joins the running engine when it asks for that rate, or for the
//! default rate ([`DEFAULT_FREQUENCY`]), so a person's default request is never refused because a
//! scraper is running; a default window that joins an engine at another rate is sampled at that
//! rate, and its profile says so. A window at any other rate, or any second window on the
//! one-window [`Engine::Setitimer`], is refused with [`CpuError::Busy`], which says when the last
//! open window ends.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
use std::sync::Arc;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
use super::collector::{Collector, Window};
use super::report::{self, Stack, Timing};
use super::setitimer::Setitimer;
use super::{CpuError, Engine, DEFAULT_FREQUENCY, ENGINE_VARIABLE, MAX_FREQUENCY};
use crate::profile::Profile;
use crate::symbolize::Symbolizer;

/// The running engine and its open windows.
struct Running {
    engine: Engine,
    frequency: u32,
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    collector: Option<Collector>,
    /// Planned ends of the open windows, by window id.
    windows: Vec<(u64, Instant)>,
    /// Why the preferred engine is not the one running, if it is not.
    fallback: Option<String>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn running() -> MutexGuard<'static, Option<Running>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// True while at least one CPU window is open.
pub fn is_running() -> bool {
    running().is_some()
}

/// How long until the last open window is planned to end, if one is open.
pub fn busy_for() -> Option<Duration> {
    running().as_ref().map(ends_in)
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
/// engine `PYROMETER_CPU_ENGINE` names or else the best this platform has. `window` is how long
/// the caller means to keep it open (used only to tell others when the engine will be free).
pub fn start(frequency: u32, window: Duration) -> Result<CpuSession, CpuError> {
    let engine = match std::env::var(ENGINE_VARIABLE) {
        Ok(name) if !name.is_empty() => Some(name.parse()?),
        _ => None,
    };
    start_with(engine, frequency, window)
}

/// [`start`] on a given engine (`None`: the best this platform has).
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
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let end = Instant::now() + window;
    let opened_at = SystemTime::now();
    if let Some(running) = state.as_mut() {
        let joins = running.engine != Engine::Setitimer
            && engine.map_or(true, |e| e == running.engine)
            && (frequency == running.frequency || frequency == DEFAULT_FREQUENCY);
        if !joins {
            return Err(CpuError::Busy {
                frequency: running.frequency,
                ends_in: ends_in(running),
            });
        }
        running.windows.push((id, end));
        return Ok(CpuSession {
            id,
            engine: running.engine,
            frequency: running.frequency,
            asked: frequency,
            fallback: running.fallback.clone(),
            opened_at,
            open: Some(open_window(running)),
        });
    }

    let (engine, open, fallback, new) = start_engine(engine, frequency)?;
    let mut new = Running {
        engine,
        frequency,
        #[cfg(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        collector: new,
        windows: vec![(id, end)],
        fallback: fallback.clone(),
    };
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    let _: Option<()> = new;
    let open = open.unwrap_or_else(|| open_window(&mut new));
    *state = Some(new);
    Ok(CpuSession {
        id,
        engine,
        frequency,
        asked: frequency,
        fallback,
        opened_at,
        open: Some(open),
    })
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
type NewCollector = Option<Collector>;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
type NewCollector = Option<()>;

/// Starts `wanted`, or the best engine there is: the timer engine, falling back to setitimer when
/// it is refused. Returns the engine, the window when the engine is a one-window one, why the
/// preferred engine was not used, and the collector when the engine has one.
fn start_engine(
    wanted: Option<Engine>,
    frequency: u32,
) -> Result<(Engine, Option<Open>, Option<String>, NewCollector), CpuError> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    let fallback = match wanted {
        Some(Engine::Setitimer) => None,
        _ => match Collector::start(frequency) {
            Ok(collector) => return Ok((Engine::ThreadTimer, None, None, Some(collector))),
            Err(e) if wanted.is_some() => {
                return Err(CpuError::Engine(format!(
                    "per-thread CPU timers were refused: {e}"
                )))
            }
            Err(e) => Some(format!("per-thread CPU timers were refused ({e})")),
        },
    };
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    let fallback = match wanted {
        Some(Engine::ThreadTimer) => {
            return Err(CpuError::Engine(
                "the timer engine needs Linux on x86_64 or aarch64".into(),
            ))
        }
        Some(Engine::Setitimer) => None,
        None => Some("per-thread CPU timers need Linux on x86_64 or aarch64".to_string()),
    };
    let setitimer = Setitimer::start(frequency)?;
    Ok((
        Engine::Setitimer,
        Some(Open::Setitimer(setitimer)),
        fallback,
        None,
    ))
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn open_window(running: &mut Running) -> Open {
    let collector = running
        .collector
        .as_ref()
        .expect("only the timer engine opens windows on a running engine");
    Open::Window(collector.open())
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn open_window(_: &mut Running) -> Open {
    unreachable!("the setitimer engine is never joined")
}

enum Open {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    Window(Arc<Window>),
    Setitimer(Setitimer),
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
                let collected = close(self.id, |r| {
                    r.collector
                        .as_ref()
                        .expect("the timer engine has a collector")
                        .close(&window)
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
                    start_nanos: nanos_since_epoch(self.opened_at),
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
            Some(Open::Window(window)) => {
                close(self.id, |r| {
                    if let Some(collector) = &r.collector {
                        collector.close(&window);
                    }
                });
            }
            Some(Open::Setitimer(setitimer)) => {
                drop(setitimer);
                close(self.id, |_| ());
            }
        }
    }
}

/// Runs `with` on the running engine, forgets window `id`, and stops the engine if it was the last.
fn close<T>(id: u64, with: impl FnOnce(&Running) -> T) -> T {
    let mut state = running();
    let running = state.as_mut().expect("an open window has a running engine");
    let result = with(running);
    running.windows.retain(|(w, _)| *w != id);
    if running.windows.is_empty() {
        *state = None;
    }
    result
}

fn nanos_since_epoch(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i64
}
