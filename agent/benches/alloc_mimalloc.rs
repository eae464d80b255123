//! What the sampling allocator costs over mimalloc, against mimalloc alone, in one run.
//!
//! `cargo bench -p pyrometer --bench alloc_mimalloc`; see `alloc_support` for the method.

mod alloc_support;

use alloc_support::{compare, Switch, BARE, SAMPLED, SAMPLED_DWARF, SAMPLING_OFF};
use mimalloc::MiMalloc;

/// The reference slot is mimalloc again: dhat's allocator sits on the system one, and blocks
/// must not move between the two.
#[global_allocator]
static ALLOC: Switch<MiMalloc, MiMalloc> =
    Switch::new(MiMalloc, MiMalloc, MiMalloc, MiMalloc, MiMalloc);

fn main() {
    compare(
        "alloc (mimalloc)",
        &[
            ("mimalloc", BARE),
            ("sampling, fp walk", SAMPLED),
            ("sampling, DWARF walk", SAMPLED_DWARF),
            ("sampling off", SAMPLING_OFF),
        ],
    );
}
