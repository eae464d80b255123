//! The sampling allocator over another allocator than the system one: mimalloc. Every call is
//! forwarded to mimalloc (checked with mimalloc's own test of its pointers), and the profile is
//! as exact at rate 1 as over the system allocator, reallocs included.

mod common;

use std::alloc::GlobalAlloc;
use std::hint::black_box;

use mimalloc::MiMalloc;
use pyrometer::heap::{self, SamplingAllocator, Snapshot};

#[global_allocator]
static ALLOC: SamplingAllocator<MiMalloc> = SamplingAllocator::new(MiMalloc).with_sample_rate(1);

#[inline(never)]
fn grown(n: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(1);
    v.extend(0..n as u32);
    v
}

#[inline(never)]
fn string_site(i: usize) -> String {
    format!("mimalloc round {i:08}")
}

#[test]
fn forwards_to_mimalloc_and_counts_exactly() {
    assert_eq!(heap::sample_rate(), Some(1));
    let before = Snapshot::take();
    let kept: Vec<Vec<u32>> = (0..100).map(|_| grown(1000)).collect();
    for i in 0..500 {
        black_box(string_site(i));
    }
    // The blocks come from mimalloc's heap; a block from the system allocator does not.
    let system = unsafe { std::alloc::System.alloc(std::alloc::Layout::new::<[u64; 4]>()) };
    unsafe {
        assert!(mi_is_in_heap_region(kept[0].as_ptr().cast()));
        assert!(!mi_is_in_heap_region(system.cast()));
        std::alloc::System.dealloc(system, std::alloc::Layout::new::<[u64; 4]>());
    }

    let profile = Snapshot::take().since(&before).profile("inuse_space");
    let at = |index| common::total_at(&profile, "grown", index);
    // Each vector is allocated once and grown by realloc from 1 element to 1000; only its final
    // block is live.
    assert!(at(0) > 100, "growth reallocs are counted as allocations");
    assert_eq!(at(2), 100);
    assert_eq!(at(3), 100 * kept[0].capacity() as i64 * 4);
    assert_eq!(common::total_at(&profile, "string_site", 0), 500);
    assert_eq!(common::total_at(&profile, "string_site", 2), 0);
    drop(kept);
}

extern "C" {
    /// mimalloc's own test of whether it handed out a pointer.
    fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
}
