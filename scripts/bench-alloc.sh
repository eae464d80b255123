#!/usr/bin/env bash
# The heap profiler's figures: what the sampling allocator costs over the system allocator, over
# mimalloc and over jemalloc, with the frame-pointer and the DWARF stack walk (each variant side by
# side with the bare allocator in one process, medians of per-round ratios; dhat::Alloc and
# jemalloc's own profiler at the same 512 KiB for reference), then the memory the profiler holds
# idle and after a 30-second /debug/pprof/allocs window on a busy service (loopback only).
# Usage: scripts/bench-alloc.sh   (ROUNDS, ITERATIONS and WINDOW override the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p pyrometer --bench alloc --bench alloc_mimalloc --bench alloc_jemalloc --bench heap_memory
