#!/usr/bin/env python3
"""Whether `go tool pprof -top` and `pyrometer top` show the same rows for a profile.

Usage: scripts/top-rows.py PYROMETER_BINARY PROFILE.pb.gz [...]

Rows are compared by function name with their flat (self) and cum (total) percentages, every row
of both (no cut-off). Prints the row counts and every row that differs.
"""

import re
import subprocess
import sys


def pct(text):
    return round(float(text.rstrip("%")), 2)


def go_rows(path):
    out = subprocess.run(
        ["go", "tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0", "-edgefraction=0", path],
        capture_output=True, text=True, check=True,
    ).stdout
    rows, table = {}, False
    for line in out.splitlines():
        if re.match(r"^\s+flat\s+flat%", line):
            table = True
            continue
        if table:
            parts = line.split(None, 5)
            if len(parts) == 6:
                # go marks a function seen (partly) inlined; the row is the same.
                name = re.sub(r" \((partial-)?inline\)$", "", parts[5])
                rows[name] = (pct(parts[1]), pct(parts[4]))
    return rows


def our_rows(binary, path):
    out = subprocess.run(
        [binary, "top", path, "-n", "0"], capture_output=True, text=True, check=True
    ).stdout
    rows = {}
    for line in out.splitlines()[2:]:
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=4)
        if len(parts) == 5:
            rows[parts[4]] = (pct(parts[1]), pct(parts[3]))
    return rows


def main():
    binary = sys.argv[1]
    for path in sys.argv[2:]:
        go, ours = go_rows(path), our_rows(binary, path)
        names = set(go) | set(ours)
        # Both round to two decimals, from values of different precision: 0.01 apart is equal.
        def same(a, b):
            return a is not None and b is not None and all(abs(x - y) <= 0.011 for x, y in zip(a, b))
        differ = sorted(n for n in names if not same(go.get(n), ours.get(n)))
        print(f"{path}: go tool pprof -top {len(go)} rows, pyrometer top {len(ours)} rows, "
              f"{len(differ)} differ")
        for name in differ[:20]:
            print(f"    {name[:100]}: go {go.get(name)}, pyrometer {ours.get(name)}")


if __name__ == "__main__":
    main()
