#!/usr/bin/env bash
# The CPU profiler's figures: throughput cost and sample fidelity at 99 and 999 Hz (cargo bench),
# then the time from the end of a 30-second, 99 Hz window to the last byte of the response, on the
# minimal example under its own load. Usage: scripts/bench-cpu.sh [WINDOWS] (default 3 windows).
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-3}

cargo bench -p pyrometer --bench cpu_overhead

cargo build --release --example minimal
agent_addr=127.0.0.1:16060
PYROMETER_ADDR=$agent_addr MINIMAL_ADDR=127.0.0.1:13000 target/release/examples/minimal >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://$agent_addr/debug/pprof/" >/dev/null && break; sleep 0.2; done
sleep 2 # let the self-load start

echo "end of window to last byte, 30 s at 99 Hz, minimal example under load:"
latencies=()
for i in $(seq "$windows"); do
  total=$(curl -sf -o /tmp/pyrometer-bench-cpu.pb.gz -w '%{time_total}' \
    "http://$agent_addr/debug/pprof/profile?seconds=30&frequency=99")
  after=$(python3 -c "print(f'{$total - 30:.3f}')")
  size=$(stat -c %s /tmp/pyrometer-bench-cpu.pb.gz)
  echo "  window $i: ${after} s after the window, ${size} bytes"
  latencies+=("$after")
done
printf '%s\n' "${latencies[@]}" | sort -n | awk '{a[NR]=$1} END {print "  median: " a[int((NR+1)/2)] " s"}'
