#!/usr/bin/env python3
"""Medians over several runs of loadtest/compare.sh, and dotgate's ratio to the best peer.

  loadtest/median.py STAMP [STAMP ...]      (e.g. 20261123T132745Z; run from the repo root)

Reads loadtest/results/STAMP-{queries,handshakes,idle}.csv and prints markdown: for every
measure the issue sets a floor on, each server's value per run and the median, the best peer
(the lowest CPU, latency or memory; the highest qps among the non-dotgate servers, by median),
and dotgate's median divided by the best peer's. A run that lacks a row (a scenario not run, a
server that failed) is left out of that median.
"""
import csv
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def rows(stamp, kind):
    path = os.path.join(HERE, "results", f"{stamp}-{kind}.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        # "held N of M: ..." is an idle-connection count that stopped at a limit (file
        # descriptors): still a valid measurement at N connections.
        return [r for r in csv.DictReader(f) if r.get("status", "ok") == "ok" or r.get("status", "").startswith("held ")]


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def collect(stamps, kind, match, field):
    """{variant: [value per run]} for the rows `match` accepts."""
    out = {}
    for stamp in stamps:
        for r in rows(stamp, kind):
            if match(r):
                value = number(r.get(field))
                if value is not None:
                    out.setdefault(r["variant"], []).append(value)
    return out


def line(title, values, lower_is_better, unit):
    """Markdown rows for one measure and dotgate's ratio to the best peer."""
    medians = {v: statistics.median(x) for v, x in values.items() if x}
    peers = {v: m for v, m in medians.items() if not v.startswith("dotgate")}
    ours = next((m for v, m in medians.items() if v.startswith("dotgate")), None)
    best = None
    if peers:
        best = (min if lower_is_better else max)(peers.items(), key=lambda kv: kv[1])
    out = [f"**{title}** ({unit})", "", "| server | runs | median |", "| --- | --- | ---: |"]
    for v, x in values.items():
        out.append(f"| {v} | {' / '.join(f'{y:g}' for y in x)} | {medians[v]:g} |")
    if ours is not None and best is not None and best[1]:
        out.append("")
        out.append(f"dotgate / best peer ({best[0]}): **{ours / best[1]:.2f}**")
    out.append("")
    return out


def main():
    stamps = sys.argv[1:]
    if not stamps:
        print(__doc__, file=sys.stderr)
        return 2
    out = [f"# Medians of {len(stamps)} runs: {', '.join(stamps)}", ""]

    def pinned(rate):
        return lambda r: r["scenario"] == "throughput" and r["rate"] == rate

    for rate, label in (("20000", "20,000 qps"), ("5000", "5,000 qps")):
        out += line(f"CPU per query at {label}", collect(stamps, "queries", pinned(rate), "cpu_us_per_query"),
                    True, "µs")
    out += line("p99 latency at 20,000 qps (steady state)",
                collect(stamps, "queries", pinned("20000"), "p99_ms"), True, "ms")
    out += line("p50 latency at 20,000 qps (steady state)",
                collect(stamps, "queries", pinned("20000"), "p50_ms"), True, "ms")
    out += line("max qps, pinned", collect(stamps, "queries", pinned("max"), "qps"), False, "queries/s")
    out += line("CPU per query at max qps, pinned", collect(stamps, "queries", pinned("max"), "cpu_us_per_query"),
                True, "µs")
    out += line("max qps, nothing pinned",
                collect(stamps, "queries", lambda r: r["scenario"] == "unpinned" and r["rate"] == "max", "qps"),
                False, "queries/s")
    for mode in ("full-tls1.3", "full-tls1.2", "resumed-tls1.3", "resumed-tls1.2"):
        out += line(f"CPU per handshake, {mode}",
                    collect(stamps, "handshakes", lambda r, m=mode: r["mode"] == m, "cpu_us_per_handshake"),
                    True, "µs")
        out += line(f"handshakes per second, {mode}",
                    collect(stamps, "handshakes", lambda r, m=mode: r["mode"] == m, "per_s"), False, "/s")
    for target in ("5000", "20000"):
        out += line(f"RSS per idle connection, {target} connections",
                    collect(stamps, "idle", lambda r, t=target: r["target"] == t, "bytes_per_conn"), True, "bytes")
    out += line("short connections: CPU per connection",
                collect(stamps, "queries", lambda r: r["scenario"] == "short", "cpu_us_per_conn"), True, "µs")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
