//! Per-thread POSIX timers on each thread's CPU-time clock: the fallback Linux clock.
//!
//! `timer_create` with `SIGEV_THREAD_ID` delivers `SIGPROF` to the one thread whose clock
//! expired, as Go has done since 1.18 and async-profiler's `ctimer` mode does. Unlike
//! `setitimer(ITIMER_PROF)`, which sends at most one signal per kernel tick for the whole process,
//! each thread has its own timer; the kernel still checks CPU-time timers on its tick, but when
//! periods pass before the signal is taken it counts overruns, which the handler adds to the
//! sample's weight, so no CPU time goes uncounted.

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

/// Creates and arms a timer for thread `tid`; returns its id.
pub(crate) fn arm(tid: i32, period_ns: u64) -> io::Result<i32> {
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
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
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
        disarm(timer);
        return Err(e);
    }
    Ok(timer)
}

pub(crate) fn disarm(timer: i32) {
    // SAFETY: the id came from timer_create and is deleted once.
    unsafe { libc::syscall(libc::SYS_timer_delete, timer) };
}
