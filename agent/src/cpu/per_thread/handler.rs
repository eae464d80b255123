//! The `SIGPROF` handler of the Linux engines.
//!
//! RULES FOR EVERYTHING IN THIS FILE THAT RUNS IN SIGNAL CONTEXT (`on_sigprof` and what it calls).
//! The signal interrupts arbitrary code: inside `malloc`, holding any lock, halfway through a
//! panic's unwinding. So the handler:
//! - never allocates or frees, and never takes a lock (no `Mutex`, no `println!`, no `OnceLock`
//!   initialisation, no thread-locals that lazily allocate);
//! - calls only async-signal-safe functions: `clock_gettime`, `gettid`, and libgcc's unwinder
//!   through `backtrace::trace_unsynchronized` (as pprof-rs does by default; framehop's unwinder
//!   allocated in the handler and deadlocked: DESIGN.md). libgcc may take glibc's
//!   `dl_load_write_lock`, which is recursive, so a thread interrupted inside `dl_iterate_phdr`
//!   (as a panic's unwinding is) re-enters it safely;
//! - writes only into the preallocated [`ring`](super::ring), with atomics;
//! - saves `errno` first and restores it last, so the interrupted code never sees it change;
//! - ignores signals that are not ours (no timer cookie) and any that arrive while no profile runs.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

use super::ring;
use super::threads::Clock;

const OFF: u8 = 0;
const TIMER: u8 = 1;
const PERF_EVENT: u8 = 2;

/// Which clock's signals the handler records while a Linux engine runs; OFF otherwise.
static ACTIVE: AtomicU8 = AtomicU8::new(OFF);

/// Carried in every timer signal's `sigval`, so signals from other senders are told apart.
pub(crate) const COOKIE: usize = 0x7079_726f_6d65_7472; // "pyrometr"

/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: i32 = -2;
/// `si_code` of a signal sent for a perf event's overflow (through `F_SETSIG`).
const POLL_IN: i32 = 1;

/// The head of a `siginfo_t` as the kernel fills it for a POSIX timer (`overrun` and `value`
/// mean nothing for other senders).
#[repr(C)]
struct TimerSiginfo {
    signo: i32,
    errno: i32,
    code: i32,
    #[cfg(target_pointer_width = "64")]
    _pad: i32,
    timer_id: i32,
    overrun: i32,
    value: usize,
}

/// Installs the handler (again: the setitimer engine replaces it while it runs) and lets it record
/// the signals of `clock`.
pub(crate) fn activate(clock: Clock) -> std::io::Result<()> {
    ring::get_or_init();
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigprof as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let active = match clock {
        Clock::Timer => TIMER,
        Clock::PerfEvent => PERF_EVENT,
    };
    ACTIVE.store(active, Ordering::Release);
    Ok(())
}

/// Stops recording. The handler stays installed: a signal still queued when the timers are deleted
/// must find it (`SIGPROF`'s default action ends the process).
pub(crate) fn deactivate() {
    ACTIVE.store(OFF, Ordering::Release);
}

extern "C" fn on_sigprof(_signal: i32, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: errno is this thread's; saved and restored around everything else.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to SA_SIGINFO handlers.
    unsafe { record(&*(info as *const TimerSiginfo), context) };
    unsafe { *libc::__errno_location() = errno };
}

unsafe fn record(info: &TimerSiginfo, context: *mut c_void) {
    let weight = match ACTIVE.load(Ordering::Acquire) {
        TIMER if info.code == SI_TIMER && info.value == COOKIE => 1 + info.overrun.max(0) as u32,
        PERF_EVENT if info.code == POLL_IN => 1,
        _ => return,
    };
    let Some(ring) = ring::get() else { return };
    let pc = interrupted_pc(context);
    ring.write(weight, |sample| {
        sample.tid = libc::syscall(libc::SYS_gettid) as i32;
        sample.time_ns = super::monotonic_ns();
        // The unwinder starts inside this handler; the interrupted code begins at the frame whose
        // address is the interrupted instruction (libgcc steps through the signal trampoline).
        let mut found = false;
        let mut skipped = 0;
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if !found {
                found = ip == pc;
                skipped += 1;
                if !found {
                    return skipped < 32;
                }
            }
            sample.push(ip)
        });
        if !found {
            sample.push(pc);
        }
    });
}

unsafe fn interrupted_pc(context: *mut c_void) -> usize {
    let context = &*(context as *const libc::ucontext_t);
    #[cfg(target_arch = "x86_64")]
    let pc = context.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
    #[cfg(target_arch = "aarch64")]
    let pc = context.uc_mcontext.pc as usize;
    pc
}
