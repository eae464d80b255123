//! Per-thread perf events on the software CPU clock: the first-choice Linux clock, as
//! async-profiler's `cpu` mode.
//!
//! One `perf_event_open` event per thread counts that thread's CPU time and, every period, has the
//! kernel send `SIGPROF` to that thread (`F_SETOWN_EX` with `F_OWNER_TID`,
//! `F_SETSIG`, `O_ASYNC`). The clock is an hrtimer, not the tick, so samples fall where the time
//! was spent at any rate. No ring buffer is mapped: the signal is the sample.
//!
//! Counting kernel time too needs `perf_event_paranoid` <= 1; at 2 (a common default) only
//! user-mode time is counted (`exclude_kernel`), so periods that end inside a system call are not
//! sampled and a thread that spends much of its time in the kernel is undercounted.
//!
//! Refused where `perf_event_paranoid` is 3 or more (some distributions' default) or where a
//! seccomp profile blocks `perf_event_open` (Docker's default does); the timer clock is used then.

use std::io;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const F_SETSIG: i32 = 10;
const F_SETOWN_EX: i32 = 15;
const F_OWNER_TID: i32 = 0;

/// `struct perf_event_attr` as of its first version (`PERF_ATTR_SIZE_VER0`, 64 bytes).
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

#[repr(C)]
struct FOwnerEx {
    kind: i32,
    pid: i32,
}

/// Opens an event on thread `tid` that signals it every `period_ns` of its CPU time; returns
/// the event's file descriptor.
pub(crate) fn arm(tid: i32, period_ns: u64) -> io::Result<i32> {
    let fd = match open(tid, period_ns, EXCLUDE_HV) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            open(tid, period_ns, EXCLUDE_KERNEL | EXCLUDE_HV)?
        }
        other => other?,
    };
    let owner = FOwnerEx {
        kind: F_OWNER_TID,
        pid: tid,
    };
    // SAFETY: fcntl on the descriptor just opened, with arguments of the types each command takes.
    let configured = unsafe {
        libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx) == 0
            && libc::fcntl(fd, F_SETSIG, libc::SIGPROF) == 0
            && libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC) == 0
    };
    if !configured {
        let e = io::Error::last_os_error();
        disarm(fd);
        return Err(e);
    }
    Ok(fd)
}

fn open(tid: i32, period_ns: u64, flags: u64) -> io::Result<i32> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_CPU_CLOCK,
        sample_period: period_ns,
        sample_type: 0,
        read_format: 0,
        flags,
        wakeup_events: 0,
        bp_type: 0,
        config1: 0,
    };
    // SAFETY: the attribute outlives the call and the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    } as i32;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

pub(crate) fn disarm(fd: i32) {
    // SAFETY: the descriptor came from perf_event_open and is closed once.
    unsafe { libc::close(fd) };
}
