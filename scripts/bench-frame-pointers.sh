#!/usr/bin/env bash
# What frame pointers cost a service itself: the shop built with them (this workspace's
# .cargo/config.toml) and without (RUSTFLAGS='-C force-frame-pointers=no', in its own target
# folder), both running, the same mixed load sent to each in turn (8 clients, every route but the
# stalling one), ROUNDS times with the order alternating; prints each round's requests per second
# and the ratio, then the median ratio. No profile is taken: this is the code's own cost.
#
#   bash scripts/bench-frame-pointers.sh [ROUNDS] [SECONDS]     # default 7 rounds of 8 s each
#
# Loopback only: the shops on 127.0.0.1:18081 (with) and 127.0.0.1:18082 (without), their agents
# on 16061 and 16062.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
seconds=${2:-8}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --example shop >&2
RUSTFLAGS='-C force-frame-pointers=no' CARGO_TARGET_DIR="$target/no-frame-pointers" \
  cargo build --release --example shop >&2
with=$target/release/examples/shop
without=$target/no-frame-pointers/release/examples/shop

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { # binary, shop port, agent port
  SHOP_FIX=${SHOP_FIX:-all} PYROMETER_ADDR=127.0.0.1:$3 "$1" --addr "127.0.0.1:$2" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$2/" >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "the shop on port $2 did not start" >&2
  exit 1
}
start "$with" 18081 16061
start "$without" 18082 16062

rps() { "$with" --load "http://127.0.0.1:$1" --seconds "$seconds" | awk '/^total/ {print $2}'; }
rps 18081 >/dev/null; rps 18082 >/dev/null   # warm-up
ratios=()
printf '%-6s %16s %16s %8s\n' round 'with fp req/s' 'without req/s' ratio
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then a=$(rps 18081); b=$(rps 18082); else b=$(rps 18082); a=$(rps 18081); fi
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
  ratios+=("$ratio")
  printf '%-6s %16s %16s %8s\n' "$i" "$a" "$b" "$ratio"
done
sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
median=$(awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}' <<<"$sorted")
echo "median throughput ratio (without / with frame pointers): $median (range $(head -1 <<<"$sorted") to $(tail -1 <<<"$sorted"))"
