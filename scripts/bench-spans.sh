#!/usr/bin/env bash
# What the span layer costs the shop under load, and the memory a window holds.
#
# Two shops with the same data and every fix on, both logging at INFO: one without the span
# layer, one with it. The same mixed load (every route but the stalling one) runs against each in
# turn: the shop without the layer, the shop with the layer and no window open, and the shop with
# the layer while a /debug/pprof/diagnose window is open (the load runs inside the window; building
# the report after it is not counted); the order rotates each round. The cost is the shop
# process's CPU time (user + system, from /proc) per request served, as a ratio to the shop
# without the layer: each round's ratios, then their medians and ranges. Then the agent's memory:
# the layer shop's resident set before a 30-second window under load and its peak during it.
#
#   bash scripts/bench-spans.sh [ROUNDS] [SECONDS]      # default 5 rounds of 8 s per run
#
# Everything runs on loopback: shops on 127.0.0.1:18090 and :18091, agents on :16090 and :16091.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-8}

cargo build --release --example shop >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/shop

start_shop() { # ADDR AGENT_ADDR [FLAGS]
  SHOP_FIX=all PYROMETER_ADDR=$2 "$bin" --addr "$1" "${@:3}" >/dev/null 2>&1 &
  pids+=($!)
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_shop 127.0.0.1:18090 127.0.0.1:16090 --no-span-layer
plain=127.0.0.1:18090
plain_pid=${pids[0]}
start_shop 127.0.0.1:18091 127.0.0.1:16091
layered=127.0.0.1:18091
layered_pid=${pids[1]}
for addr in $plain $layered; do
  for _ in $(seq 1 150); do curl -fs "http://$addr/" >/dev/null 2>&1 && break; sleep 0.2; done
done

cpu_ticks() { # PID -> user + system CPU time in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
load() { # SHOP PID -> CPU ticks per 1000 requests
  local before requests after
  before=$(cpu_ticks "$2")
  # The report's rows are: route, requests, errors, p50, p95, p99, req/s.
  requests=$("$bin" --load "http://$1" --seconds "$seconds" |
    awk 'NR > 1 && !/^total/ {n += $(NF - 5)} END {print n}')
  after=$(cpu_ticks "$2")
  awk -v c=$((after - before)) -v n="$requests" 'BEGIN { printf "%.3f", 1000 * c / n }'
}
run() { # none | idle | window -> CPU ticks per 1000 requests
  case $1 in
    none) load $plain "$plain_pid" ;;
    idle) load $layered "$layered_pid" ;;
    window)
      curl -fs -o /dev/null "http://127.0.0.1:16091/debug/pprof/diagnose?seconds=$((seconds + 1))" &
      local curl_pid=$!
      sleep 0.3
      load $layered "$layered_pid"
      wait "$curl_pid" ;;
  esac
}

load $plain "$plain_pid" >/dev/null; load $layered "$layered_pid" >/dev/null # warm-up
configs=(none idle window)
idle_ratios=(); window_ratios=()
printf '%-6s %12s %12s %12s %10s %10s\n' round 'none cpu/kreq' 'idle cpu/kreq' 'window cpu/kreq' 'idle x' 'window x'
for i in $(seq 1 "$rounds"); do
  declare -A cost=()
  for k in 0 1 2; do
    config=${configs[$(((i + k) % 3))]}
    cost[$config]=$(run "$config")
  done
  idle=$(awk -v a="${cost[none]}" -v b="${cost[idle]}" 'BEGIN { printf "%.3f", b / a }')
  window=$(awk -v a="${cost[none]}" -v b="${cost[window]}" 'BEGIN { printf "%.3f", b / a }')
  idle_ratios+=("$idle"); window_ratios+=("$window")
  printf '%-6s %12s %12s %12s %10s %10s\n' "$i" "${cost[none]}" "${cost[idle]}" "${cost[window]}" "$idle" "$window"
  unset cost
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
echo "CPU per request, layer installed, no window / no layer: median $(median "${idle_ratios[@]}"), range $(range "${idle_ratios[@]}")"
echo "CPU per request, layer with a window open / no layer:   median $(median "${window_ratios[@]}"), range $(range "${window_ratios[@]}")"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$layered_pid/status"; }
before=$(rss_kib)
curl -fs -o /dev/null "http://127.0.0.1:16091/debug/pprof/diagnose?seconds=30" &
curl_pid=$!
"$bin" --load "http://$layered" --seconds 31 >/dev/null &
load_pid=$!
peak=$before
while kill -0 "$curl_pid" 2>/dev/null; do
  now=$(rss_kib); [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.5
done
wait "$load_pid"
after=$(rss_kib)
echo "layer shop resident set: before the 30 s window ${before} KiB, peak during it ${peak} KiB (+$((peak - before)) KiB), after ${after} KiB"
