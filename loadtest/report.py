#!/usr/bin/env python3
"""Turn the CSVs of one loadtest/compare.sh run into latest.md (one table per scenario) and a
JSON file with everything (what plot.py draws).

  report.py --meta META.tsv --queries Q.csv --handshakes H.csv --idle I.csv --json OUT.json --md OUT.md
"""
import argparse
import csv
import json
import os
import sys

HS_MODES = [
    ("full-tls1.3", "full TLS 1.3"),
    ("full-tls1.2", "full TLS 1.2"),
    ("resumed-tls1.3", "resumed TLS 1.3"),
    ("resumed-tls1.2", "resumed TLS 1.2"),
]


def num(v):
    """CSV text to a number where it is one."""
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f


def typed(rows):
    return [{k: num(v) for k, v in r.items()} for r in rows]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    return meta


def fmt(v, spec="{:,.0f}"):
    if v in (None, ""):
        return ""
    try:
        return spec.format(float(v))
    except ValueError:
        return str(v)


def bold(text):
    return f"**{text}**" if text else ""


def cpu_cell(r):
    if not r["server_cpu_s"]:
        return ""
    return f"{float(r['server_cpu_s']):.2f} ({r['server_cpu_pct']}%)"


def lost_cell(r):
    return f"{r['queries_lost']} ({r['lost_pct']}%)" if r["queries_lost"] else ""


def lat_cell(r):
    parts = [r["avg_latency_ms"], r["p50_ms"], r["p99_ms"], r["p999_ms"]]
    if not any(parts):
        return ""
    return " / ".join(p or "–" for p in parts)


def ours(server):
    """dotgate in any of its settings (dotgate, dotgate-linger): never a peer."""
    return (server or "").startswith("dotgate")


def counters_cell(r):
    """dotgate's wake-ups / lingers per answered query (its own counters; empty for the peers
    and for runs older than these columns)."""
    w, l = r.get("wakeups_per_query") or "", r.get("lingers_per_query") or ""
    if not w and not l:
        return ""
    return f"{fmt(w, '{:.3f}') or '–'} / {fmt(l, '{:.3f}') or '–'}"


def tcp_share_cell(r):
    """dotgate's share of queries asked again over TCP after a truncated UDP answer, and of
    queries sent straight over TCP, in % ("–" when its binary has no such counter)."""
    tc, direct = r.get("tc_fallback_share") or "", r.get("tcp_direct_share") or ""
    if not tc and not direct:
        return ""
    pct = lambda v: fmt(float(v) * 100, "{:.2f}") if v else "–"
    return f"{pct(tc)} / {pct(direct)}"


# ---- DNS over HTTPS (issue 18's figures) ---------------------------------------------------------
# The measures the issue sets floors on, per (server, client): (key, label, lower is better,
# floor for dotgate-doh / the best DoH peer, or None).
DOH_MEASURES = [
    ("cpu5k", "CPU µs/query at 5k", True, 0.7),
    ("cpu20k", "CPU µs/query at 20k", True, 0.7),
    ("maxqps", "max qps", False, 1.0),
    ("p50", "p50 ms at 20k", True, None),
    ("p99", "p99 ms at 20k", True, 0.7),
    ("loss", "worst loss %", True, None),
    ("rss", "RSS bytes per idle h2 conn", True, 0.5),
]
# A peer whose client lost more than this (in % of its queries, at any rate) is no measure of
# the server: it is never the "best peer" (dnsperf against servers that coalesce responses loses
# 65-85%). dnsdist's own failures under h2load (502 for a backend answer that did not come in
# time, about 1% at max in the first second's burst) are the server's: they stay in, in the loss
# column.
DOH_MAX_LOSS = 5.0
DOH_OURS = "dotgate-doh"
DOH_DOT = "dotgate"


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def doh_measures(q, idle):
    """{(server, client): {measure: value}} from one run's rows: the doh-throughput rows (every
    DoH server, and dotgate's DoT) and the doh-idle rows (at 5,000 connections, else the most
    measured), rss copied to every client of the server."""
    out = {}
    for r in q:
        if r.get("scenario") != "doh-throughput" or r.get("status") != "ok":
            continue
        m = out.setdefault((r["server"], r.get("client") or "dnsperf"), {})
        rate = r["rate"]
        if rate == "5000":
            m["cpu5k"] = fnum(r["cpu_us_per_query"])
        elif rate == "20000":
            m["cpu20k"] = fnum(r["cpu_us_per_query"])
            m["p50"] = fnum(r["p50_ms"])
            m["p99"] = fnum(r["p99_ms"])
        elif rate == "max":
            m["maxqps"] = fnum(r["qps"])
        loss = fnum(r["lost_pct"])
        if loss is not None:
            m["loss"] = max(loss, m.get("loss", 0.0))
    rss = {}
    for r in idle:
        if r.get("scenario") != "doh-idle" or not (r.get("status") == "ok" or r.get("status", "").startswith("held ")):
            continue
        t, v = fnum(r["target"]), fnum(r["bytes_per_conn"])
        if t is None or v is None:
            continue
        best = rss.get(r["server"])
        if best is None or (best[0] != 5000 and (t == 5000 or t > best[0])):
            rss[r["server"]] = (t, v)
    for server, (_, v) in rss.items():
        keys = [k for k in out if k[0] == server] or [(server, "dotclient.py")]
        for k in keys:
            out.setdefault(k, {})["rss"] = v
    return out


def doh_tables(values, out, runs=None):
    """Markdown: every (server, client)'s measures (with `runs`, {key: {measure: [per run]}},
    the per-run values beside each median), then dotgate-doh's ratio to the best DoH peer per
    client, against the issue's floors, then dotgate-doh against dotgate's own DoT."""
    def cell(key, meas):
        v = values.get(key, {}).get(meas)
        if v is None:
            return ""
        text = f"{v:,.1f}" if meas != "maxqps" and meas != "rss" else f"{v:,.0f}"
        if runs and runs.get(key, {}).get(meas):
            text += " (" + " / ".join(f"{x:g}" for x in runs[key][meas]) + ")"
        return text

    order = ["dotgate-doh", "unbound-doh", "dnsdist-doh", "dnsdist-doh-tuned", "dotgate"]
    keys = sorted(values, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[0], k[1]))
    out.append("| server | client | " + " | ".join(m[1] for m in DOH_MEASURES) + " |")
    out.append("| --- | --- |" + " ---: |" * len(DOH_MEASURES))
    for k in keys:
        label = f"{k[0]} (DoT)" if k[0] == DOH_DOT else k[0]
        out.append(f"| {label} | {k[1]} | " + " | ".join(cell(k, m[0]) for m in DOH_MEASURES) + " |")
    out.append("")
    clients = sorted({k[1] for k in keys if k[0] == DOH_OURS})
    for client in clients:
        ours = values.get((DOH_OURS, client), {})
        if (ours.get("loss") or 0) > DOH_MAX_LOSS:
            out.append(f"**{DOH_OURS} / best DoH peer, client {client}**: no ratios, {DOH_OURS} itself lost "
                       f"{ours['loss']:.1f}% of the queries with this client.")
            out.append("")
            continue
        peers = {k[0]: v for k, v in values.items()
                 if k[1] == client and not k[0].startswith("dotgate")
                 and (v.get("loss") is None or v["loss"] <= DOH_MAX_LOSS)}
        dropped = sorted(k[0] for k, v in values.items() if k[1] == client and not k[0].startswith("dotgate")
                         and k[0] not in peers)
        out.append(f"**{DOH_OURS} / best DoH peer, client {client}**"
                   + (f" (left out as peers: {', '.join(dropped)}: lost over {DOH_MAX_LOSS:g}% of the queries)"
                      if dropped else ""))
        out.append("")
        out.append("| measure | dotgate-doh | best peer | ratio | floor | |")
        out.append("| --- | ---: | --- | ---: | ---: | --- |")
        for meas, label, lower, floor in DOH_MEASURES:
            if meas == "loss":
                continue
            cand = [(v[meas], s) for s, v in peers.items() if v.get(meas) is not None]
            mine = ours.get(meas)
            if not cand or mine is None:
                out.append(f"| {label} | {'' if mine is None else f'{mine:,.1f}'} | (none) | | "
                           f"{'' if floor is None else ('≤' if lower else '≥') + f' {floor:g}'} | |")
                continue
            best = (min if lower else max)(cand)
            ratio = mine / best[0] if best[0] else None
            verdict = ""
            if floor is not None and ratio is not None:
                verdict = "met" if (ratio <= floor if lower else ratio >= floor) else "**not met**"
            out.append(f"| {label} | {mine:,.1f} | {best[1]} {best[0]:,.1f} | "
                       f"{'' if ratio is None else f'{ratio:.2f}'} | "
                       f"{'' if floor is None else ('≤' if lower else '≥') + f' {floor:g}'} | {verdict} |")
        out.append("")
    dot = next((v for k, v in values.items() if k[0] == DOH_DOT), None)
    if dot:
        out.append(f"**{DOH_OURS} / dotgate's own DoT (dnsperf -m dot, same rates and counts): what HTTP costs**")
        out.append("")
        out.append("| client (DoH) | " + " | ".join(m[1] for m in DOH_MEASURES if m[0] != "loss") + " |")
        out.append("| --- |" + " ---: |" * (len(DOH_MEASURES) - 1))
        for client in clients:
            ours = values.get((DOH_OURS, client), {})
            if (ours.get("loss") or 0) > DOH_MAX_LOSS:
                out.append(f"| {client} | " + " | ".join(["(lost {:.0f}%)".format(ours["loss"])]
                                                         + [""] * (len(DOH_MEASURES) - 2)) + " |")
                continue
            cells = []
            for meas, _, _, _ in DOH_MEASURES:
                if meas == "loss":
                    continue
                a, b = ours.get(meas), dot.get(meas)
                cells.append(f"{a / b:.2f}" if a is not None and b else "")
            out.append(f"| {client} | " + " | ".join(cells) + " |")
        out.append("")


def queries_table(rows, out):
    out.append("| server | offered qps | answered qps | lost | latency ms: avg / p50 / p99 / p99.9 "
               "| server CPU s (% of a core) | CPU µs/query | backend µs/query | backend TCP conns "
               "| wake-ups / lingers per query | TC fallback / direct TCP share % | status |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        out.append(f"| {r['variant']} | {r['rate']} | {fmt(r['qps'])} | {lost_cell(r)} | {lat_cell(r)} | "
                   f"{cpu_cell(r)} | {r['cpu_us_per_query']} | {r['backend_cpu_us_per_query']} | "
                   f"{r['backend_tcp_peak'] or ('UDP' if ours(r['server']) and r['qps'] else '')} | "
                   f"{counters_cell(r)} | {tcp_share_cell(r)} | {r['status']} |")


def main():
    p = argparse.ArgumentParser()
    for a in ("meta", "queries", "handshakes", "idle", "json", "md"):
        p.add_argument("--" + a, required=True)
    a = p.parse_args()
    meta = read_meta(a.meta)
    q = read_csv(a.queries)
    h = read_csv(a.handshakes)
    idle = read_csv(a.idle)

    with open(a.json, "w") as f:
        json.dump({"meta": meta, "queries": typed(q), "handshakes": typed(h), "idle": typed(idle)}, f, indent=1)

    m = meta
    out = []
    dot_run = any(r["scenario"] != "doh-throughput" for r in q) or h or any(
        r.get("scenario", "idle") == "idle" for r in idle)
    doh_run = any(r["scenario"] == "doh-throughput" for r in q) or any(r.get("scenario") == "doh-idle" for r in idle)
    out.append("# " + " and ".join((["DoT load test: dotgate vs dnsdist, nginx and HAProxy"] if dot_run else [])
                                   + (["DoH load test: dotgate vs Unbound and dnsdist"] if doh_run else [])))
    out.append("")
    out.append(f"Run {m['stamp']} by `loadtest/compare.sh` in {int(m['elapsed_s']) // 60} min "
               f"{int(m['elapsed_s']) % 60} s (raw numbers: `{os.path.basename(a.queries)}`, "
               f"`{os.path.basename(a.handshakes)}`, `{os.path.basename(a.idle)}`, `{os.path.basename(a.json)}`"
               + ("; plot: [`latest.png`](latest.png))." if dot_run else ")."))
    out.append("")
    out.append(f"- Machine: {m['machine']}; CPU busy before the run: {m['busy_start']}%")
    out.append(f"- Backend: Unbound {m['unbound']}, 1 thread, {int(m['names']):,} names from local data "
               f"(A, AAAA for every 4th, TXT for every 10th; {int(m['nbig']):,} TXT answers of 1.25–1.85 kB, "
               f"over 1,232 bytes), incoming-num-tcp {m['incoming_tcp']}, on core {m['backend_cpu']}")
    out.append(f"- Clients on core {m['client_cpu']}: dnsperf {m['dnsperf']} -m dot -v "
               f"({int(m['nqueries']):,} distinct queries, about 1% of them large), "
               f"openssl {m['openssl']} s_time, `loadtest/dotclient.py` (Python ssl)"
               + (f"; DoH: dnsperf -m doh, h2load {m.get('h2load')}" if doh_run else ""))
    out.append(f"- Server under test on core {m['server_cpu']} unless said otherwise; the same ECDSA P-256 "
               f"certificate everywhere; dotgate {m['dotgate']}; file descriptors per process: {m['fd_limit']}")
    out.append("- CPU = the server's user+system time (all its processes and threads, /proc/PID/stat) "
               "during the measurement, divided by answered queries, connections or handshakes")
    if m.get("busy_note"):
        out.append(f"- **{m['busy_note']}**")
    peaks = [int(r["backend_tcp_peak"]) for r in q if r["backend_tcp_peak"]]
    if peaks:
        out.append(f"- Unbound not starved: the TCP-relaying servers opened at most {max(peaks):,} connections to it "
                   f"at once (incoming-num-tcp {int(m['incoming_tcp']):,}; Unbound shortens its TCP idle timeout only "
                   f"past half of that); Unbound logged {m.get('unbound_warnings') or 0} warning or error lines")
    if m.get("unbound_warnings", "0") not in ("", "0"):
        out.append(f"- **Unbound logged {m['unbound_warnings']} warning or error lines: see its log (--keep).**")
    out.append("")

    def section(title, text, rows, table):
        if not rows:
            return
        out.append(f"## {title}")
        out.append("")
        if text:
            out.append(text)
            out.append("")
        table(rows, out)
        out.append("")

    section(f"Queries: {m['clients']} connections, pinned",
            f"dnsperf -c {m['clients']} -q {m['outstanding']}, {m['duration']} s per run. \"max\" = no rate "
            f"limit: dnsperf keeps {m['outstanding']} queries in flight. dnsperf and Unbound share core "
            f"{m['client_cpu']}, which can be the limit there rather than the server: a server below ~100% "
            f"of its core was not saturated. \"backend TCP conns\" = the most connections to Unbound seen "
            f"during the run (dotgate relays over UDP). The latency percentiles leave out the first second's "
            f"answers, while dnsperf is still opening its TLS connections and queries queue up behind the "
            f"handshakes on every server (that cost is measured under handshakes and short connections); "
            f"the average is dnsperf's, over all answers. dotgate runs with its defaults (it answers at once, "
            f"never lingers); dotgate-linger is the same with --coalesce-window 0.0002 (a busy worker lingers "
            f"up to 200 µs so that the next events share one wake-up). dotgate's own counters (admin endpoint, "
            f"/metrics, read before and after each run), per answered query: worker wake-ups and lingers, and "
            f"the share of queries asked again over TCP after a truncated UDP answer (TC fallback) or sent "
            f"straight over TCP (direct; \"–\" when the binary has no such counter); empty for the peers.",
            [r for r in q if r["scenario"] == "throughput"], queries_table)
    section("Queries: nothing pinned",
            "The same, with the server, Unbound and dnsperf free to run on any core (what a default "
            "deployment gets). The server's CPU can exceed 100% here.",
            [r for r in q if r["scenario"] == "unpinned"], queries_table)

    def short_table(rows, out):
        out.append("| server | connections/s | answered qps | CPU µs/connection | CPU µs/query "
                   "| latency ms: avg / p50 / p99 / p99.9 | lost | status |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in rows:
            out.append(f"| {r['variant']} | {fmt(r['conns_per_s'])} | {fmt(r['qps'])} | {r['cpu_us_per_conn']} | "
                       f"{r['cpu_us_per_query']} | {lat_cell(r)} | {lost_cell(r)} | {r['status']} |")

    section("Many short connections",
            f"dnsperf -c {m['clients']} -O num-queries-per-conn={m['short_queries']}: each connection does a "
            f"full TLS handshake (dnsperf does not resume), {m['short_queries']} queries, and closes; "
            f"{m['duration']} s, pinned. CPU per connection includes its queries.",
            [r for r in q if r["scenario"] == "short"], short_table)

    def hs_table(rows, out):
        servers = []
        for r in rows:
            if r["variant"] not in servers:
                servers.append(r["variant"])
        out.append("| server | " + " | ".join(f"{label}: /s · CPU µs" for _, label in HS_MODES) + " | notes |")
        out.append("| --- |" + " ---: |" * len(HS_MODES) + " --- |")
        for s in servers:
            cells, notes = [], []
            for mode, label in HS_MODES:
                r = next((x for x in rows if x["variant"] == s and x["mode"] == mode), None)
                if r is None or not r["handshakes"]:
                    cells.append("")
                else:
                    cells.append(f"{fmt(r['per_s'])} · {bold(fmt(r['cpu_us_per_handshake'], '{:,.1f}'))}")
                if r is not None and r["status"] != "ok":
                    notes.append(f"{label}: {r['status']}")
            out.append(f"| {s} | " + " | ".join(cells) + f" | {'; '.join(notes)} |")

    section("TLS handshakes",
            f"One client on core {m['client_cpu']}, {m['hs_time']} s per measurement, ECDHE X25519 (the "
            "clients' first group) with the ECDSA P-256 certificate. Full handshakes and resumed TLS 1.2: "
            "`openssl s_time -new|-reuse -tls1_3|-tls1_2` (handshake, then close). Resumed TLS 1.3: "
            "`dotclient.py resume`, since s_time never reads the ticket that TLS 1.3 sends after the "
            "handshake and so never resumes. The rate is the client's (one connection at a time); the CPU "
            "per handshake is the server's, including accept and close (and, for nginx and HAProxy, their "
            "connection to Unbound).",
            h, hs_table)

    def idle_table(rows, out):
        out.append("| server | idle connections | held: client / server side | RSS before MiB | RSS after MiB "
                   "| bytes per connection | status |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in rows:
            held = f"{fmt(r['held'])} / {fmt(r['server_established'])}" if r["held"] else ""
            out.append(f"| {r['variant']} | {fmt(r['target'])} | {held} | {fmt(num(r['rss_before_kib']) and int(r['rss_before_kib']) / 1024, '{:,.1f}')} | "
                       f"{fmt(num(r['rss_after_kib']) and int(r['rss_after_kib']) / 1024, '{:,.1f}')} | {bold(fmt(r['bytes_per_conn']))} | {r['status']} |")

    section("Idle connections: memory",
            "A fresh server process with long idle timeouts; `dotclient.py hold` opens the connections one "
            "after another (one client process per 5,000), sends one query on each, reads "
            "the answer and then leaves it idle. Bytes per connection = (RSS after − RSS before) / "
            "connections held; the larger count adds connections to the smaller one's. Kernel socket "
            "memory is not in RSS.",
            [r for r in idle if r.get("scenario", "idle") == "idle"], idle_table)

    def workers_table(rows, out):
        out.append("| dotgate | pinning | offered qps | answered qps | server CPU s (% of a core) | CPU µs/query "
                   "| latency ms: avg / p50 / p99 / p99.9 | wake-ups / lingers per query | status |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in rows:
            out.append(f"| --workers {r['workers']} | {r['pinning']} | {r['rate']} | {fmt(r['qps'])} | {cpu_cell(r)} | "
                       f"{r['cpu_us_per_query']} | {lat_cell(r)} | {counters_cell(r)} | {r['status']} |")

    # dotgate with its default pacing only: the scaling scenario does not run dotgate-linger.
    wrows = [r for r in q if r["server"] == "dotgate" and r["scenario"] in ("throughput", "unpinned", "scaling-workers")
             and r["rate"] in {x["rate"] for x in q if x["scenario"] == "scaling-workers"}]
    if any(r["scenario"] == "scaling-workers" for r in q):
        section("Scaling: dotgate with 1 and 2 workers",
                "--workers 1 pinned and unpinned from the tables above; --workers 2 with nothing pinned "
                "(two workers, Unbound and dnsperf share the two cores).",
                wrows, workers_table)

    def conns_table(rows, out):
        out.append("| server | connections | offered qps | answered qps | lost | server CPU s (% of a core) "
                   "| CPU µs/query | latency ms: avg / p50 / p99 / p99.9 | status |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in rows:
            out.append(f"| {r['variant']} | {fmt(r['connections'])} | {r['rate']} | {fmt(r['qps'])} | {lost_cell(r)} | "
                       f"{cpu_cell(r)} | {r['cpu_us_per_query']} | {lat_cell(r)} | {r['status']} |")

    section(f"Scaling: {m['clients']} vs {int(m['scale_clients']):,} connections",
            f"dotgate and the best peer of this run ({m['peer']}: least CPU per query at \"max\"), pinned. "
            f"Both rows use `dotclient.py load` (Python asyncio, one client on core {m['client_cpu']}): it opens "
            f"the connections, sends one query on each, then sends {int(m['scale_rate']):,} queries per second "
            f"in all, round-robin over the connections, for {m['duration']} s; CPU and answers are counted over "
            f"that window only, so the handshakes are not charged to the queries. (dnsperf cannot drive this: "
            f"it tries each of its sockets in turn, 256 per thread, and with 5,000 connections it used its "
            f"whole core at 5,000 qps.) Latency includes the Python client's own delays.",
            [r for r in q if r["scenario"] == "scaling-conns"], conns_table)

    def doh_queries_table(rows, out):
        out.append("| server | client | offered qps | answered qps | lost | latency ms: avg / p50 / p99 / p99.9 "
                   "| server CPU s (% of a core) | CPU µs/query | backend µs/query | answers | status |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for r in rows:
            name = f"{r['variant']}{' (DoT)' if r['server'] == DOH_DOT else ''}"
            out.append(f"| {name} | {r.get('client') or 'dnsperf'} | {r['rate']} | {fmt(r['qps'])} | {lost_cell(r)} | "
                       f"{lat_cell(r)} | {cpu_cell(r)} | {r['cpu_us_per_query']} | "
                       f"{'' if r['server'] == 'unbound-doh' else r['backend_cpu_us_per_query']} | {r['rcodes']} | "
                       f"{r['status']} |")

    section("DNS over HTTPS: queries",
            f"{m['clients']} connections, pinned, {m['duration']} s per run, each DoH server with each client: "
            f"dnsperf {m['dnsperf']} -m doh (GET, -c {m['clients']} -q {m['outstanding']}) and h2load "
            f"{m.get('h2load')} (GET ?dns= with the same queries, -c {m['clients']} -m {m.get('h2_streams')} "
            f"streams per connection, --rps = offered / {m['clients']} per connection, -t 1). dotgate (DoT) is "
            f"dotgate's own DoT under dnsperf -m dot at the same rates. unbound-doh is the resolver itself: "
            f"its CPU is the whole cost (DoH and resolution), where a proxy's backend CPU (the backend column) "
            f"comes on top of its own. Percentiles leave out the first second's answers. "
            f"**dnsperf's DoH loses responses** (a bug in dnsperf 2.10 and 2.14, src/net_doh.c: one response "
            f"buffer per connection, and its on_data_chunk_recv callback pauses nghttp2 when a response is "
            f"already complete, but nghttp2 counts a paused chunk as consumed, so the DATA of a response "
            f"that arrives in the same SSL_read as the previous one's END_STREAM is dropped and the query "
            f"times out). Servers that write one TLS record per response (Unbound) never trigger it; those "
            f"that put several responses in one record (dnsdist 1.7.3, dotgate until it writes one record per "
            f"HTTP/2 response) lose most queries. h2load reads them right: compare on its rows.",
            [r for r in q if r["scenario"] == "doh-throughput"], doh_queries_table)

    section("DNS over HTTPS: idle HTTP/2 connections",
            "A fresh server process with long idle timeouts; `dotclient.py hold --h2` opens the connections "
            "one after another (one client process per 5,000): TLS with ALPN h2, the client preface and an "
            "empty SETTINGS, the server's SETTINGS read and acknowledged, its acknowledgement of ours read, "
            "then nothing (no request). dotgate (DoT): the same counts of idle DoT connections (one query "
            "each). Bytes per connection = (RSS after − RSS before) / connections held.",
            [r for r in idle if r.get("scenario") == "doh-idle"], idle_table)

    doh_values = doh_measures(q, idle)
    if doh_values:
        out.append("## DNS over HTTPS: issue 18's figures")
        out.append("")
        out.append(f"Per server and client, from the two sections above (the loss is the worst of the rates; "
                   f"a peer whose client lost over {DOH_MAX_LOSS:g}% is no best peer). One run: the figures "
                   f"for the issue are medians of three (`loadtest/median.py --doh STAMP STAMP STAMP`).")
        out.append("")
        doh_tables(doh_values, out)

    if doh_run:
        out.append("Notes (DoH): dotgate-doh and dnsdist 1.7's DoH relay to Unbound over UDP (both ask again over "
                   "TCP after a truncated answer); unbound-doh answers from its own copy of the zone. h2load's "
                   "failures are HTTP statuses other than 2xx (dnsdist answers 502 when it gets no answer in "
                   "time) and streams without a response.")
        out.append("")
    if dot_run:
        out.append("Notes: dnsdist, nginx and HAProxy relay to Unbound over TCP, dotgate (both settings) over UDP (asking "
               "again over TCP when an answer comes back truncated, as the 1% of large TXT answers do). "
               "Numbers on a shared 2-core VM are noisy (±30% between runs); compare servers within a run.")
    with open(a.md, "w") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
