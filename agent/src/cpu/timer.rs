//! Per-thread CPU-time timers: the Linux engine's clock.
//!
//! Every thread of the process gets its own POSIX timer on its own CPU-time clock, delivering
//! `SIGPROF` to that thread alone (`SIGEV_THREAD_ID`), as Go has done since 1.18 and
//! async-profiler's `ctimer` mode does. Unlike `setitimer(ITIMER_PROF)`, which the kernel checks
//! on its tick and which sends at most one signal per tick for the whole process, these timers are
//! per thread, and when a signal is still pending at the next expiry the kernel counts an overrun,
//! which the handler turns into the sample's weight.
//!
//! Timers are created from the collector thread for the thread ids listed in `/proc/self/task`,
//! rescanned on every collector pass, so threads started during a window are sampled from their
//! next scan on; timers of threads that exited are deleted on the same pass.

use std::collections::HashMap;
use std::io;

use super::handler::COOKIE;

/// The kernel's `struct sigevent` (64 bytes), with the `SIGEV_THREAD_ID` member glibc hides.
#[repr(C)]
struct KernelSigevent {
    value: usize,
    signo: i32,
    notify: i32,
    thread_id: i32,
    _pad: [i32; 11],
}

/// The timers of one running engine, by thread id.
pub(crate) struct ThreadTimers {
    period_ns: u64,
    timers: HashMap<i32, i32>,
    /// Thread ids seen on the last scan, reused to spare an allocation per pass.
    seen: Vec<i32>,
}

impl ThreadTimers {
    pub fn new(frequency: u32) -> Self {
        ThreadTimers {
            period_ns: 1_000_000_000 / u64::from(frequency),
            timers: HashMap::new(),
            seen: Vec::new(),
        }
    }

    /// Arms a timer for every thread not yet timed and deletes those of exited threads. Fails
    /// only if no timer at all could be created (timers refused, e.g. by seccomp).
    pub fn scan(&mut self) -> io::Result<()> {
        self.seen.clear();
        for entry in std::fs::read_dir("/proc/self/task")? {
            if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
                self.seen.push(tid);
            }
        }
        self.seen.sort_unstable();
        let mut gone = Vec::new();
        for &tid in self.timers.keys() {
            if self.seen.binary_search(&tid).is_err() {
                gone.push(tid);
            }
        }
        for tid in gone {
            if let Some(timer) = self.timers.remove(&tid) {
                delete(timer);
            }
        }
        let mut refused = None;
        for i in 0..self.seen.len() {
            let tid = self.seen[i];
            if self.timers.contains_key(&tid) {
                continue;
            }
            match self.arm(tid) {
                Ok(timer) => {
                    self.timers.insert(tid, timer);
                }
                // The thread exited between the listing and now.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => refused = Some(e),
            }
        }
        match refused {
            Some(e) if self.timers.is_empty() => Err(e),
            _ => Ok(()),
        }
    }

    fn arm(&self, tid: i32) -> io::Result<i32> {
        let event = KernelSigevent {
            value: COOKIE,
            signo: libc::SIGPROF,
            notify: libc::SIGEV_THREAD_ID,
            thread_id: tid,
            _pad: [0; 11],
        };
        // The kernel's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): the thread's CPU-time clock.
        let clock: libc::clockid_t = (!tid << 3) | 4 | 2;
        let mut timer: i32 = 0;
        // SAFETY: the event and timer id outlive the call; the kernel reads and writes only them.
        let created = unsafe {
            libc::syscall(
                libc::SYS_timer_create,
                clock,
                &event as *const KernelSigevent,
                &mut timer as *mut i32,
            )
        };
        if created != 0 {
            return Err(io::Error::last_os_error());
        }
        let period = libc::timespec {
            tv_sec: (self.period_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (self.period_ns % 1_000_000_000) as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: period,
            it_value: period,
        };
        // SAFETY: as above; the old value is not asked for.
        let armed = unsafe {
            libc::syscall(
                libc::SYS_timer_settime,
                timer,
                0,
                &spec as *const libc::itimerspec,
                std::ptr::null_mut::<libc::itimerspec>(),
            )
        };
        if armed != 0 {
            let e = io::Error::last_os_error();
            delete(timer);
            return Err(e);
        }
        Ok(timer)
    }
}

impl Drop for ThreadTimers {
    fn drop(&mut self) {
        for (_, timer) in self.timers.drain() {
            delete(timer);
        }
    }
}

fn delete(timer: i32) {
    // SAFETY: the id came from timer_create and is deleted once.
    unsafe { libc::syscall(libc::SYS_timer_delete, timer) };
}
