#!/usr/bin/env bash
# Benchmarks of the `pyrometer` command (figures for the viewer's closing note; not a test).
#
# 1. Rendering ~200,000 distinct folded stacks to SVG: `pyrometer flamegraph` against inferno's
#    own `inferno-flamegraph` (cargo install inferno) on the same file, runs alternated.
# 2. Decoding and rendering a pprof profile of 100,000 samples with deep stacks (64-128 frames).
#
# Wall time and peak memory come from /usr/bin/time -v; each figure is the median of RUNS runs
# (default 5). The machine is shared and noisy: compare the ratio, which comes from one run.
#
#   bash scripts/bench-viewer.sh            # RUNS=7 bash scripts/bench-viewer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
WORK=${WORK:-$(mktemp -d)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v inferno-flamegraph >/dev/null || { echo "needs inferno-flamegraph: cargo install inferno" >&2; exit 2; }

cargo build --release -q -p pyrometer-viewer
PYROMETER="$CARGO_TARGET_DIR/release/pyrometer"

python3 scripts/bench-viewer-make-stacks.py 200000 8 40 > "$WORK/large.folded"
python3 scripts/bench-viewer-make-stacks.py 100000 64 128 7 > "$WORK/deep.folded"
"$PYROMETER" convert "$WORK/deep.folded" --to pprof -o "$WORK/deep.pb.gz"
echo "inputs: $(wc -l < "$WORK/large.folded") stacks ($(du -h "$WORK/large.folded" | cut -f1)); $(wc -l < "$WORK/deep.folded") samples in pprof ($(du -h "$WORK/deep.pb.gz" | cut -f1) gzip)"

# Runs a command under /usr/bin/time -v; prints "SECONDS KIB".
measure() {
  /usr/bin/time -v "$@" 2> "$WORK/time.txt" > /dev/null || { cat "$WORK/time.txt" >&2; exit 2; }
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i] }
              /Maximum resident set size/ { kb = $2 }
              END { printf "%.3f %d\n", s, kb }' "$WORK/time.txt"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: > "$WORK/ours.txt"; : > "$WORK/inferno.txt"; : > "$WORK/ratio.txt"; : > "$WORK/deep.txt"
for run in $(seq "$RUNS"); do
  # Both write the SVG to standard output, which measure() discards.
  ours=$(measure "$PYROMETER" flamegraph "$WORK/large.folded" -o -)
  theirs=$(measure inferno-flamegraph "$WORK/large.folded")
  echo "$ours" >> "$WORK/ours.txt"; echo "$theirs" >> "$WORK/inferno.txt"
  echo "$ours $theirs" | awk '{ printf "%.3f %.3f\n", $1 / $3, $2 / $4 }' >> "$WORK/ratio.txt"
  measure "$PYROMETER" flamegraph "$WORK/deep.pb.gz" -o - >> "$WORK/deep.txt"
  echo "run $run: pyrometer $ours | inferno $theirs | deep pprof $(tail -1 "$WORK/deep.txt")"
done

col() { awk -v c="$2" '{ print $c }' "$1" | median; }
echo
echo "200,000 folded stacks -> SVG, median of $RUNS runs:"
printf '  pyrometer flamegraph   %6.3f s  %7d KiB\n' "$(col "$WORK/ours.txt" 1)" "$(col "$WORK/ours.txt" 2)"
printf '  inferno-flamegraph     %6.3f s  %7d KiB\n' "$(col "$WORK/inferno.txt" 1)" "$(col "$WORK/inferno.txt" 2)"
printf '  ratio (same run)       %6.3f x  %7.3f x   (goal: time <= 1.1x)\n' "$(col "$WORK/ratio.txt" 1)" "$(col "$WORK/ratio.txt" 2)"
echo "pprof, 100,000 samples of 64-128 frames -> SVG, median of $RUNS runs:"
printf '  pyrometer flamegraph   %6.3f s  %7d KiB\n' "$(col "$WORK/deep.txt" 1)" "$(col "$WORK/deep.txt" 2)"
