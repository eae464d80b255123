"""Removes the locations of the samples of one value from a gzip-compressed pprof profile,
leaving every other byte as it was: the stackless samples go tool pprof counts in its total."""
import gzip, sys

def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, i

def enc(v):
    out = bytearray()
    while True:
        x = v & 0x7f; v >>= 7
        if v: out.append(x | 0x80)
        else: out.append(x); return bytes(out)

def fields(b):
    i = 0
    while i < len(b):
        start = i
        key, i = varint(b, i)
        wt = key & 7
        if wt == 0: _, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i); i += n
        elif wt == 1: i += 8
        elif wt == 5: i += 4
        yield key >> 3, wt, b[start:i]

def body(raw):
    key, i = varint(raw, 0); n, i = varint(raw, i); return raw[i:i + n]

src, dst, value = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = gzip.decompress(open(src, 'rb').read())
out = bytearray()
for num, wt, raw in fields(data):
    if num == 2:
        sample = body(raw)
        vals = [f for f in fields(sample) if f[0] == 2]
        # One value: written unpacked (key, varint) by Go's runtime, or packed.
        only = None
        if len(vals) == 1 and vals[0][1] == 0:
            only = varint(vals[0][2], 1)[0]
        elif len(vals) == 1 and vals[0][1] == 2:
            packed = body(vals[0][2])
            v, end = varint(packed, 0)
            only = v if end == len(packed) else None
        if only == value:
            kept = b''.join(r for n, w, r in fields(sample) if n != 1)
            raw = enc(2 << 3 | 2) + enc(len(kept)) + kept
    out += raw
open(dst, 'wb').write(gzip.compress(bytes(out)))
