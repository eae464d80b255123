//! The profiler's records: call stacks with what they allocated, and the sampled blocks still
//! live.
//!
//! - The stack table interns each distinct stack once (its frames in one append-only arena) and
//!   keeps four running sums per stack: objects and bytes allocated, objects and bytes live.
//!   Stack ids are indexes that never change, so two copies taken at different times can be
//!   subtracted stack by stack to get what happened in between.
//! - The live table maps the address of every sampled block not yet freed to its stack and
//!   weight, so that a free or a realloc takes the weight off the stack's live sums.
//! - A bitmap of 2^17 bits, one per slot of addresses, says which addresses may be sampled
//!   blocks. A free that the allocator cannot rule out from the address alone (its rule 8) tests
//!   one bit with a relaxed load (a plain load: no lock, no fence) and goes to the live table only
//!   when it is set. A count per slot, kept under the lock, clears the bit when the last sampled
//!   block of the slot is freed. At the default rate a heap of 1 GiB has about 2,000 sampled
//!   blocks, so about 1.5% of the frees that test a bit take the locked path for nothing.
//!
//! All of it sits behind one mutex that only the sampled paths take, and every lock is taken with
//! an [`Entered`] in hand, so no code running under it can re-enter the sampler. Its memory comes
//! from the system allocator directly ([`Sys`]), never through the global allocator: growing a
//! table inside the allocator must not call the allocator. Nothing here panics: a table that
//! cannot grow drops the sample and counts it in `dropped`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use allocator_api2::alloc::{AllocError, Allocator};
use allocator_api2::vec::Vec as SysVec;
use hashbrown::HashTable;

use super::sampler::{Entered, Weight};

/// The most distinct stacks kept; samples of further stacks are counted under the empty stack.
const MAX_STACKS: usize = 1 << 20;
/// The most frames kept over all stacks (32 MiB of addresses).
const MAX_FRAMES: usize = 1 << 22;

const FILTER_BITS_LOG2: u32 = 17;
const FILTER_SLOTS: usize = 1 << FILTER_BITS_LOG2;

static FILTER: [AtomicU64; FILTER_SLOTS / 64] = [const { AtomicU64::new(0) }; FILTER_SLOTS / 64];
/// Sampled live blocks per filter slot; changed only under the table lock.
static SLOT_COUNTS: [AtomicU32; FILTER_SLOTS] = [const { AtomicU32::new(0) }; FILTER_SLOTS];

/// Bytes the tables hold from the system allocator.
static HELD: AtomicUsize = AtomicUsize::new(0);

static TABLE: Mutex<Table> = Mutex::new(Table::new());

/// The system allocator, called directly, and counted in [`held_bytes`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sys;

// SAFETY: forwards to `System`, which satisfies the contract; zero-sized requests are served as
// one-byte ones so that every returned pointer is a real, aligned allocation.
unsafe impl Allocator for Sys {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let real = nonzero(layout);
        // SAFETY: `real` has a non-zero size.
        let ptr = NonNull::new(unsafe { System.alloc(real) }).ok_or(AllocError)?;
        HELD.fetch_add(real.size(), Relaxed);
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let real = nonzero(layout);
        HELD.fetch_sub(real.size(), Relaxed);
        // SAFETY: allocated by `allocate` above with the same layout.
        unsafe { System.dealloc(ptr.as_ptr(), real) }
    }
}

fn nonzero(layout: Layout) -> Layout {
    // A size of at most the alignment cannot overflow `isize` once rounded up.
    Layout::from_size_align(layout.size().max(1), layout.align()).unwrap_or(layout)
}

/// Bytes the profiler's tables hold.
pub(crate) fn held_bytes() -> usize {
    HELD.load(Relaxed)
}

/// The running sums of one stack, estimates in the units of the profile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub alloc_objects: f64,
    pub alloc_bytes: f64,
    pub inuse_objects: f64,
    pub inuse_bytes: f64,
}

impl Counts {
    /// What happened between `earlier` and `self`.
    pub(crate) fn minus(&self, earlier: &Counts) -> Counts {
        Counts {
            alloc_objects: self.alloc_objects - earlier.alloc_objects,
            alloc_bytes: self.alloc_bytes - earlier.alloc_bytes,
            inuse_objects: self.inuse_objects - earlier.inuse_objects,
            inuse_bytes: self.inuse_bytes - earlier.inuse_bytes,
        }
    }
}

/// One distinct stack: its frames in the arena, and its sums.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StackRecord {
    pub start: u32,
    pub len: u32,
    hash: u64,
    pub counts: Counts,
}

/// A sampled block that has not been freed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveBlock {
    addr: usize,
    stack: u32,
    weight: Weight,
    /// Placed 8 bytes into a larger block of the inner allocator (see the allocator's rule 8).
    pub tagged: bool,
}

struct Table {
    stacks: SysVec<StackRecord, Sys>,
    frames: SysVec<usize, Sys>,
    /// Stack ids, hashed by their frames.
    by_frames: HashTable<u32, Sys>,
    live: HashTable<LiveBlock, Sys>,
    live_total: Weight,
    dropped: u64,
}

impl Table {
    const fn new() -> Table {
        Table {
            stacks: SysVec::new_in(Sys),
            frames: SysVec::new_in(Sys),
            by_frames: HashTable::new_in(Sys),
            live: HashTable::new_in(Sys),
            live_total: Weight {
                objects: 0.0,
                bytes: 0.0,
            },
            dropped: 0,
        }
    }

    /// The id of a stack, added if new; `None` if the tables cannot grow.
    fn intern(&mut self, frames: &[usize]) -> Option<u32> {
        if self.stacks.is_empty() {
            // Id 0 is the empty stack: an unwind that found nothing, or a full stack table.
            self.add_stack(&[], hash_frames(&[]))?;
        }
        let hash = hash_frames(frames);
        let Table {
            stacks,
            frames: arena,
            by_frames,
            ..
        } = self;
        let same = |&id: &u32| {
            let s = &stacks[id as usize];
            s.hash == hash && &arena[s.start as usize..(s.start + s.len) as usize] == frames
        };
        if let Some(&id) = by_frames.find(hash, same) {
            return Some(id);
        }
        if self.stacks.len() >= MAX_STACKS || self.frames.len() + frames.len() > MAX_FRAMES {
            return Some(0);
        }
        self.add_stack(frames, hash)
    }

    fn add_stack(&mut self, frames: &[usize], hash: u64) -> Option<u32> {
        let Table {
            stacks,
            frames: arena,
            by_frames,
            ..
        } = self;
        stacks.try_reserve(1).ok()?;
        arena.try_reserve(frames.len()).ok()?;
        by_frames
            .try_reserve(1, |&id| stacks[id as usize].hash)
            .ok()?;
        let id = stacks.len() as u32;
        stacks.push(StackRecord {
            start: arena.len() as u32,
            len: frames.len() as u32,
            hash,
            counts: Counts::default(),
        });
        arena.extend_from_slice(frames);
        by_frames.insert_unique(hash, id, |&id| stacks[id as usize].hash);
        Some(id)
    }

    /// Adds a block to the live table, its stack's live sums and the filter.
    fn insert_live(&mut self, block: LiveBlock) -> bool {
        if self.live.try_reserve(1, |b| hash_addr(b.addr)).is_err() {
            return false;
        }
        // A block at this address whose free went unseen (see `record_alloc`'s caller): the
        // address was reused, so that block is gone.
        if let Ok(stale) = self
            .live
            .find_entry(hash_addr(block.addr), |b| b.addr == block.addr)
        {
            let (stale, _) = stale.remove();
            self.release(stale);
        }
        self.live
            .insert_unique(hash_addr(block.addr), block, |b| hash_addr(b.addr));
        if let Some(stack) = self.stacks.get_mut(block.stack as usize) {
            stack.counts.inuse_objects += block.weight.objects;
            stack.counts.inuse_bytes += block.weight.bytes;
        }
        self.live_total.objects += block.weight.objects;
        self.live_total.bytes += block.weight.bytes;
        let slot = slot(block.addr);
        if SLOT_COUNTS[slot].fetch_add(1, Relaxed) == 0 {
            FILTER[slot >> 6].fetch_or(1 << (slot & 63), Relaxed);
        }
        true
    }

    /// Takes a removed block off its stack's live sums and the filter.
    fn release(&mut self, block: LiveBlock) {
        if let Some(stack) = self.stacks.get_mut(block.stack as usize) {
            stack.counts.inuse_objects -= block.weight.objects;
            stack.counts.inuse_bytes -= block.weight.bytes;
        }
        self.live_total.objects -= block.weight.objects;
        self.live_total.bytes -= block.weight.bytes;
        let slot = slot(block.addr);
        if SLOT_COUNTS[slot].fetch_sub(1, Relaxed) == 1 {
            FILTER[slot >> 6].fetch_and(!(1 << (slot & 63)), Relaxed);
        }
    }
}

fn lock(_: &Entered) -> MutexGuard<'static, Table> {
    // Nothing panics while holding the lock, so poisoning cannot happen; if it somehow did, the
    // sums are still consistent.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The filter slot of an address: its bits above the 16-byte granule of heap blocks, modulo the
/// filter's size. No multiply: blocks that are live at the same time lie at distinct granules,
/// and the free path is short enough that one more instruction shows.
#[inline(always)]
fn slot(addr: usize) -> usize {
    (addr >> 4) & (FILTER_SLOTS - 1)
}

/// False when `addr` is certainly not a sampled live block: the whole cost a free pays when it
/// is not sampled. A block's bit is set before its allocation returns, so any thread that was
/// handed the pointer sees it.
#[inline(always)]
pub(crate) fn maybe_sampled(addr: usize) -> bool {
    let slot = slot(addr);
    FILTER[slot >> 6].load(Relaxed) & (1 << (slot & 63)) != 0
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_addr(addr: usize) -> u64 {
    mix(addr as u64)
}

fn hash_frames(frames: &[usize]) -> u64 {
    frames
        .iter()
        .fold(frames.len() as u64, |h, &f| mix(h ^ f as u64))
}

/// Records a sampled allocation at `addr` made from the stack `frames`. False if the tables could
/// not grow: the sample is dropped (and counted), and a tagged block must then not be handed out.
pub(crate) fn record_alloc(
    entered: &Entered,
    addr: usize,
    frames: &[usize],
    weight: Weight,
    tagged: bool,
) -> bool {
    let mut table = lock(entered);
    let Some(stack) = table.intern(frames) else {
        table.dropped += 1;
        return false;
    };
    if !table.insert_live(LiveBlock {
        addr,
        stack,
        weight,
        tagged,
    }) {
        table.dropped += 1;
        return false;
    }
    let counts = &mut table.stacks[stack as usize].counts;
    counts.alloc_objects += weight.objects;
    counts.alloc_bytes += weight.bytes;
    true
}

/// Whether `addr` is a live tagged block, without removing it.
pub(crate) fn is_tagged(entered: &Entered, addr: usize) -> bool {
    lock(entered)
        .live
        .find(hash_addr(addr), |b| b.addr == addr)
        .is_some_and(|b| b.tagged)
}

/// Removes the live block at `addr`, if it is one, before the block is freed or moved. Removing
/// before the inner allocator frees it matters: once freed, the address can be handed to another
/// thread and sampled again.
pub(crate) fn take(entered: &Entered, addr: usize) -> Option<LiveBlock> {
    let mut table = lock(entered);
    let (block, _) = table
        .live
        .find_entry(hash_addr(addr), |b| b.addr == addr)
        .ok()?
        .remove();
    table.release(block);
    Some(block)
}

/// Puts back a block taken by [`take`] whose realloc failed (so it is still live).
pub(crate) fn restore(entered: &Entered, block: LiveBlock) {
    let mut table = lock(entered);
    if !table.insert_live(block) {
        table.dropped += 1;
    }
}

/// The stack table at one moment: every stack's sums, and the frame arena they point into.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableCopy {
    pub stacks: Vec<StackRecord>,
    pub frames: Vec<usize>,
}

/// Copies the stack table. The copy's memory is allocated before the lock is taken (through the
/// global allocator, as any other code's), so nothing allocates while the lock is held.
pub(crate) fn copy() -> TableCopy {
    let lens = || {
        let entered = super::sampler::enter()?;
        let table = lock(&entered);
        Some((table.stacks.len(), table.frames.len()))
    };
    let Some((mut stacks_len, mut frames_len)) = lens() else {
        return TableCopy::default();
    };
    loop {
        // Room for what may be added between the two locks; rarely is a second round needed.
        let mut copy = TableCopy {
            stacks: Vec::with_capacity(stacks_len + 256),
            frames: Vec::with_capacity(frames_len + 256 * super::stack::MAX_DEPTH),
        };
        let Some(entered) = super::sampler::enter() else {
            return TableCopy::default();
        };
        let table = lock(&entered);
        if table.stacks.len() <= copy.stacks.capacity()
            && table.frames.len() <= copy.frames.capacity()
        {
            copy.stacks.extend_from_slice(&table.stacks);
            copy.frames.extend_from_slice(&table.frames);
            return copy;
        }
        (stacks_len, frames_len) = (table.stacks.len(), table.frames.len());
    }
}

/// Totals for the index page and for measuring the profiler itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableStats {
    /// Estimated objects and bytes live (allocated and not freed) among sampled stacks.
    pub live_objects: f64,
    pub live_bytes: f64,
    /// Sampled blocks not yet freed.
    pub live_samples: usize,
    /// Distinct stacks recorded.
    pub stacks: usize,
    /// Samples lost because a table could not grow.
    pub dropped: u64,
    /// Bytes the profiler's tables take from the system allocator.
    pub held_bytes: usize,
}

pub(crate) fn stats() -> TableStats {
    let Some(entered) = super::sampler::enter() else {
        return TableStats::default();
    };
    let table = lock(&entered);
    TableStats {
        live_objects: table.live_total.objects,
        live_bytes: table.live_total.bytes,
        live_samples: table.live.len(),
        stacks: table.stacks.len(),
        dropped: table.dropped,
        held_bytes: held_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_follows_the_live_table() {
        let entered = super::super::sampler::enter().unwrap();
        // Addresses no real allocation has (the unit tests' allocator is not the sampling one).
        let a = 0x7000_0000_0010usize;
        let b = 0x7000_0000_0020usize;
        let weight = Weight {
            objects: 2.0,
            bytes: 200.0,
        };
        assert!(!maybe_sampled(a));
        record_alloc(&entered, a, &[1, 2, 3], weight, false);
        record_alloc(&entered, b, &[1, 2, 3], weight, true);
        assert!(is_tagged(&entered, b) && !is_tagged(&entered, a));
        assert!(maybe_sampled(a) && maybe_sampled(b));
        let taken = take(&entered, a).expect("a is live");
        assert!(!maybe_sampled(a) || slot(a) == slot(b));
        assert!(take(&entered, a).is_none(), "taken once");
        restore(&entered, taken);
        assert!(maybe_sampled(a));
        drop(entered);

        let copy = copy();
        let stack = copy
            .stacks
            .iter()
            .find(|s| copy.frames[s.start as usize..(s.start + s.len) as usize] == [1, 2, 3])
            .expect("stack recorded once");
        assert_eq!(stack.counts.alloc_bytes, 400.0);
        assert_eq!(stack.counts.inuse_objects, 4.0);

        let entered = super::super::sampler::enter().unwrap();
        take(&entered, a).unwrap();
        take(&entered, b).unwrap();
        assert!(!maybe_sampled(a) && !maybe_sampled(b));
        drop(entered);
        assert!(stats().held_bytes > 0);
    }
}
