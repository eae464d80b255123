#!/usr/bin/env bash
# The CPU profiler's figures, each engine side by side in one run:
# 1. fidelity (samples / rate x process CPU; thread shares against their own CPU clocks; a thread
#    that wakes every 2 ms) and throughput cost at 99 and 999 Hz (cargo bench, medians);
# 2. on the minimal example under its own load, for each engine: resident memory before, at most
#    during, and after a 30-second, 99 Hz window, and the time from the end of the window to the
#    last byte of the response.
# Usage: [ENGINES="perf timer setitimer"] scripts/bench-cpu.sh [WINDOWS] (default 2 windows per engine).
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-2}

cargo bench -p pyrometer --bench cpu_overhead

cargo build --release --example minimal
agent_addr=127.0.0.1:16060
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

for engine in ${ENGINES:-perf timer setitimer}; do
  PYROMETER_CPU_ENGINE=$engine PYROMETER_ADDR=$agent_addr MINIMAL_ADDR=127.0.0.1:13000 \
    target/release/examples/minimal >/dev/null &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  for _ in $(seq 50); do curl -sf "http://$agent_addr/debug/pprof/" >/dev/null && break; sleep 0.2; done
  sleep 2 # let the self-load start

  echo "engine $engine: 30 s windows at 99 Hz, minimal example under its own load (RSS in MiB):"
  for i in $(seq "$windows"); do
    before=$(rss_kib $pid)
    curl -sf -o /tmp/pyrometer-bench-cpu.pb.gz -w '%{time_total}\n' \
      "http://$agent_addr/debug/pprof/profile?seconds=30&frequency=99" >/tmp/pyrometer-bench-cpu.time &
    curl_pid=$!
    peak=$before
    while kill -0 $curl_pid 2>/dev/null; do
      now=$(rss_kib $pid); ((now > peak)) && peak=$now
      sleep 0.5
    done
    wait $curl_pid
    sleep 2
    after=$(rss_kib $pid)
    total=$(cat /tmp/pyrometer-bench-cpu.time)
    python3 -c "print(f'  window $i: before {$before/1024:.1f}, peak during {$peak/1024:.1f} (+{($peak-$before)/1024:.1f}), after {$after/1024:.1f} (+{($after-$before)/1024:.1f}); last byte {$total - 30:.3f} s after the window')"
  done
  kill $pid; wait $pid 2>/dev/null || true
  trap - EXIT
done
