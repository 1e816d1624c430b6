#!/usr/bin/env python3
"""How h2load's `--rps` load arrives, and what that does to latency, from its --log-file.

  h2load_bursts.py [--skip-s N] [--tsv] LOG

h2load paces each connection with a timer of its own that fires every 1/rps seconds and starts
the requests that came due (nghttp2's src/h2load.cc, rps_cb). The connections open together, so
their timers fire together: with compare.sh's settings (100 connections, --rps 200 each for
20,000 qps) all 100 connections start a request within a fraction of a millisecond, then none
for 5 ms. The server sees 100-request bursts, not an even stream, and a request's latency is
mostly its place in the queue its burst makes: the last of a burst waits for the server (and
whatever it relays to) to get through the 99 before it.

A burst here is a run of requests whose start times are less than 1 ms apart (the log's first
column, µs since the epoch). Prints one line:

  bursts B, size median S (p10 A, p90 Z), period median P ms; a burst's fastest request median
  F ms, its slowest median L ms (p90 K); overall p50 X, p99 Y ms

--tsv: the same numbers tab-separated (B S A Z P F L K X Y) for a script. --skip-s N leaves out
the first N seconds (default 1: the connections are still opening).
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnsperf_stats import h2load_entry  # noqa: E402  (the log's format, read in one place)

GAP_US = 1000


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main(argv):
    skip_s, tsv, path = 1.0, False, None
    args = iter(argv)
    for a in args:
        if a == "--skip-s":
            skip_s = float(next(args))
        elif a == "--tsv":
            tsv = True
        else:
            path = a
    if path is None:
        sys.exit(__doc__)
    with open(path, errors="replace") as log:
        rows = [entry for entry in map(h2load_entry, log) if entry]
    if not rows:
        sys.exit("no 200 responses in " + path)
    rows.sort()
    t0 = rows[0][0] + skip_s * 1e6
    rows = [r for r in rows if r[0] >= t0]
    bursts, current = [], [rows[0]]
    for prev, row in zip(rows, rows[1:]):
        if row[0] - prev[0] < GAP_US:
            current.append(row)
        else:
            bursts.append(current)
            current = [row]
    bursts.append(current)
    # The first and last bursts may be cut by the window.
    whole = bursts[1:-1] or bursts
    sizes = sorted(len(b) for b in whole)
    periods = [b[0][0] - a[0][0] for a, b in zip(whole, whole[1:])]
    # Each burst's fastest and slowest request: the first the server answered, and the last,
    # which waited for the whole burst to be served (h2load writes a burst's requests in its own
    # order, not in start order, so the place in the log says little).
    fastest = [min(lat for _, lat in b) for b in whole]
    slowest = sorted(max(lat for _, lat in b) for b in whole)
    lat = sorted(r[1] for r in rows)
    nums = (
        len(whole),
        statistics.median(sizes),
        pct(sizes, 0.1),
        pct(sizes, 0.9),
        statistics.median(periods) / 1000 if periods else float("nan"),
        statistics.median(fastest) / 1000,
        statistics.median(slowest) / 1000,
        pct(slowest, 0.9) / 1000,
        pct(lat, 0.5) / 1000,
        pct(lat, 0.99) / 1000,
    )
    if tsv:
        print("\t".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in nums))
    else:
        print(
            "bursts {}, size median {:g} (p10 {}, p90 {}), period median {:.2f} ms; a burst's "
            "fastest request median {:.3f} ms, its slowest median {:.3f} ms (p90 {:.3f}); overall "
            "p50 {:.3f}, p99 {:.3f} ms".format(*nums)
        )


if __name__ == "__main__":
    main(sys.argv[1:])
