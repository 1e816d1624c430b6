#!/usr/bin/env python3
"""Latency percentiles from `dnsperf -v` output (or h2load's --log-file).

  dnsperf_stats.py [--skip N] [--h2load] FILE

dnsperf 2.10 with -v prints one line per answered query on stdout:
    > NOERROR h00042.bench.test. A 0.000163
(rcode, the query line from the data file, latency in seconds), "> T ..." for a query that timed
out and "> I ..." for one still in flight when the run ended (both without a latency).

Prints one line: "p50_ms p99_ms p99.9_ms", nearest-rank percentiles over every answered query
("- - -" when there is none). --skip N leaves out the first N answers (in the order dnsperf
printed them, which is the order they arrived): compare.sh skips the first second's worth, when
dnsperf is still opening its TLS connections and every server's queries queue up behind the
handshakes, so that the percentiles describe the steady state.

--h2load: FILE is h2load's --log-file instead (loadtest/compare.sh's DoH runs): one line per
request, tab-separated: start time (µs since the epoch), HTTP status (-1 for a failed stream),
µs until the end of the response; in the order the responses ended (h2load -t 1). Only status
200 counts as an answer.
"""
import math
import sys


def dnsperf_us(line):
    """An answered query's latency in µs from a dnsperf -v line, else None."""
    if not line.startswith("> "):
        return None
    parts = line.split()
    if len(parts) < 3 or parts[1] in ("T", "I"):
        return None
    try:
        return int(round(float(parts[-1]) * 1e6))
    except ValueError:
        return None


def h2load_entry(line):
    """(start µs since the epoch, latency µs) of a 200 response from an h2load --log-file line,
    else None (h2load_bursts.py reads the start times too)."""
    parts = line.split("\t")
    if len(parts) < 3 or parts[1] != "200":
        return None
    try:
        return int(parts[0]), int(parts[2])
    except ValueError:
        return None


def h2load_us(line):
    """A 200 response's latency in µs from an h2load --log-file line, else None."""
    entry = h2load_entry(line)
    return entry and entry[1]


def main():
    args = sys.argv[1:]
    skip = 0
    h2load = False
    if len(args) >= 3 and args[0] == "--skip":
        skip = int(args[1])
        args = args[2:]
    if args and args[0] == "--h2load":
        h2load = True
        args = args[1:]
    if len(args) != 1:
        print("usage: dnsperf_stats.py [--skip N] [--h2load] FILE", file=sys.stderr)
        return 2
    # Latencies in whole microseconds, counted: no need to keep (or sort) a million floats.
    counts = {}
    with open(args[0], "r", errors="replace") as f:
        for line in f:
            us = h2load_us(line) if h2load else dnsperf_us(line)
            if us is None:
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
