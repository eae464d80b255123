//! The Linux engines' collector: one thread that keeps the per-thread clocks in step with the process's
//! threads and drains the ring into every open window.
//!
//! One engine feeds every window, as span windows work: a window is a time range and a table of
//! stacks; each sample goes to every window that was open when it was taken. A window's memory is
//! its distinct stacks (one boxed slice each, with a count), freed when the window is finished.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ring::{self, Sample};
use super::threads::{Clock, ThreadClocks};
use super::{handler, monotonic_ns};

/// How often threads are rescanned and the ring drained.
const PASS: Duration = Duration::from_millis(10);

/// The stacks one window collected.
#[derive(Default)]
pub(crate) struct Stacks {
    /// Keyed by `[thread id, ips leaf first...]`, valued in timer periods.
    pub counts: HashMap<Box<[usize]>, u64>,
    /// Names of the threads that appear in `counts`.
    pub names: HashMap<i32, String>,
    /// Timer periods lost while the window was open because the ring was full.
    pub lost: u64,
}

pub(crate) struct Window {
    opened_ns: u64,
    lost_at_open: u64,
    closed_ns: AtomicU64,
    stacks: Mutex<Stacks>,
}

impl Window {
    fn takes(&self, sample: &Sample) -> bool {
        self.opened_ns <= sample.time_ns && sample.time_ns < self.closed_ns.load(Ordering::Acquire)
    }
}

struct Shared {
    windows: Mutex<Vec<Arc<Window>>>,
    drain: Mutex<Drain>,
    stop: AtomicBool,
}

/// What draining needs, behind one lock: the collector thread and a finishing window both drain.
struct Drain {
    /// Reused lookup key, so known stacks cost no allocation.
    key: Vec<usize>,
}

pub(crate) struct Collector {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Installs the handler and arms `clock` on every thread. Fails if the clock is refused.
    pub fn start(clock: Clock, frequency: u32) -> io::Result<Collector> {
        handler::activate(clock)?;
        let mut clocks = ThreadClocks::new(clock, frequency);
        if let Err(e) = clocks.scan() {
            handler::deactivate();
            return Err(e);
        }
        let shared = Arc::new(Shared {
            windows: Mutex::new(Vec::new()),
            drain: Mutex::new(Drain { key: Vec::new() }),
            stop: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name("pyrometer-cpu".into())
            .spawn({
                let shared = shared.clone();
                move || collect(&shared, clocks)
            })
            .inspect_err(|_| handler::deactivate())?;
        Ok(Collector {
            shared,
            thread: Some(thread),
        })
    }

    /// Opens a window from now on.
    pub fn open(&self) -> Arc<Window> {
        let window = Arc::new(Window {
            opened_ns: monotonic_ns(),
            lost_at_open: lost(),
            closed_ns: AtomicU64::new(u64::MAX),
            stacks: Mutex::new(Stacks::default()),
        });
        lock(&self.shared.windows).push(window.clone());
        window
    }

    /// Closes a window now and hands back what it collected.
    pub fn close(&self, window: &Arc<Window>) -> Stacks {
        window.closed_ns.store(monotonic_ns(), Ordering::Release);
        self.drain();
        lock(&self.shared.windows).retain(|w| !Arc::ptr_eq(w, window));
        let mut stacks = std::mem::take(&mut *lock(&window.stacks));
        stacks.lost = lost() - window.lost_at_open;
        stacks
    }

    fn drain(&self) {
        drain(&self.shared, &mut lock(&self.shared.drain));
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        handler::deactivate();
    }
}

fn collect(shared: &Shared, mut clocks: ThreadClocks) {
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(PASS);
        drain(shared, &mut lock(&shared.drain));
        // A failed rescan keeps the clocks there are; the next pass tries again.
        let _ = clocks.scan();
    }
    // Dropping the clocks removes them.
}

fn drain(shared: &Shared, state: &mut Drain) {
    let Some(ring) = ring::get() else { return };
    let windows = lock(&shared.windows);
    let key = &mut state.key;
    ring.drain(|sample| {
        key.clear();
        key.push(sample.tid as usize);
        key.extend_from_slice(sample.ips());
        for window in windows.iter().filter(|w| w.takes(sample)) {
            let mut stacks = lock(&window.stacks);
            match stacks.counts.get_mut(&key[..]) {
                Some(count) => *count += u64::from(sample.weight),
                None => {
                    stacks
                        .counts
                        .insert(key.clone().into_boxed_slice(), u64::from(sample.weight));
                }
            }
            // Read when a window first sees the thread: by then it has named itself.
            if let Entry::Vacant(slot) = stacks.names.entry(sample.tid) {
                slot.insert(thread_name(sample.tid));
            }
        }
    });
}

/// Timer periods the ring could not take, since the process started.
fn lost() -> u64 {
    ring::get().map_or(0, ring::Ring::lost)
}

fn thread_name(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .map(|name| name.trim_end().to_string())
        .unwrap_or_default()
}

/// Locks a mutex, carrying on past a panic elsewhere: every table here stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
