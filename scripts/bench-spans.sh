#!/usr/bin/env bash
# What the span layer costs the shop under load, and the memory a window holds.
#
# Two shops with the same data and every fix on: one without the span layer, one with it. The
# same mixed load (every route but the stalling one) runs against each in turn: the shop without
# the layer, the shop with the layer and no window open, and the shop with the layer while a
# /debug/pprof/diagnose window is open; the order rotates each round. Prints each round's
# throughput ratios (without layer / with) and the medians, then the agent's memory: the layer
# shop's resident set before a 30-second window under load and its peak during it.
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
start_shop 127.0.0.1:18091 127.0.0.1:16091
layered=127.0.0.1:18091
layered_pid=${pids[1]}
for addr in $plain $layered; do
  for _ in $(seq 1 150); do curl -fs "http://$addr/" >/dev/null 2>&1 && break; sleep 0.2; done
done

load() { # SHOP -> requests per second
  "$bin" --load "http://$1" --seconds "$seconds" | awk '/^total/ {print $2}'
}
run() { # none | idle | window
  case $1 in
    none) load $plain ;;
    idle) load $layered ;;
    window)
      curl -fs -o /dev/null "http://127.0.0.1:16091/debug/pprof/diagnose?seconds=$((seconds + 1))" &
      local curl_pid=$!
      sleep 0.3
      load $layered
      wait "$curl_pid" ;;
  esac
}

load $plain >/dev/null; load $layered >/dev/null # warm-up
configs=(none idle window)
idle_ratios=(); window_ratios=()
printf '%-6s %12s %12s %12s %10s %10s\n' round 'none req/s' 'idle req/s' 'window req/s' 'idle x' 'window x'
for i in $(seq 1 "$rounds"); do
  declare -A rps=()
  for k in 0 1 2; do
    config=${configs[$(((i + k) % 3))]}
    rps[$config]=$(run "$config")
  done
  idle=$(awk -v a="${rps[none]}" -v b="${rps[idle]}" 'BEGIN { printf "%.3f", a / b }')
  window=$(awk -v a="${rps[none]}" -v b="${rps[window]}" 'BEGIN { printf "%.3f", a / b }')
  idle_ratios+=("$idle"); window_ratios+=("$window")
  printf '%-6s %12s %12s %12s %10s %10s\n' "$i" "${rps[none]}" "${rps[idle]}" "${rps[window]}" "$idle" "$window"
  unset rps
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "median throughput ratio, no layer / layer installed, no window: $(median "${idle_ratios[@]}")"
echo "median throughput ratio, no layer / layer with a window open:  $(median "${window_ratios[@]}")"

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
