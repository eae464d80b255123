#!/usr/bin/env bash
# The agent's throughput cost on the shop under load: the same mixed load (every route but the
# stalling one, 8 clients) with no profile running, and with a 99 Hz CPU profile running over the
# whole window, ROUNDS times (which goes first alternates); prints each round's ratio and the median.
# The shop runs with every fix on (SHOP_FIX=all unless set), so throughput measures the service's
# own work rather than table scans.
#
#   bash scripts/bench-shop.sh [ROUNDS] [SECONDS]      # default 5 rounds of 8 s each way
#
# Everything runs on loopback: the shop on 127.0.0.1:18080, its agent on 127.0.0.1:16060.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-8}
shop_addr=127.0.0.1:18080
agent_addr=127.0.0.1:16060

cargo build --release --example shop >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/shop

SHOP_FIX=${SHOP_FIX:-all} PYROMETER_ADDR=$agent_addr "$bin" --addr $shop_addr >/dev/null 2>&1 &
shop_pid=$!
trap 'kill $shop_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://$shop_addr/" >/dev/null 2>&1 && break
  sleep 0.2
done

# Requests per second of one load run, with the profile given as $1 (none or cpu).
run() {
  local profile=$1 curl_pid=
  if [ "$profile" = cpu ]; then
    curl -fs -o /dev/null "http://$agent_addr/debug/pprof/profile?seconds=$((seconds + 1))&frequency=99" &
    curl_pid=$!
    sleep 0.3
  fi
  "$bin" --load "http://$shop_addr" --seconds "$seconds" | awk '/^total/ {print $2}'
  if [ -n "$curl_pid" ]; then wait "$curl_pid"; fi
}

"$bin" --load "http://$shop_addr" --seconds 2 >/dev/null   # warm-up
ratios=()
printf '%-6s %14s %14s %8s\n' round 'none req/s' 'cpu99 req/s' ratio
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then
    none=$(run none)
    cpu=$(run cpu)
  else
    cpu=$(run cpu)
    none=$(run none)
  fi
  ratio=$(awk -v a="$none" -v b="$cpu" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf '%-6s %14s %14s %8s\n' "$i" "$none" "$cpu" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
echo "median throughput ratio (no profile / 99 Hz CPU profile): $median"
