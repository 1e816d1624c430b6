#!/usr/bin/env python3
"""Draw one loadtest/compare.sh run (its JSON) as a PNG: the servers side by side on CPU per
query, answered queries per second, p99 latency, CPU per handshake, memory per idle connection
and CPU per short connection.

  plot.py RUN.json OUT.png

Needs matplotlib (Debian: python3-matplotlib).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["dotgate", "dotgate-linger", "dnsdist", "dnsdist-mif100", "dnsdist-tuned", "nginx", "haproxy"]


def servers_in(rows):
    seen = {r["server"] for r in rows}
    return [s for s in ORDER if s in seen] + sorted(seen - set(ORDER))


def grouped(ax, rows, group_key, groups, value_key, title, ylabel, labels=None, log=False):
    """Bars: one cluster per server, one bar per group (a rate, a mode, a size)."""
    servers = servers_in(rows)
    if not servers or not groups:
        ax.set_axis_off()
        ax.set_title(title + " (not measured)")
        return
    width = 0.8 / len(groups)
    for gi, g in enumerate(groups):
        xs, ys = [], []
        for si, s in enumerate(servers):
            r = next((x for x in rows if x["server"] == s and str(x[group_key]) == str(g)), None)
            v = r.get(value_key) if r else None
            if isinstance(v, (int, float)):
                xs.append(si + (gi - (len(groups) - 1) / 2) * width)
                ys.append(v)
        label = (labels or {}).get(g, str(g))
        bars = ax.bar(xs, ys, width * 0.95, label=label)
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:,.0f}" if y >= 10 else f"{y:.1f}", (b.get_x() + b.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(range(len(servers)))
    ax.set_xticklabels(servers, rotation=25, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def main():
    run = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    q = run["queries"]
    meta = run["meta"]
    thr = [r for r in q if r["scenario"] == "throughput"]
    rates = []
    for r in thr:
        if str(r["rate"]) not in rates:
            rates.append(str(r["rate"]))
    rate_labels = {r: ("max" if r == "max" else f"{int(r):,} qps") for r in rates}

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    grouped(axes[0][0], thr, "rate", rates, "cpu_us_per_query",
            f"Server CPU per query ({meta['clients']} connections, pinned)", "µs per answered query",
            rate_labels)

    # qps at max: pinned and unpinned side by side (dotgate --workers 2 as its own "server").
    maxrows = []
    for r in q:
        if str(r["rate"]) != "max":
            continue
        if r["scenario"] == "throughput":
            maxrows.append(dict(r, kind="pinned"))
        elif r["scenario"] == "unpinned":
            maxrows.append(dict(r, kind="unpinned"))
        elif r["scenario"] == "scaling-workers":
            maxrows.append(dict(r, server="dotgate", kind="unpinned, 2 workers"))
    grouped(axes[0][1], maxrows, "kind", [k for k in ("pinned", "unpinned", "unpinned, 2 workers")
                                          if any(x["kind"] == k for x in maxrows)],
            "qps", "Answered queries per second, no rate limit", "queries/s")

    grouped(axes[0][2], thr, "rate", rates, "p99_ms", "p99 latency (pinned)", "ms (log scale)",
            rate_labels, log=True)

    hs = run["handshakes"]
    modes = [m for m in ("full-tls1.3", "full-tls1.2", "resumed-tls1.3", "resumed-tls1.2")
             if any(r["mode"] == m for r in hs)]
    grouped(axes[1][0], hs, "mode", modes, "cpu_us_per_handshake", "Server CPU per TLS handshake",
            "µs per handshake", {m: m.replace("-tls", " TLS ") for m in modes})

    idle = [r for r in run["idle"] if r.get("scenario", "idle") == "idle"]  # not compare.sh's doh-idle
    sizes = []
    for r in idle:
        if str(r["target"]) not in sizes:
            sizes.append(str(r["target"]))
    grouped(axes[1][1], idle, "target", sizes, "bytes_per_conn", "Server memory per idle TLS connection",
            "bytes of RSS per connection", {s: f"{int(s):,} connections" for s in sizes})

    short = [r for r in q if r["scenario"] == "short"]
    grouped(axes[1][2], short, "scenario", ["short"], "cpu_us_per_conn",
            f"Server CPU per short connection (handshake + {meta['short_queries']} queries)",
            "µs per connection", {"short": "full handshake, no resumption"})

    fig.suptitle(f"DoT load test {meta['stamp']}: dotgate vs dnsdist, nginx, HAProxy "
                 f"(one core each, Unbound backend; {meta['machine']})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
