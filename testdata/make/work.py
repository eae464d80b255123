"""A small CPU-bound program for profilers: parses, hashes and sorts records."""
import hashlib
import json


def make_records(n):
    return [{"id": i, "name": f"item-{i}", "tags": [str(i % 7), str(i % 11)]} for i in range(n)]


def encode(records):
    return [json.dumps(r, sort_keys=True) for r in records]


def digest(lines):
    return sorted(hashlib.sha256(l.encode()).hexdigest() for l in lines)


def main():
    for _ in range(30):
        records = make_records(20000)
        digest(encode(records))


if __name__ == "__main__":
    main()
