#!/usr/bin/env python3
"""Medians over several runs of loadtest/compare.sh, and dotgate's ratio to the best peer.

  loadtest/median.py [--doh] RUN [RUN ...]

RUN is a run's stamp (e.g. 20261123T132745Z) or any of its result files (STAMP.json,
STAMP-queries.csv, ...; the stamp is taken from the name). Reads
loadtest/results/STAMP-{queries,handshakes,idle}.csv and prints markdown: for every measure the
issue sets a floor on, each server's value per run and the median, the best peer (the lowest
CPU, latency or memory; the highest qps among the peers, by median; every dotgate setting,
dotgate and dotgate-linger, is ours, never a peer), and each dotgate setting's median divided by
the best peer's. Then dotgate's own counters per answered query (wake-ups, lingers, TC-fallback
and direct-TCP shares), for the dotgate settings only, without a ratio. A run that lacks a row
or a column (a scenario not run, a server that failed, a run older than the column) is left
out of that median.

DNS over HTTPS (compare.sh --doh): when the runs have DoH rows, issue 18's figures follow, per
server and client (dnsperf, h2load): the median of each run's values (report.py's
doh_measures), dotgate-doh's ratio to the best DoH peer against the issue's floors (a peer whose
client lost over 5% of its queries is no best peer), and dotgate-doh against dotgate's
own DoT. --doh: only that part.
"""
import csv
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402  (doh_measures, doh_tables)


def stamp_of(arg):
    """A run's stamp from its stamp or the name of one of its result files."""
    name = os.path.basename(arg)
    for suffix in (".json", "-queries.csv", "-handshakes.csv", "-idle.csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def ours(variant):
    """dotgate in any of its settings ("dotgate --workers 1", "... --coalesce-window 0.0002")."""
    return variant.startswith("dotgate")


def rows(stamp, kind, every=False):
    path = os.path.join(HERE, "results", f"{stamp}-{kind}.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        # "held N of M: ..." is an idle-connection count that stopped at a limit (file
        # descriptors): still a valid measurement at N connections.
        return [r for r in csv.DictReader(f)
                if every or r.get("status", "ok") == "ok" or r.get("status", "").startswith("held ")]


def doh_part(stamps):
    """Issue 18's DoH figures over the runs: medians per (server, client) and measure."""
    per_run = {}
    for stamp in stamps:
        for key, measures in report.doh_measures(rows(stamp, "queries", True), rows(stamp, "idle", True)).items():
            for meas, value in measures.items():
                if value is not None:
                    per_run.setdefault(key, {}).setdefault(meas, []).append(value)
    if not per_run:
        return []
    medians = {k: {m: statistics.median(v) for m, v in ms.items()} for k, ms in per_run.items()}
    out = ["## DNS over HTTPS: medians (each run's value in brackets)", ""]
    report.doh_tables(medians, out, per_run)
    return out


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def collect(stamps, kind, match, field, scale=1.0):
    """{variant: [value per run]} for the rows `match` accepts (times `scale`)."""
    out = {}
    for stamp in stamps:
        for r in rows(stamp, kind):
            if match(r):
                value = number(r.get(field))
                if value is not None:
                    out.setdefault(r["variant"], []).append(value * scale)
    return out


def line(title, values, lower_is_better, unit, ratio=True):
    """Markdown rows for one measure and, with `ratio`, each dotgate setting's ratio to the best
    peer."""
    if not values:
        return [f"**{title}** ({unit}): not in these runs", ""]
    medians = {v: statistics.median(x) for v, x in values.items() if x}
    peers = {v: m for v, m in medians.items() if not ours(v)}
    best = None
    if peers:
        best = (min if lower_is_better else max)(peers.items(), key=lambda kv: kv[1])
    out = [f"**{title}** ({unit})", "", "| server | runs | median |", "| --- | --- | ---: |"]
    for v, x in values.items():
        out.append(f"| {v} | {' / '.join(f'{y:g}' for y in x)} | {medians[v]:g} |")
    if ratio and best is not None and best[1]:
        mine = [(v, m) for v, m in medians.items() if ours(v)]
        if mine:
            out.append("")
        for v, m in mine:
            # One line each (a trailing double space is a markdown line break).
            out.append(f"{v} / best peer ({best[0]}): **{m / best[1]:.2f}**  ")
    out.append("")
    return out


def main():
    args = sys.argv[1:]
    doh_only = "--doh" in args
    stamps = [stamp_of(a) for a in args if a != "--doh"]
    if not stamps:
        print(__doc__, file=sys.stderr)
        return 2
    out = [f"# Medians of {len(stamps)} runs: {', '.join(stamps)}", ""]
    if doh_only:
        out += doh_part(stamps) or ["No DoH rows in these runs (loadtest/compare.sh --doh)."]
        print("\n".join(out))
        return 0

    def pinned(rate):
        return lambda r: r["scenario"] == "throughput" and r["rate"] == rate

    for rate, label in (("20000", "20,000 qps"), ("5000", "5,000 qps")):
        out += line(f"CPU per query at {label}", collect(stamps, "queries", pinned(rate), "cpu_us_per_query"),
                    True, "µs")
    for rate, label in (("20000", "20,000 qps"), ("5000", "5,000 qps")):
        for field, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            out += line(f"{name} latency at {label} (steady state)",
                        collect(stamps, "queries", pinned(rate), field), True, "ms")
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
                    collect(stamps, "idle", lambda r, t=target: r["target"] == t and r.get("scenario", "idle") == "idle",
                            "bytes_per_conn"), True, "bytes")
    out += line("short connections: CPU per connection",
                collect(stamps, "queries", lambda r: r["scenario"] == "short", "cpu_us_per_conn"), True, "µs")

    # dotgate's own counters (its admin endpoint), per answered query: ours only, no ratio.
    def ours_at(rate):
        return lambda r: pinned(rate)(r) and ours(r["variant"])

    for rate, label in (("20000", "20,000 qps"), ("5000", "5,000 qps"), ("max", "max qps")):
        out += line(f"dotgate: worker wake-ups per query at {label}",
                    collect(stamps, "queries", ours_at(rate), "wakeups_per_query"), True, "per answer", False)
        out += line(f"dotgate: lingers per query at {label}",
                    collect(stamps, "queries", ours_at(rate), "lingers_per_query"), True, "per answer", False)
        out += line(f"dotgate: TC fallbacks at {label}",
                    collect(stamps, "queries", ours_at(rate), "tc_fallback_share", 100), True, "% of answers", False)
        out += line(f"dotgate: queries sent straight over TCP at {label}",
                    collect(stamps, "queries", ours_at(rate), "tcp_direct_share", 100), True, "% of answers", False)
    out += doh_part(stamps)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
