#!/usr/bin/env bash
# Soak (not in CI): the shop under steady load while profiles of every kind are taken back to back
# (CPU, heap, allocs, heap and allocs windows, spans and diagnose windows, in pprof and SVG), for
# SOAK_MINUTES minutes (default 30). Every minute it prints the shop's resident memory, open file
# descriptors and threads, and how many profiles were taken and failed; at the end, the growth of
# resident memory after the first 5 minutes (the goal: under 10 MiB, with fds and threads flat).
#
#   bash scripts/soak.sh                  # 30 minutes
#   SOAK_MINUTES=10 bash scripts/soak.sh
#
# Everything runs on loopback: the shop on 127.0.0.1:18180, its agent on 127.0.0.1:16160.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${SOAK_MINUTES:-30}
shop_addr=127.0.0.1:18180
agent_addr=127.0.0.1:16160
agent=http://$agent_addr/debug/pprof

cargo build --release --example shop >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/shop
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

SHOP_FIX=${SHOP_FIX:-all} PYROMETER_ADDR=$agent_addr "$bin" --addr $shop_addr >/dev/null 2>&1 &
shop=$!
pids+=("$shop")
for _ in $(seq 1 100); do
  curl -fs "http://$shop_addr/" >/dev/null 2>&1 && break
  sleep 0.2
done

"$bin" --load "http://$shop_addr" --seconds $((minutes * 60 + 60)) >/dev/null 2>&1 &
pids+=("$!")

# Back-to-back profiles, counted in $work/ok and $work/failed (one line per profile).
profiles=(
  "profile?seconds=5"
  "profile?seconds=5&format=svg"
  "heap"
  "heap?format=svg"
  "allocs"
  "heap?seconds=5"
  "allocs?seconds=5&format=svg"
  "spans?seconds=5"
  "spans?seconds=5&format=svg"
  "diagnose?seconds=5"
  "diagnose?seconds=5&format=json"
)
(
  while true; do
    for path in "${profiles[@]}"; do
      if curl -fs -o /dev/null "$agent/$path"; then echo >>"$work/ok"; else echo "$path" >>"$work/failed"; fi
    done
  done
) &
pids+=("$!")

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$shop/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$shop/status"; }
fds() { ls "/proc/$shop/fd" | wc -l; }
count() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

printf '%-7s %10s %6s %8s %10s %8s\n' minute 'rss MiB' fds threads profiles failed
at5=
for minute in $(seq 1 "$minutes"); do
  sleep 60
  rss=$(rss_kib)
  [ "$minute" -eq 5 ] && at5=$rss
  printf '%-7s %10.1f %6s %8s %10s %8s\n' "$minute" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" \
    "$(fds)" "$(threads)" "$(count "$work/ok")" "$(count "$work/failed")"
done
if [ -n "$at5" ]; then
  awk -v a="$at5" -v b="$(rss_kib)" 'BEGIN { printf "resident growth after minute 5: %+.1f MiB\n", (b - a) / 1024 }'
fi
if [ -f "$work/failed" ]; then
  echo "failed profiles:"
  sort "$work/failed" | uniq -c
fi
