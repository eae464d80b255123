#!/usr/bin/env python3
"""How readable a profile's frames are, as go tool pprof reads them (`go tool pprof -raw`).

Usage: scripts/name-stats.py PROFILE.pb.gz [...]

For each profile, over every frame of every sample (inlined frames counted, each frame weighted by
its sample's first value): the share of frames named by a path (`a::b` outside generic arguments)
or a C symbol (no path, not from a `.rs` file), hex-named frames, frames named only by their object
(`[libc.so.6]`), the outermost address-0 frame, and the profiler's own frames. Prints one line per
profile, then each hex and unnamed frame with its weight.
"""

import re
import subprocess
import sys
from collections import Counter

PROFILER = re.compile(
    r"^<?(pyrometer::heap::(allocator|sampler|stack|table)|backtrace::|pprof::)"
    r"|perf_signal_handler|^_Unwind_|^__restore_rt$"
)
C_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@$]*$")


def has_path(name):
    depth, previous = 0, " "
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">" and previous != "-":
            depth = max(0, depth - 1)
        elif c == ":" and depth == 0 and previous == ":":
            return True
        previous = c
    return False


def parse_frame(text):
    """`NAME FILE:LINE s=N` (FILE may be empty) -> (name, file)."""
    text = re.sub(r" s=\d+(\(.*\))?$", "", text.strip())
    m = re.match(r"^(.*) (\S*):(-?\d+)$", text)
    return (m.group(1), m.group(2)) if m else (text, "")


def read(path):
    raw = subprocess.run(
        ["go", "tool", "pprof", "-raw", path], capture_output=True, text=True, check=True
    ).stdout
    samples, locations, section, current = [], {}, None, None
    for line in raw.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            section = line
            continue
        if section == "Samples:":
            m = re.match(r"^\s+(-?\d+)(?:\s+-?\d+)*:\s*(.*)$", line)
            if m:
                samples.append((int(m.group(1)), [int(x) for x in m.group(2).split()]))
        elif section == "Locations":
            m = re.match(r"^\s+(\d+): (0x[0-9a-f]+)(?: M=\d+)?\s*(.*)$", line)
            if m:
                current = int(m.group(1))
                address = int(m.group(2), 16)
                locations[current] = [(address,) + parse_frame(m.group(3))] if m.group(3) else [
                    (address, "", "")
                ]
            elif current is not None and line.strip():
                locations[current].append((locations[current][0][0],) + parse_frame(line))
    return samples, locations


def classify(address, name, file):
    if address == 0 and not name:
        return "fake"
    if not name or name.startswith("0x"):
        return "hex"
    if PROFILER.search(name):
        return "profiler"
    if has_path(name):
        return "path"
    if name.startswith("[") and name.endswith("]"):
        return "object"
    if C_SYMBOL.match(name) and not file.endswith(".rs"):
        return "c"
    return "short"


def main():
    for path in sys.argv[1:]:
        samples, locations = read(path)
        kinds, odd = Counter(), Counter()
        sample_total, sample_hex, sample_fake, sample_profiler = 0, 0, 0, 0
        for weight, locs in samples:
            weight = abs(weight)
            seen = set()
            for loc in locs:
                for frame in locations.get(loc, []):
                    kind = classify(*frame)
                    kinds[kind] += weight
                    seen.add(kind)
                    if kind in ("hex", "fake", "profiler", "short", "object"):
                        odd[(kind, frame[1] or hex(frame[0]), frame[2])] += weight
            sample_total += weight
            sample_hex += weight if "hex" in seen else 0
            sample_fake += weight if "fake" in seen else 0
            sample_profiler += weight if "profiler" in seen else 0
        frames = sum(kinds.values()) or 1
        named = (kinds["path"] + kinds["c"]) / frames
        total = sample_total or 1
        print(
            f"{path}: {frames} weighted frames; path or C symbol {100 * named:.2f}%"
            f" (short {100 * kinds['short'] / frames:.2f}%, object {100 * kinds['object'] / frames:.2f}%);"
            f" samples with a hex frame {100 * sample_hex / total:.2f}%, with a fake frame"
            f" {100 * sample_fake / total:.2f}%, with a profiler frame {100 * sample_profiler / total:.2f}%"
        )
        for (kind, name, file), weight in odd.most_common(15):
            print(f"    {kind:8} {100 * weight / frames:6.2f}%  {name[:110]}  {file[-60:]}")


if __name__ == "__main__":
    main()
