//! Capturing the call stack of a sampled allocation, from inside the allocator.
//!
//! The unwinder is libgcc's `_Unwind_Backtrace` (through `backtrace::trace_unsynchronized`),
//! which reads the DWARF call-frame information that every Rust binary carries, so stacks are
//! complete without frame pointers. It allocates nothing, and `trace_unsynchronized` skips the
//! `backtrace` crate's global lock (which is allocated lazily). The addresses go into a fixed
//! array on the sampler's stack; turning them into names happens later, when a profile is built.
//!
//! The stack is cut at [`MAX_DEPTH`] frames (tcmalloc keeps 64 too): deep recursion costs the
//! sampled path a bounded time, and the frames kept are the ones nearest the allocation.

/// The most frames recorded per sample, the allocator's own frames included.
pub(crate) const MAX_DEPTH: usize = 64;

/// Writes the return addresses of the current stack, innermost first, and returns how many.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn nested(levels: usize, frames: &mut [usize; MAX_DEPTH]) -> usize {
        if levels == 0 {
            capture(frames)
        } else {
            std::hint::black_box(nested(levels - 1, frames))
        }
    }

    #[test]
    fn captures_up_to_the_bound() {
        let mut frames = [0; MAX_DEPTH];
        let shallow = nested(0, &mut frames);
        assert!(shallow > 2 && shallow < MAX_DEPTH, "depth {shallow}");
        assert!(frames[..shallow].iter().all(|&ip| ip != 0));
        let deep = nested(MAX_DEPTH * 2, &mut frames);
        assert_eq!(deep, MAX_DEPTH);
    }
}
