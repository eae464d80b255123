#!/usr/bin/env python3
"""Writes N distinct folded stacks (`frame;frame;... COUNT`) to stdout, deterministically.

Stacks are random walks down a tree of Rust-like function names, so prefixes are shared the way
real profiles share them (main, the runtime, handlers) and leaves are spread out. Usage:
    bench-viewer-make-stacks.py N MIN_DEPTH MAX_DEPTH [SEED]
"""
import random
import sys

n, min_depth, max_depth = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
crates = ["shop", "tokio", "hyper", "serde_json", "std", "core", "alloc", "sqlx", "tower", "axum"]
modules = ["runtime", "handler", "codec", "pool", "query", "io", "fmt", "vec", "sync", "task"]
verbs = ["poll", "call", "encode", "decode", "read", "write", "push", "spawn", "drive", "run"]
names = [f"{c}::{m}::{v}_{i}" for c in crates for m in modules for v in verbs for i in range(3)]
roots = ["main", "std::rt::lang_start", "tokio::runtime::worker::run"]
seen = set()
out = sys.stdout
while len(seen) < n:
    depth = rng.randint(min_depth, max_depth)
    frames = [rng.choice(roots)]
    # Early frames come from a small set, so stacks share prefixes; deeper ones spread out.
    for level in range(1, depth):
        pool = names[: 20 + level * 60]
        frames.append(rng.choice(pool))
    stack = ";".join(frames)
    if stack in seen:
        continue
    seen.add(stack)
    out.write(f"{stack} {rng.randint(1, 500)}\n")
