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
use std::sync::atomic::{AtomicBool, Ordering};

use super::ring;

/// Set while a Linux engine's timers are armed; the handler does nothing otherwise.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Carried in every timer signal's `sigval`, so signals from other senders are told apart.
pub(crate) const COOKIE: usize = 0x7079_726f_6d65_7472; // "pyrometr"

/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: i32 = -2;

/// The head of a `siginfo_t` as the kernel fills it for a POSIX timer.
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

/// Installs the handler (again: the setitimer engine replaces it while it runs) and lets it record.
pub(crate) fn activate() -> std::io::Result<()> {
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
    ACTIVE.store(true, Ordering::Release);
    Ok(())
}

/// Stops recording. The handler stays installed: a signal still queued when the timers are deleted
/// must find it (`SIGPROF`'s default action ends the process).
pub(crate) fn deactivate() {
    ACTIVE.store(false, Ordering::Release);
}

extern "C" fn on_sigprof(_signal: i32, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: errno is this thread's; saved and restored around everything else.
    let errno = unsafe { *libc::__errno_location() };
    if ACTIVE.load(Ordering::Acquire) {
        // SAFETY: the kernel passes valid siginfo and ucontext pointers to SA_SIGINFO handlers.
        unsafe { record(&*(info as *const TimerSiginfo), context) };
    }
    unsafe { *libc::__errno_location() = errno };
}

unsafe fn record(info: &TimerSiginfo, context: *mut c_void) {
    if info.code != SI_TIMER || info.value != COOKIE {
        return;
    }
    let Some(ring) = ring::get() else { return };
    let pc = interrupted_pc(context);
    let weight = 1 + info.overrun.max(0) as u32;
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
