//! Where profiles are built: one thread for the whole process, so that no profile waits behind
//! another for longer than it must, and building never takes more than one core from the service.
//!
//! Building a profile (stopping and symbolizing a CPU window, copying and symbolizing the heap
//! tables, turning a span recording into a profile or a diagnosis, encoding pprof or SVG) can take
//! a core for a second or more. These builds once shared a two-thread blocking pool with the start
//! of CPU windows, so 100 concurrent `/heap` requests held a 1-second CPU profile's start back by
//! 15 s: it profiled a different second from the one asked for, and two cores went to the agent
//! while the service's throughput fell by a third. The rules now:
//!
//! - Every build runs on one thread, `pyrometer-build`, one at a time: however many requests
//!   arrive, the agent's builds take at most one core. The thread keeps the service's scheduling
//!   priority: at nice 10 it was starved on a busy machine (a build that needs a second of CPU
//!   took minutes), and a busy service is when profiles are wanted.
//! - Starting a CPU window is not a build and never waits for one: the handler starts it at once,
//!   and no new build begins while it starts ([`pause`]), since today's engine resolves a
//!   backtrace as it starts, under the same lock of the `backtrace` crate that symbolizing takes.
//! - Finishing a CPU window goes ahead of every other queued build ([`Priority::Urgent`]), so its
//!   window ends close to when it was asked to.
//! - A build whose requesters have all gone away is skipped.
//! - Requests for the same result while its build is queued and not yet started share that build
//!   ([`Coalesced`]): a storm of 100 `/heap` requests makes two builds, not 100. A request never
//!   gets a result whose build began before it arrived, so what it gets is no older than it.
//! - When the queue runs empty after a build, memory freed by the builds is given back to the
//!   system ([`crate::memory::release`]): once per burst of builds, not once per build.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, OnceLock};

use tokio::sync::oneshot;

/// Which queue a build joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Ends a window that is still sampling: ahead of everything else.
    Urgent,
    Normal,
}

/// Why a build produced nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildError {
    /// The build thread could not be started.
    NoThread(String),
    /// The build panicked (a bug); the message is the panic's.
    Panicked(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoThread(e) => write!(f, "the profile builder thread cannot start: {e}"),
            BuildError::Panicked(e) => write!(f, "building the profile failed: {e}"),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queues {
    urgent: VecDeque<Job>,
    normal: VecDeque<Job>,
    /// Pauses in force (see [`pause`]): no build begins while there is one.
    paused: usize,
}

impl Queues {
    fn pop(&mut self) -> Option<Job> {
        if self.paused > 0 {
            return None;
        }
        self.urgent.pop_front().or_else(|| self.normal.pop_front())
    }
}

struct Builder {
    queues: Mutex<Queues>,
    ready: Condvar,
}

fn builder() -> Result<&'static Builder, BuildError> {
    static BUILDER: OnceLock<Result<&'static Builder, BuildError>> = OnceLock::new();
    BUILDER
        .get_or_init(|| {
            let builder: &'static Builder = Box::leak(Box::new(Builder {
                queues: Mutex::new(Queues::default()),
                ready: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("pyrometer-build".into())
                .spawn(move || work(builder))
                .map(|_| builder)
                .map_err(|e| BuildError::NoThread(e.to_string()))
        })
        .clone()
}

fn work(builder: &Builder) {
    let lock = || builder.queues.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut queues = lock();
        let job = loop {
            match queues.pop() {
                Some(job) => break job,
                None => {
                    queues = builder
                        .ready
                        .wait(queues)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        };
        drop(queues);
        // Jobs catch their own panics (see `submit`), so the thread outlives a failed build.
        job();
        let idle = {
            let queues = lock();
            queues.urgent.is_empty() && queues.normal.is_empty() && queues.paused == 0
        };
        if idle {
            crate::memory::release();
        }
    }
}

/// While the returned guard lives, no build begins (one already running goes on).
pub(crate) fn pause() -> Result<Paused, BuildError> {
    let builder = builder()?;
    builder
        .queues
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .paused += 1;
    Ok(Paused { builder })
}

pub(crate) struct Paused {
    builder: &'static Builder,
}

impl Drop for Paused {
    fn drop(&mut self) {
        let mut queues = self
            .builder
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        queues.paused -= 1;
        self.builder.ready.notify_one();
    }
}

fn submit(priority: Priority, job: Job) -> Result<(), BuildError> {
    let builder = builder()?;
    let mut queues = builder.queues.lock().unwrap_or_else(|e| e.into_inner());
    match priority {
        Priority::Urgent => queues.urgent.push_back(job),
        Priority::Normal => queues.normal.push_back(job),
    }
    builder.ready.notify_one();
    Ok(())
}

fn run_caught<T>(build: impl FnOnce() -> T) -> Result<T, BuildError> {
    catch_unwind(AssertUnwindSafe(build)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".to_string());
        BuildError::Panicked(message)
    })
}

/// Runs `build` on the build thread and waits for its result. Dropping the returned future before
/// the build starts skips it.
pub(crate) async fn run<T, F>(priority: Priority, build: F) -> Result<T, BuildError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    submit(
        priority,
        Box::new(move || {
            if !tx.is_closed() {
                let _ = tx.send(run_caught(build));
            }
        }),
    )?;
    rx.await
        .unwrap_or_else(|_| Err(BuildError::Panicked("the build was dropped".into())))
}

/// Builds that requests for the same key share while queued. Declare one per kind of result as a
/// `static`. (Only heap profiles of the present are shared so far.)
#[cfg(feature = "heap")]
pub(crate) struct Coalesced<K, T> {
    queued: Mutex<Vec<Waiting<K, T>>>,
}

/// A queued build's key and the requests waiting for it.
#[cfg(feature = "heap")]
type Waiting<K, T> = (K, Vec<oneshot::Sender<Result<T, BuildError>>>);

#[cfg(feature = "heap")]
impl<K, T> Coalesced<K, T>
where
    K: PartialEq + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    pub(crate) const fn new() -> Self {
        Coalesced {
            queued: Mutex::new(Vec::new()),
        }
    }

    /// Joins the queued build for `key`, or queues `build` as it. Every request waiting on it
    /// when it starts gets a clone of its result.
    pub(crate) async fn run<F>(
        &'static self,
        key: K,
        priority: Priority,
        build: F,
    ) -> Result<T, BuildError>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut queued = self.lock();
            match queued.iter_mut().find(|(k, _)| *k == key) {
                Some((_, waiters)) => {
                    waiters.push(tx);
                    false
                }
                None => {
                    queued.push((key.clone(), vec![tx]));
                    true
                }
            }
        };
        if first {
            let job_key = key.clone();
            let job = move || {
                // From here on, new requests queue a build of their own.
                let waiters = {
                    let mut queued = self.lock();
                    let index = queued.iter().position(|(k, _)| *k == job_key);
                    index.map(|i| queued.swap_remove(i).1).unwrap_or_default()
                };
                if waiters.iter().all(|w| w.is_closed()) {
                    return;
                }
                let result = run_caught(build);
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            };
            if let Err(e) = submit(priority, Box::new(job)) {
                self.lock().retain(|(k, _)| *k != key);
                return Err(e);
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(BuildError::Panicked("the build was dropped".into())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<K, T>>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}
