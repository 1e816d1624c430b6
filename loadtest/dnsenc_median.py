#!/usr/bin/env python3
"""Medians of a loadtest/dnsenc.sh run.

  loadtest/dnsenc_median.py STAMP-dnsenc.csv [--rate N] [--note TEXT]
  loadtest/dnsenc_median.py STAMP-dnsenc.csv --max VARIANT

The first form prints markdown, the medians over the repeats of each variant and load: the
maximum rate (phase "max") with the CPU per query there and how busy each core was; the CPU per
query at set rates, x25519's as a ratio to DoT's at the same rate (the median of the variants'
medians, and the median of the same-round ratios; the issue's floor is 1.5 at --rate, 20,000 by
default); the latency at each set rate; and the bytes per query and per answer on the wire,
outer and inner, with the share of queries answered TC=1 (asked again over TCP).

The second prints the median maximum qps of VARIANT, for dnsenc.sh to set phase 2's rates.
"""
import argparse
import csv
import sys

from controls_median import fmt, med, num

FLOOR = 1.5
ORDER = ["rsa2048", "rsa4096", "x25519", "dot", "udp"]
SCHEMES = ["rsa2048", "rsa4096", "x25519"]
# A run at a set rate that answered less than this share of it did not reach the rate.
REACHED = 0.95
# A core this busy (%) bounds the maximum.
FULL = 90


def qps_text(v):
    return "-" if v is None else f"{v:,.0f} qps"


def pct(v):
    return "-" if v is None else f"{v:.0f}%"


def column(rows, name):
    return med(num(r[name]) for r in rows)


def load_text(load):
    """What a set-rate load means, for the tables."""
    if load in ("50%", "90%"):
        return f"{load} of its max"
    if load.startswith("x25519-"):
        return f"{load[len('x25519-'):]} of x25519's max"
    if load == "rate":
        return "--rate"
    return load


def reached(rows):
    """'†' when the median run answered under REACHED of the rate it was asked for."""
    rate, qps = column(rows, "rate"), column(rows, "qps")
    return "" if not rate or qps is None or qps >= REACHED * rate else " †"


def ratio_rows(x_rows, d_rows):
    """x25519's CPU per query over DoT's: of the medians, and the median of the same-round ratios."""
    x, d = column(x_rows, "server_cpu_us_per_query"), column(d_rows, "server_cpu_us_per_query")
    dot_by_round = {r["repeat"]: num(r["server_cpu_us_per_query"]) for r in d_rows}
    rounds = [
        num(r["server_cpu_us_per_query"]) / dot_by_round[r["repeat"]]
        for r in x_rows
        if dot_by_round.get(r["repeat"]) and num(r["server_cpu_us_per_query"]) is not None
    ]
    return x, d, (x / d if x is not None and d else None), med(rounds)


def max_table(by):
    out = [
        "## Maximum rate on one worker (medians)",
        "",
        "As fast as the clients go: 20 `dotgate dnsenc load` clients with 10 queries in flight "
        "each (DNSENC), dnsperf with 100 connections or sockets and 1000 in flight (dot, udp). "
        "*Server µs/q* is dotgate's CPU per answered query (udp: Unbound's); *core 0* is how busy "
        "dotgate kept its core, *core 1* how busy Unbound and the client kept theirs. *Bound by*: "
        f"the core that was at least {FULL}% busy (dotgate's own limit only when it is core 0). "
        "*1 core ÷ CPU* = 10⁶ / server µs/q: the rate one core would give at that cost per query, "
        "an extrapolation where core 0 was not full (none for udp: Unbound shares its core with dnsperf).",
        "",
        "| variant | runs | max qps | server µs/q | core 0 busy | Unbound µs/q | client µs/q "
        "| core 1 busy | bound by | 1 core ÷ CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for v in [v for v in ORDER if (v, "max") in by]:
        rows = by[(v, "max")]
        cpu, busy, core1 = (column(rows, c) for c in ("server_cpu_us_per_query", "dotgate_busy_pct", "client_core_busy_pct"))
        if busy is not None and busy >= FULL:
            bound = "dotgate (core 0)"
        elif core1 is not None and core1 >= FULL:
            bound = "core 1: " + ("dnsperf + Unbound" if v in ("dot", "udp") else "the load tool + Unbound")
        else:
            bound = "neither core full (other work?)"
        out.append(
            f"| {v} | {len(rows)} | {fmt(column(rows, 'qps'), 0)} | {fmt(cpu)} | {pct(busy)} "
            f"| {fmt(column(rows, 'unbound_cpu_us_per_query'))} | {fmt(column(rows, 'client_cpu_us_per_query'))} "
            f"| {pct(core1)} | {bound} | {fmt(1e6 / cpu if cpu and v != 'udp' else None, 0)} |"
        )
    return out


def floor_table(by, rate):
    out = [
        "",
        f"## CPU per query at a set rate (floor: x25519 ≤ {FLOOR} × DoT at {rate:,} qps)",
        "",
        "dotgate's CPU per answered query (medians). *Ratio*: x25519's median over DoT's at the "
        "same rate; *per round*: the median of the ratios within each round. The RSA schemes cannot "
        f"reach {rate:,} qps on one core: theirs is at 90% of their own maximum.",
        "",
        "| variant | at | qps | dotgate µs/q | DoT µs/q at the same rate | ratio | per round "
        f"| ≤ {FLOOR} |",
        "|---|---|--:|--:|--:|--:|--:|:-:|",
    ]
    pairs = [("rate", "rate", f"{rate:,} qps (--rate)")]
    x90 = by.get(("x25519", "90%"))
    if x90:
        pairs.append(("90%", "x25519-90%", f"{qps_text(column(x90, 'rate'))} (90% of x25519's max)"))
    for x_load, d_load, text in pairs:
        x_rows, d_rows = by.get(("x25519", x_load)), by.get(("dot", d_load))
        if not d_rows:
            continue
        if not x_rows:
            d = column(d_rows, "server_cpu_us_per_query")
            top = column(by.get(("x25519", "max"), []), "qps")
            out.append(
                f"| x25519 | {text} | not measured: its maximum here ({qps_text(top)}) is under it | - | {fmt(d)} "
                "| - | - | - |"
            )
            continue
        x, d, ratio, per_round = ratio_rows(x_rows, d_rows)
        ok = "-" if ratio is None else ("yes" if ratio <= FLOOR else "**no**")
        out.append(
            f"| x25519 | {text} | {fmt(column(x_rows, 'qps'), 0)}{reached(x_rows)} | {fmt(x)} | {fmt(d)} "
            f"| {fmt(ratio, 2)} | {fmt(per_round, 2)} | {ok} |"
        )
    d_rows = by.get(("dot", "rate"))
    if d_rows:
        out.append(
            f"| dot | {rate:,} qps (--rate) | {fmt(column(d_rows, 'qps'), 0)}{reached(d_rows)} "
            f"| {fmt(column(d_rows, 'server_cpu_us_per_query'))} | | | | |"
        )
    for s in ("rsa2048", "rsa4096"):
        rows = by.get((s, "90%"))
        if rows:
            out.append(
                f"| {s} | {qps_text(column(rows, 'rate'))} (90% of its max) | {fmt(column(rows, 'qps'), 0)}{reached(rows)} "
                f"| {fmt(column(rows, 'server_cpu_us_per_query'))} | | | | |"
            )
    return out


def latency_table(by):
    out = [
        "",
        "## Latency at set rates (medians)",
        "",
        "Each DNSENC scheme at 50% and 90% of its own maximum; DoT and plain UDP at x25519's two "
        "rates, so that they compare at the same load (and DoT at --rate). DNSENC: the load "
        "tool's percentiles over every answer; DoT and UDP: dnsperf -v's, the first second left "
        "out. *Server µs/q*: dotgate's (udp: Unbound's).",
        "",
        "| variant | load | rate | qps | p50 ms | p99 ms | lost | server µs/q | core 1 busy |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    loads = ["50%", "x25519-50%", "90%", "x25519-90%", "rate"]
    keys = [k for k in by if k[1] != "max"]
    keys.sort(key=lambda k: (loads.index(k[1]) if k[1] in loads else 99, ORDER.index(k[0]) if k[0] in ORDER else 99))
    for v, load in keys:
        rows = by[(v, load)]
        out.append(
            f"| {v} | {load_text(load)} | {fmt(column(rows, 'rate'), 0)} "
            f"| {fmt(column(rows, 'qps'), 0)}{reached(rows)} | {fmt(column(rows, 'p50_ms'), 3)} "
            f"| {fmt(column(rows, 'p99_ms'), 3)} | {fmt(column(rows, 'queries_lost'), 0)} "
            f"| {fmt(column(rows, 'server_cpu_us_per_query'))} | {pct(column(rows, 'client_core_busy_pct'))} |"
        )
    return out


def bytes_table(rows_by_variant):
    out = [
        "",
        "## Bytes on the wire (medians over every run)",
        "",
        "Average DNS message per query and per answer: *outer* is what goes on the wire (the "
        "DNSENC envelope; for DoT the TLS records are not counted), *inner* the DNS message in it "
        "(for dot and udp: dnsperf's average packet size). *+* = outer − inner. A DNSENC inner query "
        "also carries an OPT record and the one-time answer key (an NSK record), hence its size over "
        "plain DNS's; plain UDP answers are smaller on average because Unbound truncates the large ones. *TC=1*: the share "
        "of queries answered truncated over UDP and asked again over TCP (with the query mix of "
        "common.sh's zone, about 1% of the answers over 1,232 bytes); DoT never truncates, and "
        "dnsperf -m udp counts a TC=1 answer as answered without asking again.",
        "",
        "| variant | query outer | query inner | query + | answer outer | answer inner | answer + | TC=1 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in [v for v in ORDER if v in rows_by_variant]:
        rows = rows_by_variant[v]

        def extra(outer, inner):
            return med(
                num(r[outer]) - num(r[inner]) for r in rows if num(r[outer]) is not None and num(r[inner]) is not None
            )

        tc = column(rows, "truncated_pct")
        out.append(
            f"| {v} | {fmt(column(rows, 'query_outer'))} | {fmt(column(rows, 'query_inner'))} "
            f"| {fmt(extra('query_outer', 'query_inner'))} | {fmt(column(rows, 'answer_outer'))} "
            f"| {fmt(column(rows, 'answer_inner'))} | {fmt(extra('answer_outer', 'answer_inner'))} "
            f"| {'-' if tc is None else f'{tc:.2f}%'} |"
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("csv", help="the run's STAMP-dnsenc.csv")
    parser.add_argument("--rate", type=int, default=20000, help="dnsenc.sh's --rate (default 20000)")
    parser.add_argument("--note", default="", help="a line under the title")
    parser.add_argument("--max", metavar="VARIANT", help="print VARIANT's median maximum qps, nothing else")
    opts = parser.parse_args()
    with open(opts.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    by, by_variant = {}, {}
    for r in rows:
        by.setdefault((r["variant"], r["load"]), []).append(r)
        by_variant.setdefault(r["variant"], []).append(r)

    if opts.max:
        top = column(by.get((opts.max, "max"), []), "qps")
        if top is None:
            return 1
        print(f"{top:.0f}")
        return 0

    out = ["# DNSENC on one worker: throughput, CPU and latency per scheme, beside DoT and plain UDP", ""]
    if opts.note:
        out += [opts.note, ""]
    out += max_table(by) + floor_table(by, opts.rate) + latency_table(by) + bytes_table(by_variant)
    if any(reached(rs) for k, rs in by.items() if k[1] != "max"):
        out += [
            "",
            f"† the median run answered under {REACHED:.0%} of the rate asked for: the load tool never makes "
            "up a sending slot it missed (a late wake-up, or every window full while dotgate is behind).",
        ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
