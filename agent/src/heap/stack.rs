//! Capturing the call stack of a sampled allocation, from inside the allocator.
//!
//! Two walks, chosen with [`StackWalk`]:
//!
//! - **DWARF** (the default): libgcc's `_Unwind_Backtrace` (through
//!   `backtrace::trace_unsynchronized`) reads the call-frame information that every Rust binary
//!   carries, so stacks are complete in any build. It allocates nothing, and
//!   `trace_unsynchronized` skips the `backtrace` crate's global lock (which is allocated lazily).
//!   It costs about 3 µs for a 15-frame stack, most of the sampler's cost.
//! - **Frame pointers**: the chain of saved frame pointers, two loads per frame (tens of
//!   nanoseconds for 15 frames). Complete only through code that keeps frame pointers: Rust's
//!   precompiled std does (rust-lang/rust PR 122646), a service does when built with
//!   `-C force-frame-pointers=yes`, and C libraries built without them (glibc, SQLite) do not. A
//!   function without a frame pointer leaves the frame-pointer register as its caller set it, so
//!   the walk skips it and its callees up to the next frame that saves one; a function that uses
//!   the register for data ends the walk at the next check.
//!
//! # What the frame-pointer walk may and may not do
//!
//! It runs inside the global allocator (see `allocator`'s rules): no allocation through the
//! global allocator, no lock, no panic. Every read is of the current thread's own stack, between
//! the walk's own frame and the top of the thread's stack, checked before it is made, so a broken
//! chain ends the walk instead of faulting. The stack's bounds come from `pthread_getattr_np`
//! once per thread (it may call glibc's own `malloc`, never this allocator's code), kept in a
//! `const` thread-local without a destructor. On a stack that is not the thread's own (a signal
//! handler's alternate stack, a coroutine's), and where the walk is not implemented, the DWARF
//! walk is used instead.
//!
//! The addresses go into a fixed array on the sampler's stack; turning them into names happens
//! later, when a profile is built. The stack is cut at [`MAX_DEPTH`] frames (tcmalloc keeps 64
//! too): deep recursion costs the sampled path a bounded time, and the frames kept are the ones
//! nearest the allocation.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// The most frames recorded per sample, the allocator's own frames included.
pub(crate) const MAX_DEPTH: usize = 64;

/// How the sampler walks the stack of a sampled allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StackWalk {
    /// libgcc's DWARF unwinder: complete stacks in any build, about 3 µs per 15-frame sample.
    #[default]
    Dwarf,
    /// The frame-pointer chain: tens of nanoseconds per sample, complete where the code keeps
    /// frame pointers (build with `-C force-frame-pointers=yes`; Rust's std keeps them).
    FramePointers,
}

impl StackWalk {
    const fn code(self) -> u8 {
        match self {
            StackWalk::Dwarf => 1,
            StackWalk::FramePointers => 2,
        }
    }

    const fn from_code(code: u8) -> Option<StackWalk> {
        match code {
            1 => Some(StackWalk::Dwarf),
            2 => Some(StackWalk::FramePointers),
            _ => None,
        }
    }
}

/// The walk set at run time with [`set_stack_walk`], overriding the allocator's; 0 when unset.
static WALK_OVERRIDE: AtomicU8 = AtomicU8::new(0);
/// The walk the installed allocator was built with; 0 until its first sample.
static INSTALLED_WALK: AtomicU8 = AtomicU8::new(0);

/// Changes the stack walk of every sample taken from now on, whatever the allocator was built
/// with.
pub fn set_stack_walk(walk: StackWalk) {
    WALK_OVERRIDE.store(walk.code(), Relaxed);
}

/// The stack walk in force: the one set with [`set_stack_walk`], else the installed allocator's
/// (the default until the allocator has taken a sample).
pub fn stack_walk() -> StackWalk {
    StackWalk::from_code(WALK_OVERRIDE.load(Relaxed))
        .or(StackWalk::from_code(INSTALLED_WALK.load(Relaxed)))
        .unwrap_or_default()
}

/// The walk to use for a sample of an allocator built with `installed`.
fn walk_in_force(installed: StackWalk) -> StackWalk {
    if INSTALLED_WALK.load(Relaxed) == 0 {
        INSTALLED_WALK.store(installed.code(), Relaxed);
    }
    StackWalk::from_code(WALK_OVERRIDE.load(Relaxed)).unwrap_or(installed)
}

/// Writes the return addresses of the current stack, innermost first, and returns how many.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH], installed: StackWalk) -> usize {
    match walk_in_force(installed) {
        StackWalk::FramePointers => {
            frame_pointers::capture(frames).unwrap_or_else(|| capture_dwarf(frames))
        }
        StackWalk::Dwarf => capture_dwarf(frames),
    }
}

fn capture_dwarf(frames: &mut [usize; MAX_DEPTH]) -> usize {
    let mut depth = 0;
    // SAFETY: `trace_unsynchronized` requires that no other thread unwinds through the `backtrace`
    // crate's non-reentrant paths at the same time; the libunwind backend used on Linux has none
    // (it only calls `_Unwind_Backtrace`, which is thread-safe).
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            // The outermost frame of a thread can report address 0: not a call site.
            if ip != 0 {
                if let Some(slot) = frames.get_mut(depth) {
                    *slot = ip;
                    depth += 1;
                }
            }
            depth < MAX_DEPTH
        });
    }
    depth
}

/// Follows the chain of frame records: on x86-64 and aarch64 alike, a frame pointer points at the
/// caller's frame pointer, followed by the return address. Reads only inside `[low, high)`, which
/// the caller knows to be mapped; stops at the first record outside it, misaligned, with a null
/// return address, or not above the previous one (stacks grow down, so callers' records lie
/// higher: this also ends any cycle).
fn walk_chain(mut fp: usize, low: usize, high: usize, frames: &mut [usize]) -> usize {
    const RECORD: usize = 2 * std::mem::size_of::<usize>();
    let mut depth = 0;
    while depth < frames.len() {
        let in_bounds = fp >= low && fp.checked_add(RECORD).is_some_and(|end| end <= high);
        if !in_bounds || fp % std::mem::align_of::<usize>() != 0 {
            break;
        }
        // SAFETY: `[fp, fp + RECORD)` lies inside `[low, high)`, mapped memory of this thread's
        // stack (the caller's guarantee), and is aligned for `usize`. Volatile: the compiler must
        // not assume anything about memory it did not write.
        let (next, ret) = unsafe {
            (
                std::ptr::read_volatile(fp as *const usize),
                std::ptr::read_volatile((fp + RECORD / 2) as *const usize),
            )
        };
        if ret == 0 {
            break;
        }
        frames[depth] = ret;
        depth += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    depth
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod frame_pointers {
    use std::cell::Cell;

    use super::{walk_chain, MAX_DEPTH};

    thread_local! {
        /// This thread's stack, `(low, high)`; `(0, 0)` until first asked, `(1, 1)` if unknown.
        static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    /// Walks the frame-pointer chain from here; `None` where it cannot be done safely.
    #[inline(never)]
    pub(super) fn capture(frames: &mut [usize; MAX_DEPTH]) -> Option<usize> {
        let (sp, fp) = registers();
        let (low, high) = STACK.with(|s| {
            if s.get() == (0, 0) {
                s.set(thread_stack().unwrap_or((1, 1)));
            }
            s.get()
        });
        // Running on a stack that is not the thread's own: do not walk.
        if sp < low || sp >= high {
            return None;
        }
        // Everything from the stack pointer to the top of the thread's stack is mapped: it is the
        // live stack.
        Some(walk_chain(fp, sp, high, frames))
    }

    /// The stack pointer and the frame pointer.
    #[inline(always)]
    fn registers() -> (usize, usize) {
        let (sp, fp): (usize, usize);
        // SAFETY: reads two registers, nothing else.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            std::arch::asm!(
                "mov {}, rsp", "mov {}, rbp", out(reg) sp, out(reg) fp,
                options(nomem, nostack, preserves_flags)
            );
            #[cfg(target_arch = "aarch64")]
            std::arch::asm!(
                "mov {}, sp", "mov {}, x29", out(reg) sp, out(reg) fp,
                options(nomem, nostack, preserves_flags)
            );
        }
        (sp, fp)
    }

    /// The bounds of the calling thread's stack.
    fn thread_stack() -> Option<(usize, usize)> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        // SAFETY: `attr` is initialized by a successful `pthread_getattr_np` and destroyed once.
        unsafe {
            if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
                return None;
            }
            let mut base = std::ptr::null_mut();
            let mut size = 0;
            let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut base, &mut size);
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            let low = base as usize;
            (got == 0 && size > 0).then(|| (low, low.saturating_add(size)))
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod frame_pointers {
    use super::MAX_DEPTH;

    pub(super) fn capture(_: &mut [usize; MAX_DEPTH]) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn nested(levels: usize, frames: &mut [usize; MAX_DEPTH], walk: StackWalk) -> usize {
        if levels == 0 {
            capture(frames, walk)
        } else {
            std::hint::black_box(nested(levels - 1, frames, walk))
        }
    }

    #[test]
    fn captures_up_to_the_bound() {
        for walk in [StackWalk::Dwarf, StackWalk::FramePointers] {
            let mut frames = [0; MAX_DEPTH];
            let shallow = nested(0, &mut frames, walk);
            assert!(
                shallow > 2 && shallow < MAX_DEPTH,
                "{walk:?}: depth {shallow}"
            );
            assert!(frames[..shallow].iter().all(|&ip| ip != 0));
            let deep = nested(MAX_DEPTH * 2, &mut frames, walk);
            assert_eq!(deep, MAX_DEPTH, "{walk:?}");
        }
    }

    #[inline(never)]
    fn both(
        levels: usize,
        dwarf: &mut [usize; MAX_DEPTH],
        fp: &mut [usize; MAX_DEPTH],
    ) -> (usize, usize) {
        if levels == 0 {
            (
                capture(dwarf, StackWalk::Dwarf),
                capture(fp, StackWalk::FramePointers),
            )
        } else {
            std::hint::black_box(both(levels - 1, dwarf, fp))
        }
    }

    /// The two walks agree on the frames both see: each walk's own innermost frames differ, and
    /// the DWARF walk also sees C frames without frame pointers at the outer end.
    #[test]
    fn frame_pointer_walk_matches_dwarf() {
        let (mut dwarf, mut fp) = ([0; MAX_DEPTH], [0; MAX_DEPTH]);
        let (d, f) = both(6, &mut dwarf, &mut fp);
        let (dwarf, fp) = (&dwarf[..d], &fp[..f]);
        let longest_common_run = (0..f)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| {
                fp[i..]
                    .iter()
                    .zip(&dwarf[j..])
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!(
            longest_common_run >= 8,
            "common run of {longest_common_run} frames; fp {fp:x?}, dwarf {dwarf:x?}"
        );
    }

    /// A forged chain that loops, points down, leaves its bounds or is misaligned ends the walk
    /// without a fault.
    #[test]
    fn broken_chains_end_the_walk() {
        let word = std::mem::size_of::<usize>();
        let mut words = [0usize; 16];
        let base = words.as_ptr() as usize;
        let (low, high) = (base, base + words.len() * word);
        let mut frames = [0; 8];
        // Reads the forged records through a pointer taken after they were written.
        let mut walk = |words: &[usize; 16], start: usize| {
            let base = std::hint::black_box(words.as_ptr()) as usize;
            walk_chain(base.wrapping_add(start), low, high, &mut frames)
        };
        // Record 0 -> record 4 -> back to record 0 (a cycle): two frames, then stop.
        words[0] = base + 4 * word;
        words[1] = 0x1000;
        words[4] = base;
        words[5] = 0x2000;
        assert_eq!(walk(&words, 0), 2);
        // Out of bounds (below, at the end, past it, wrapping) or misaligned: nothing read.
        for start in [
            base.wrapping_neg(),
            high - base,
            1,
            usize::MAX - base - 8,
            64 * word,
        ] {
            assert_eq!(walk(&words, start), 0, "{start:#x}");
        }
        // A pointer past the bounds ends the walk after the record that holds it.
        words[0] = high + 64;
        assert_eq!(walk(&words, 0), 1);
        // A null return address ends it before recording.
        words[1] = 0;
        assert_eq!(walk(&words, 0), 0);
    }
}
