#!/usr/bin/env bash
# Benchmarks of `pyrometer flamegraph` against inferno's own `inferno-flamegraph` (cargo install
# inferno --version 0.12.8), on the two shapes folded input comes in (figures for the README; not a
# test):
#
# - repeated stacks: a real perf file (testdata/folded/perf-pyrometer-rust.txt, 192 lines, 272 KB)
#   concatenated REPEATS times (default 4 40 400 2200: 1.1 MB to 600 MB), as when a collapser runs
#   over many recordings;
# - distinct stacks: DISTINCT stacks made by scripts/bench-viewer-make-stacks.py (default 2000 20000
#   200000: 1 MB to 100 MB; generating 600 MB takes this script's Python about 8 minutes).
#
# For each input, the two commands run alternately RUNS times (default 3); each run gives the ratio
# of CPU time (user + system) and of peak memory (max RSS), from /usr/bin/time. The table shows the
# median ratios with their range: the machine is shared and noisy, so the ratios, from side-by-side
# runs, mean more than the times. The pprof part decodes and renders 100,000 samples of 64-128
# frames (no inferno equivalent).
#
#   bash scripts/bench-viewer.sh      # RUNS=5 REPEATS="4 40" DISTINCT="2000" bash scripts/bench-viewer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
REPEATS=${REPEATS:-4 40 400 2200}
DISTINCT=${DISTINCT:-2000 20000 200000}
WORK=${WORK:-$(mktemp -d)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v inferno-flamegraph >/dev/null || { echo "needs inferno-flamegraph: cargo install inferno" >&2; exit 2; }

cargo build --release -q -p pyrometer-viewer
PYROMETER="$CARGO_TARGET_DIR/release/pyrometer"
PERF=testdata/folded/perf-pyrometer-rust.txt

# Runs a command under /usr/bin/time; prints "CPU_SECONDS MAX_RSS_KIB".
measure() {
  /usr/bin/time -f '%U %S %M' -o "$WORK/time.txt" "$@" > /dev/null 2> "$WORK/err.txt" \
    || { cat "$WORK/err.txt" >&2; exit 2; }
  awk '{ printf "%.3f %d\n", $1 + $2, $3 }' "$WORK/time.txt"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }

# Compares the two renderers on one file; prints one row of the table.
compare() {
  local label=$1 file=$2
  : > "$WORK/rows.txt"
  for run in $(seq "$RUNS"); do
    ours=$(measure "$PYROMETER" flamegraph "$file" -o -)
    theirs=$(measure inferno-flamegraph "$file")
    echo "$ours $theirs" >> "$WORK/rows.txt"
  done
  local cpu mem cpu_ratio
  # /usr/bin/time counts CPU in 10 ms steps: a run under that has no ratio.
  cpu=$(awk '$3 > 0 { print $1 / $3 }' "$WORK/rows.txt")
  mem=$(awk '{ print $2 / $4 }' "$WORK/rows.txt")
  if [ -n "$cpu" ]; then
    cpu_ratio=$(printf '%5.2fx (%s)' "$(echo "$cpu" | median)" "$(echo "$cpu" | range)")
  else
    cpu_ratio="n/a (< 10 ms)"
  fi
  printf '%-34s %6s  %8.2f s %8.2f s  %-18s  %6d MiB %6d MiB  %5.2fx (%s)\n' \
    "$label" "$(du -h "$file" | cut -f1)" \
    "$(awk '{ print $1 }' "$WORK/rows.txt" | median)" "$(awk '{ print $3 }' "$WORK/rows.txt" | median)" \
    "$cpu_ratio" \
    "$(( $(awk '{ print $2 }' "$WORK/rows.txt" | median | cut -d. -f1) / 1024 ))" \
    "$(( $(awk '{ print $4 }' "$WORK/rows.txt" | median | cut -d. -f1) / 1024 ))" \
    "$(echo "$mem" | median)" "$(echo "$mem" | range)"
}

echo "pyrometer flamegraph against inferno-flamegraph; medians of $RUNS alternating runs (ratio range in brackets)"
printf '%-34s %6s  %10s %10s  %-18s  %10s %10s  %s\n' input size "CPU ours" inferno "CPU ratio" "RSS ours" inferno "RSS ratio"
for n in $REPEATS; do
  file="$WORK/repeated-$n.folded"
  [ -s "$file" ] || for _ in $(seq "$n"); do cat "$PERF"; done > "$file"
  compare "perf file x$n (repeated stacks)" "$file"
  rm -f "$file"
done
for n in $DISTINCT; do
  file="$WORK/distinct-$n.folded"
  [ -s "$file" ] || python3 scripts/bench-viewer-make-stacks.py "$n" 8 40 > "$file"
  compare "$n distinct stacks" "$file"
done

python3 scripts/bench-viewer-make-stacks.py 100000 64 128 7 > "$WORK/deep.folded"
"$PYROMETER" convert "$WORK/deep.folded" --to pprof -o "$WORK/deep.pb.gz"
: > "$WORK/deep.txt"
for run in $(seq "$RUNS"); do measure "$PYROMETER" flamegraph "$WORK/deep.pb.gz" -o - >> "$WORK/deep.txt"; done
printf 'pprof, 100,000 samples of 64-128 frames: %.2f s CPU, %d MiB (medians)\n' \
  "$(awk '{ print $1 }' "$WORK/deep.txt" | median)" "$(( $(awk '{ print $2 }' "$WORK/deep.txt" | median | cut -d. -f1) / 1024 ))"
