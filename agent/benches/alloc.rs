//! What the sampling allocator costs over the system allocator, with dhat's allocator (idle, no
//! profiler running) in the same run for reference.
//!
//! `cargo bench -p pyrometer --bench alloc`; see `alloc_support` for the method. The goals:
//! at most 1.05x at the default rate, at most 1.02x with sampling off.

mod alloc_support;

use std::alloc::System;

use alloc_support::{compare, Switch, BARE, REFERENCE, SAMPLED, SAMPLED_DWARF, SAMPLING_OFF};

#[global_allocator]
static ALLOC: Switch<System, dhat::Alloc> =
    Switch::new(System, System, System, System, dhat::Alloc);

fn main() {
    compare(
        "alloc (system allocator)",
        &[
            ("system", BARE),
            ("sampling, fp walk", SAMPLED),
            ("sampling, DWARF walk", SAMPLED_DWARF),
            ("sampling off", SAMPLING_OFF),
            ("dhat::Alloc (idle)", REFERENCE),
        ],
    );
}
