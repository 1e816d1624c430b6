#!/usr/bin/env python3
"""Medians per variant of a loadtest/controls.sh run.

  loadtest/controls_median.py STAMP-controls.csv [--note TEXT]

Prints markdown: for each variant (plain, proxy, ecs, ratelimit) the median over its runs of
qps, lost queries, dotgate's CPU per answered query, Unbound's CPU per answered query, p50 and
p99 latency, and the rate-limited count (summed). dotgate's CPU/query is also given as a ratio
to plain's: the median of the variant divided by plain's median, and (less sensitive to drift,
as the runs are interleaved round-robin) the median over the repeats of the ratio to the plain
run of the same round. The issue's floor: each variant within +10% of plain (ratio <= 1.10).
"""
import csv
import statistics
import sys

FLOOR = 1.10
ORDER = ["plain", "proxy", "ecs", "ratelimit"]


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    args = sys.argv[1:]
    note = ""
    if "--note" in args:
        i = args.index("--note")
        note = args[i + 1]
        del args[i : i + 2]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    rows = list(csv.DictReader(open(args[0])))
    by = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    variants = [v for v in ORDER if v in by] + sorted(v for v in by if v not in ORDER)
    plain_cpu = {r["repeat"]: num(r["dotgate_cpu_us_per_query"]) for r in by.get("plain", [])}
    plain_med = med(plain_cpu.values())
    plain_ub = med(num(r["unbound_cpu_us_per_query"]) for r in by.get("plain", []))

    out = ["# dotgate's client-address options and per-client limits: cost per query", ""]
    if note:
        out += [note, ""]
    out += [
        "Medians per variant. CPU in µs per answered query; dotgate ratio = variant's median / "
        f"plain's (per round: median of the same-round ratios); floor: ratio ≤ {FLOOR:.2f}.",
        "",
        "| variant | runs | qps | lost | dotgate µs/q | ratio to plain | per-round ratio | ≤ 1.10 "
        "| Unbound µs/q | Unbound ratio | p50 ms | p99 ms | rate-limited |",
        "|---|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|--:|",
    ]
    for v in variants:
        rs = by[v]
        cpu = med(num(r["dotgate_cpu_us_per_query"]) for r in rs)
        ub = med(num(r["unbound_cpu_us_per_query"]) for r in rs)
        ratio = cpu / plain_med if cpu is not None and plain_med else None
        rounds = [
            num(r["dotgate_cpu_us_per_query"]) / plain_cpu[r["repeat"]]
            for r in rs
            if plain_cpu.get(r["repeat"]) and num(r["dotgate_cpu_us_per_query"]) is not None
        ]
        per_round = med(rounds)
        ub_ratio = ub / plain_ub if ub is not None and plain_ub else None
        ok = "-" if ratio is None else ("yes" if ratio <= FLOOR else "**no**")
        limited = sum(int(num(r["rate_limited"]) or 0) for r in rs)
        out.append(
            f"| {v} | {len(rs)} | {fmt(med(num(r['qps']) for r in rs), 0)} "
            f"| {fmt(med(num(r['queries_lost']) for r in rs), 0)} | {fmt(cpu)} | {fmt(ratio, 3)} "
            f"| {fmt(per_round, 3)} | {ok} | {fmt(ub)} | {fmt(ub_ratio, 3)} "
            f"| {fmt(med(num(r['p50_ms']) for r in rs), 3)} | {fmt(med(num(r['p99_ms']) for r in rs), 3)} "
            f"| {limited} |"
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
