//! The sampling allocator over jemalloc, against jemalloc's own sampling profiler at the same mean
//! distance between samples (`prof:true`, `lg_prof_sample:19`, that is 512 KiB), and against
//! jemalloc alone, in one run.
//!
//! `cargo bench -p pyrometer --bench alloc_jemalloc`; see `alloc_support` for the method. jemalloc
//! is built with profiling compiled in, which is what a service that wants its profiler runs; the
//! bare baseline is that same jemalloc with `prof.active` false, and the reference variant turns
//! it on for its runs only (`mallctl("prof.active")`), so every variant runs over one allocator.

mod alloc_support;

use alloc_support::{compare_with, Switch, BARE, REFERENCE, SAMPLED, SAMPLED_DWARF, SAMPLING_OFF};
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static ALLOC: Switch<Jemalloc, Jemalloc> =
    Switch::new(Jemalloc, Jemalloc, Jemalloc, Jemalloc, Jemalloc);

/// jemalloc's options, read at its start: profiling compiled in and set up, sampling every
/// 2^19 bytes on average, inactive until the reference variant runs.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 46] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

fn jemalloc_profiler_on(mode: usize) {
    // SAFETY: `prof.active` is a bool option of this jemalloc, which has profiling compiled in.
    let set = unsafe { tikv_jemalloc_ctl::raw::write(b"prof.active\0", mode == REFERENCE) };
    set.expect("jemalloc's prof.active (built with the profiling feature?)");
}

fn main() {
    compare_with(
        "alloc (jemalloc)",
        &[
            ("jemalloc", BARE),
            ("sampling, fp walk", SAMPLED),
            ("sampling, DWARF walk", SAMPLED_DWARF),
            ("sampling off", SAMPLING_OFF),
            ("jemalloc prof, 512 KiB", REFERENCE),
        ],
        jemalloc_profiler_on,
    );
}
