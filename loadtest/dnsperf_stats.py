#!/usr/bin/env python3
"""Latency percentiles from `dnsperf -v` output.

  dnsperf_stats.py [--skip N] FILE

dnsperf 2.10 with -v prints one line per answered query on stdout:
    > NOERROR h00042.bench.test. A 0.000163
(rcode, the query line from the data file, latency in seconds), "> T ..." for a query that timed
out and "> I ..." for one still in flight when the run ended (both without a latency).

Prints one line: "p50_ms p99_ms p99.9_ms", nearest-rank percentiles over every answered query
("- - -" when there is none). --skip N leaves out the first N answers (in the order dnsperf
printed them, which is the order they arrived): compare.sh skips the first second's worth, when
dnsperf is still opening its TLS connections and every server's queries queue up behind the
handshakes, so that the percentiles describe the steady state.
"""
import math
import sys


def main():
    args = sys.argv[1:]
    skip = 0
    if len(args) == 3 and args[0] == "--skip":
        skip = int(args[1])
        args = args[2:]
    if len(args) != 1:
        print("usage: dnsperf_stats.py [--skip N] FILE", file=sys.stderr)
        return 2
    # Latencies in whole microseconds, counted: no need to keep (or sort) a million floats.
    counts = {}
    with open(args[0], "r", errors="replace") as f:
        for line in f:
            if not line.startswith("> "):
                continue
            parts = line.split()
            if len(parts) < 3 or parts[1] in ("T", "I"):
                continue
            try:
                us = int(round(float(parts[-1]) * 1e6))
            except ValueError:
                continue
            if skip > 0:
                skip -= 1
                continue
            counts[us] = counts.get(us, 0) + 1

    n = sum(counts.values())
    if n == 0:
        print("- - -")
        return 0
    keys = sorted(counts)
    out = []
    for q in (0.50, 0.99, 0.999):
        rank = max(1, math.ceil(q * n))
        seen = 0
        for k in keys:
            seen += counts[k]
            if seen >= rank:
                out.append("%.3f" % (k / 1000.0))
                break
    print(" ".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
