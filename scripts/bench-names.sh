#!/usr/bin/env bash
# Symbolization cost and frame names of the shop's profiles, this tree against a base revision.
#
# Usage: scripts/bench-names.sh [BASE_REV] [ROUNDS]   (default: the merge base with main, 3 rounds)
#
# Builds the shop (release profile) at both revisions, then, alternating base and head in each
# round, runs the shop under its own load generator and takes a 30-second CPU profile: the time
# from the end of the window to the last byte is the symbolization and encoding, and the peak
# resident memory above the memory just before the window ended is what building the profile
# costs. Prints each round, the medians and the head/base ratios, then scripts/name-stats.py on
# the last round's CPU, allocs and heap profiles of both (needs go tool pprof).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-$(git merge-base HEAD main)}
rounds=${2:-3}
out=target/names-bench
mkdir -p "$out"

# The base's build below links its own shop at the same path: never copy a stale one.
rm -f target/release/examples/shop
cargo build --release --locked --example shop
cp target/release/examples/shop "$out/shop-head"
git worktree remove --force "$out/base" 2>/dev/null || true
git worktree add --detach "$out/base" "$base"
# One target directory: the dependencies are built once; cargo links each build's binary anew.
(cd "$out/base" && cargo build --release --locked --example shop --target-dir "$OLDPWD/target")
cp target/release/examples/shop "$out/shop-base"
git worktree remove --force "$out/base"

agent=127.0.0.1:16161
shop=127.0.0.1:18181

# Peak VmRSS (KiB) of $1 while $2 runs, and VmRSS just before: "BEFORE PEAK".
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

run() { # variant round
  local variant=$1 round=$2
  PYROMETER_ADDR=$agent "$out/shop-$variant" --addr "$shop" >"$out/$variant.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do curl -sf "http://$agent/debug/pprof/" >/dev/null && break; sleep 0.2; done
  "$out/shop-head" --load "http://$shop" --seconds 45 --concurrency 4 >/dev/null 2>&1 &
  local load=$!
  sleep 2
  curl -sf -o "$out/$variant.cpu.pb.gz" -w '%{time_total}\n' \
    "http://$agent/debug/pprof/profile?seconds=30" >"$out/$variant.time" &
  local req=$!
  sleep 29.5
  local before peak now
  before=$(rss "$pid"); peak=$before
  while kill -0 "$req" 2>/dev/null; do
    now=$(rss "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.01
  done
  wait "$req"
  local after
  after=$(python3 -c "print(f'{$(cat "$out/$variant.time") - 30:.3f}')")
  echo "$variant round $round: ${after} s after the window, +$(((peak - before) / 1024)) MiB peak RSS" \
    | tee -a "$out/results"
  curl -sf -o "$out/$variant.allocs.pb.gz" "http://$agent/debug/pprof/allocs?seconds=5"
  curl -sf -o "$out/$variant.heap.pb.gz" "http://$agent/debug/pprof/heap"
  curl -sf -o "$out/$variant.cpu.svg" "http://$agent/debug/pprof/profile?seconds=5&format=svg"
  kill "$load" "$pid" 2>/dev/null || true
  wait "$load" "$pid" 2>/dev/null || true
}

: >"$out/results"
for round in $(seq "$rounds"); do
  run base "$round"
  run head "$round"
done

python3 - "$out/results" <<'EOF'
import re, statistics, sys
rows = [re.match(r"(\w+) round \d+: ([\d.-]+) s after the window, \+(-?\d+) MiB", l) for l in open(sys.argv[1])]
by = {}
for m in rows:
    by.setdefault(m.group(1), []).append((float(m.group(2)), int(m.group(3))))
med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for k, v in by.items()}
for k, (t, m) in med.items():
    times = sorted(t for t, _ in by[k])
    print(f"{k}: median {t:.3f} s after the window (range {times[0]:.3f}-{times[-1]:.3f}), median +{m} MiB peak RSS")
if "base" in med and "head" in med and med["base"][0] > 0:
    print(f"head/base: time {med['head'][0] / med['base'][0]:.2f}x, peak memory "
          f"{med['head'][1] / max(med['base'][1], 1):.2f}x")
EOF
for variant in base head; do
  python3 scripts/name-stats.py "$out/$variant.cpu.pb.gz" "$out/$variant.allocs.pb.gz" "$out/$variant.heap.pb.gz"
done
