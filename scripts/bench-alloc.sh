#!/usr/bin/env bash
# The heap profiler's figures: what the sampling allocator costs over the system allocator and over
# mimalloc (each variant side by side with the bare allocator in one process, medians of per-round
# ratios, dhat::Alloc for reference), then the memory the profiler holds idle and after a 30-second
# /debug/pprof/allocs window on a busy service (loopback only).
# Usage: scripts/bench-alloc.sh   (ROUNDS, ITERATIONS and WINDOW override the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p pyrometer --bench alloc --bench alloc_mimalloc --bench heap_memory
