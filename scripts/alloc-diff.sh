#!/usr/bin/env bash
# Allocation diff for code review: builds two revisions in git worktrees, runs the same
# deterministic workloads under exact allocation counting in each, and prints a Markdown report
# ready for a pull-request comment, with a differential flame graph per workload beside it.
#
#   scripts/alloc-diff.sh BASE_REV [HEAD_REV]      # HEAD_REV defaults to HEAD
#
# Environment:
#   ALLOC_WORKLOAD        the command run inside each worktree, given an output directory; it
#                         writes one allocation profile per workload (pprof or dhat-heap.json).
#                         Default: this repository's own workloads (viewer/examples/alloc_workload.rs,
#                         the agent's allocator at sample rate 1, so counts are exact).
#   ALLOC_DIFF_CARGO      cargo flags for the default workload (default: --release)
#   ALLOC_DIFF_OUT        where profiles and SVGs go (default: target/alloc-diff)
#   ALLOC_DIFF_FAIL_ABOVE exit 1 when any workload's bytes grew by more than this percent
#   CARGO_TARGET_DIR      shared by both worktrees, so dependencies are compiled once
#
# Exit status: 0 report printed, 1 ALLOC_DIFF_FAIL_ABOVE exceeded, 2 error.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || $1 == -h || $1 == --help ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
BASE_REV=$1
HEAD_REV=${2:-HEAD}
REPO=$(git rev-parse --show-toplevel)
cd "$REPO"
base_sha=$(git rev-parse --verify --quiet "$BASE_REV^{commit}") || { echo "alloc-diff: unknown revision $BASE_REV" >&2; exit 2; }
head_sha=$(git rev-parse --verify --quiet "$HEAD_REV^{commit}") || { echo "alloc-diff: unknown revision $HEAD_REV" >&2; exit 2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
OUT=${ALLOC_DIFF_OUT:-$REPO/target/alloc-diff}
CARGO_FLAGS=${ALLOC_DIFF_CARGO---release}
WORKLOAD=${ALLOC_WORKLOAD:-cargo run -q $CARGO_FLAGS -p pyrometer-viewer --example alloc_workload --}
rm -rf "$OUT" && mkdir -p "$OUT/base" "$OUT/head"
TREES=$(mktemp -d)
cleanup() {
  for side in base head; do
    [[ -d $TREES/$side ]] && git worktree remove --force "$TREES/$side" >/dev/null 2>&1 || true
  done
  rm -rf "$TREES"
}
trap cleanup EXIT

for side in base head; do
  rev=$base_sha; [[ $side == head ]] && rev=$head_sha
  git worktree add --quiet --detach "$TREES/$side" "$rev"
  echo "alloc-diff: running the workloads at ${rev:0:12} ($side)" >&2
  (cd "$TREES/$side" && $WORKLOAD "$OUT/$side") >&2 || { echo "alloc-diff: the workload failed at $side ($rev)" >&2; exit 2; }
done

# The report is drawn by the head revision's pyrometer.
(cd "$TREES/head" && cargo build -q $CARGO_FLAGS -p pyrometer-viewer --bin pyrometer) >&2
profile_dir=debug; [[ " $CARGO_FLAGS " == *" --release "* ]] && profile_dir=release
PYROMETER=$CARGO_TARGET_DIR/$profile_dir/pyrometer

# `"key": number` from pyrometer's JSON report.
json_number() { sed -n "s/^  \"$1\": \\(-\\{0,1\\}[0-9.e+-]*\\),\\{0,1\\}\$/\\1/p" "$2"; }
signed() { awk -v b="$1" -v n="$2" 'BEGIN { d = n - b; p = (d == 0) ? "0%" : (b == 0) ? "new" : sprintf("%+.2f%%", d * 100 / b); printf "%+d (%s)", d, p }'; }

failed=0
echo "### Allocations: \`${BASE_REV}\` (${base_sha:0:10}) → \`${HEAD_REV}\` (${head_sha:0:10})"
echo
echo "Exact counts (every allocation recorded), so equal code gives a zero diff."
echo
echo "| workload | bytes base | bytes head | change | blocks base | blocks head | change |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
details=""
shopt -s nullglob
for base_file in "$OUT"/base/*; do
  name=$(basename "$base_file")
  head_file=$OUT/head/$name
  workload=${name%%.*}
  if [[ ! -e $head_file ]]; then
    echo "| $workload | (only in base) | | | | | |"
    continue
  fi
  "$PYROMETER" diff "$base_file" "$head_file" --sample-index alloc_space --format json -n 0 > "$OUT/$workload.bytes.json"
  "$PYROMETER" diff "$base_file" "$head_file" --sample-index alloc_objects --format json -n 0 > "$OUT/$workload.blocks.json"
  bb=$(json_number base_total "$OUT/$workload.bytes.json"); bn=$(json_number new_total "$OUT/$workload.bytes.json")
  kb=$(json_number base_total "$OUT/$workload.blocks.json"); kn=$(json_number new_total "$OUT/$workload.blocks.json")
  echo "| $workload | $bb | $bn | $(signed "$bb" "$bn") | $kb | $kn | $(signed "$kb" "$kn") |"
  if [[ $bb != "$bn" || $kb != "$kn" ]]; then
    "$PYROMETER" diff "$base_file" "$head_file" --sample-index alloc_space -o "$OUT/$workload.diff.svg" \
      --format markdown -n 10 > "$OUT/$workload.md" 2>/dev/null
    details+=$'\n'"<details><summary><b>$workload</b>: call sites that changed most (bytes); differential flame graph: <code>$OUT/$workload.diff.svg</code></summary>"$'\n\n'"$(cat "$OUT/$workload.md")"$'\n\n'"</details>"$'\n'
  fi
  if [[ -n ${ALLOC_DIFF_FAIL_ABOVE:-} ]] && awk -v b="$bb" -v n="$bn" -v p="$ALLOC_DIFF_FAIL_ABOVE" 'BEGIN { exit !((b == 0 && n > 0) || (b > 0 && (n - b) * 100 / b > p)) }'; then
    failed=1
  fi
done
for head_file in "$OUT"/head/*; do
  [[ -e $OUT/base/$(basename "$head_file") ]] || echo "| $(basename "${head_file%%.*}") | (only in head) | | | | | |"
done
printf '%s' "$details"
if [[ $failed == 1 ]]; then
  echo >&2 "alloc-diff: a workload's bytes grew by more than ${ALLOC_DIFF_FAIL_ABOVE}%"
  exit 1
fi
