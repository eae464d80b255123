#!/usr/bin/env bash
# What the agent's limits hold, measured (not in CI):
#
#   bash scripts/bench-limits.sh windows   # 25 spans + 25 diagnose windows on the shop under load
#   bash scripts/bench-limits.sh memory    # the idle minimal example after 50 CPU and 50 heap profiles
#   bash scripts/bench-limits.sh storm     # shop throughput with and without 100 concurrent /heap
#
# windows: the shop's resident memory under load before the windows open, its peak while 50
# windows of WINDOW_SECONDS (default 300) are open and being built, the answer to a 51st window,
# and the load's throughput before and during the windows.
# memory: resident memory of the minimal example (--no-load) at start, after 50 one-second CPU
# profiles, and after 50 heap profiles, with what malloc_trim cost (from the index page).
# storm: ROUNDS (default 5) rounds of 8 s of load alone and 8 s with 100 concurrent /heap
# requests at all times (one curl, 100 transfers, repeated), alternating which goes first; each
# round's ratio and the median.
#
# Everything runs on loopback (ports 182xx and 162xx).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: bench-limits.sh windows|memory|storm}
target=${CARGO_TARGET_DIR:-target}/release/examples
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
wait_for() { for _ in $(seq 1 150); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.2; done; }
index_line() { curl -fs "$1/debug/pprof/" | grep -o "id=\"$2-state\">[^<]*" | cut -d'>' -f2; }

start_shop() { # $1 shop address, $2 agent address
  cargo build --release --example shop >&2
  SHOP_FIX=${SHOP_FIX:-all} PYROMETER_ADDR=$2 "$target/shop" --addr "$1" >/dev/null 2>&1 &
  shop=$!
  pids+=("$shop")
  wait_for "http://$1/"
}

load_rps() { # $1 shop address, $2 seconds: requests per second of the shop's mixed load
  "$target/shop" --load "http://$1" --seconds "$2" | awk '/^total/ {print $2}'
}

case $mode in
windows)
  seconds=${WINDOW_SECONDS:-300}
  shop_addr=127.0.0.1:18280 agent=http://127.0.0.1:16260
  start_shop $shop_addr 127.0.0.1:16260
  load_rps $shop_addr 5 >/dev/null # warm-up
  before_rps=$(load_rps $shop_addr 15)
  before=$(rss_mib "$shop")
  echo "under load, no window: $before MiB resident, $before_rps req/s"
  rps_file=$(mktemp) rss_file=$(mktemp)
  load_rps $shop_addr $((seconds + 5)) >"$rps_file" &
  load=$!
  (while true; do rss_mib "$shop"; echo; sleep 2; done) >"$rss_file" &
  sampler=$!
  pids+=("$sampler")
  windows=()
  for _ in $(seq 1 25); do
    curl -fs -o /dev/null "$agent/debug/pprof/spans?seconds=$seconds" &
    windows+=("$!")
    curl -fs -o /dev/null "$agent/debug/pprof/diagnose?seconds=$seconds" &
    windows+=("$!")
  done
  pids+=("${windows[@]}")
  sleep 2
  echo "the 51st window:"
  curl -s -D - "$agent/debug/pprof/spans?seconds=10" | tr -d '\r' | grep -iE '^(HTTP|retry-after|x-go-pprof)|^[0-9]+ ' | sed 's/^/  /'
  sleep $((seconds / 2))
  echo "half way: $(index_line $agent limits)"
  failed=0
  for w in "${windows[@]}"; do wait "$w" || failed=$((failed + 1)); done
  wait "$load"
  sleep 3
  kill "$sampler"
  peak=$(sort -n "$rss_file" | tail -1)
  echo "50 windows: $failed failed; load during them: $(cat "$rps_file") req/s"
  echo "peak while open and built: $peak MiB resident, $(awk -v a="$before" -v b="$peak" 'BEGIN {printf "%+.1f", b - a}') MiB over the service's own"
  echo "after the windows: $(rss_mib "$shop") MiB resident"
  ;;
memory)
  agent=http://127.0.0.1:16360
  cargo build --release --example minimal >&2
  MINIMAL_ADDR=127.0.0.1:18300 PYROMETER_ADDR=127.0.0.1:16360 "$target/minimal" --no-load >/dev/null 2>&1 &
  minimal=$!
  pids+=("$minimal")
  wait_for "$agent/debug/pprof/"
  start=$(rss_mib "$minimal")
  echo "start: $start MiB resident"
  for _ in $(seq 1 50); do curl -fs -o /dev/null "$agent/debug/pprof/profile?seconds=1"; done
  sleep 1
  echo "after 50 CPU profiles: $(rss_mib "$minimal") MiB resident"
  for _ in $(seq 1 50); do curl -fs -o /dev/null "$agent/debug/pprof/heap"; done
  sleep 1
  echo "after 50 heap profiles: $(rss_mib "$minimal") MiB resident"
  echo "memory returned: $(index_line $agent memory)"
  ;;
storm)
  rounds=${ROUNDS:-5}
  shop_addr=127.0.0.1:18480 agent=http://127.0.0.1:16460
  start_shop $shop_addr 127.0.0.1:16460
  load_rps $shop_addr 3 >/dev/null # warm-up
  run() { # $1: none or storm
    local storm=()
    if [ "$1" = storm ]; then
      # One curl with 100 transfers at once: 100 processes would take the cores themselves.
      local urls=()
      for _ in $(seq 1 100); do urls+=(-o /dev/null "$agent/debug/pprof/heap"); done
      (while true; do curl -s --no-progress-meter -Z --parallel-max 100 "${urls[@]}" || sleep 0.1; done) &
      storm+=("$!")
      sleep 1
    fi
    load_rps $shop_addr 8
    for p in "${storm[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${storm[@]}" 2>/dev/null || true
  }
  ratios=()
  printf '%-6s %12s %12s %8s\n' round 'none req/s' 'storm req/s' ratio
  for i in $(seq 1 "$rounds"); do
    if [ $((i % 2)) -eq 1 ]; then none=$(run none); storm=$(run storm); else storm=$(run storm); none=$(run none); fi
    ratio=$(awk -v a="$storm" -v b="$none" 'BEGIN { printf "%.3f", a / b }')
    ratios+=("$ratio")
    printf '%-6s %12s %12s %8s\n' "$i" "$none" "$storm" "$ratio"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median throughput ratio (storm / none): %s\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
  ;;
*)
  echo "usage: bench-limits.sh windows|memory|storm" >&2
  exit 2
  ;;
esac
