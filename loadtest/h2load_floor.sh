#!/usr/bin/env bash
# What h2load's latency can show at all on this rig: h2load against nghttpd (nghttp2's own
# server) returning a 60-octet static file for every `/dns-query?dns=...` GET, with the exact
# h2load settings of loadtest/compare.sh's DoH rows (100 connections, 10 streams each, one
# thread, 10 s, `--rps` per connection), server on core 0, h2load on core 1. No DNS, no backend,
# no proxy: the p50 and p99 it gives are the floor of the client, TLS and HTTP/2 on loopback,
# against which the DoH servers' p99 in compare.sh (dotgate, Unbound, dnsdist) can be read.
#
#   loadtest/h2load_floor.sh [--runs N]     (default 3; about 25 s a run)
#
# Writes loadtest/results/<stamp>-h2load-floor.md: each run's p50 / p99 / p99.9 at 5,000 and
# 20,000 queries a second, and their medians.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=../scripts/lib.sh
. "$root/scripts/lib.sh"

runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    *) die "usage: $0 [--runs N]" ;;
  esac
done

bash "$root/scripts/install-deps.sh" nghttp2-client nghttp2-server </dev/null
for t in h2load nghttpd openssl taskset python3; do
  command -v "$t" >/dev/null || die "$t is not installed"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d)
results=$root/loadtest/results
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || stop_pid "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www"
head -c 60 /dev/urandom >"$work/www/dns-query"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
  -out "$work/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
port=$(free_port_from 9443)
# 1,000 distinct GETs, as compare.sh's URI list is: `?dns=` of an A query each.
python3 - "$work/uris.txt" "$port" <<'PYEOF'
import base64, sys
with open(sys.argv[1], "w") as out:
    for i in range(1000):
        query = bytes([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 8]) + b"name%04d" % i + bytes([7]) + b"example" + bytes([0, 0, 1, 0, 1])
        dns = base64.urlsafe_b64encode(query).decode().rstrip("=")
        out.write(f"https://127.0.0.1:{sys.argv[2]}/dns-query?dns={dns}\n")
PYEOF

taskset -c 0 nghttpd -d "$work/www" "$port" "$work/key.pem" "$work/cert.pem" >"$work/nghttpd.log" 2>&1 &
server_pid=$!
wait_for 5 "$server_pid" nghttpd tcp_listening "$port" || die "nghttpd did not listen on $port"

# One row per run and rate, tab-separated: run, rate, p50, p99 and p99.9 in ms over the 200
# responses (dnsperf_stats.py's reading of h2load's --log-file, as compare.sh reads it), then
# h2load_bursts.py's ten fields (bursts, size median/p10/p90, period, a burst's fastest and
# slowest request, the slowest's p90, overall p50 and p99).
rows=$work/rows.tsv
: >"$rows"
for run in $(seq 1 "$runs"); do
  for rate in 5000 20000; do
    say "run $run/$runs: h2load at $rate qps against nghttpd"
    rm -f "$work/log.txt"
    taskset -c 1 h2load -B "https://127.0.0.1:$port" -i "$work/uris.txt" -c 100 -m 10 -t 1 -D 10 \
      --rps "$((rate / 100))" --log-file "$work/log.txt" >"$work/h2load.out" 2>&1 ||
      die "h2load failed: $(tail -n 3 "$work/h2load.out")"
    read -r p50 p99 p999 < <(python3 "$here/dnsperf_stats.py" --h2load "$work/log.txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$rate" "$p50" "$p99" "$p999" \
      "$(python3 "$here/h2load_bursts.py" --tsv "$work/log.txt")" >>"$rows"
  done
done

out=$results/$stamp-h2load-floor.md
python3 - "$rows" "$stamp" "$(h2load --version | awk '{ sub(/.*nghttp2\//, ""); print; exit }')" >"$out" <<'PYEOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print(f"# h2load's own floor: h2load against nghttpd's static file ({sys.argv[2]}, nghttp2 {sys.argv[3]})\n")
print("loadtest/h2load_floor.sh: compare.sh's h2load settings (100 connections, 10 streams, one")
print("thread, 10 s, `--rps` per connection), nghttpd on core 0, h2load on core 1, no DNS.\n")
def medians(rate, columns):
    mine = [r for r in rows if r[1] == rate]
    return mine, [statistics.median(float(r[i]) for r in mine) for i in columns]
print("| qps | runs: p50 / p99 / p99.9 ms | median p50 | median p99 | median p99.9 |")
print("| ---: | --- | ---: | ---: | ---: |")
for rate in ("5000", "20000"):
    mine, med = medians(rate, (2, 3, 4))
    each = ", ".join(f"{r[2]} / {r[3]} / {r[4]}" for r in mine)
    print(f"| {int(rate):,} | {each} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.3f} |")
print("\nHow the load arrives (loadtest/h2load_bursts.py, medians over the runs): h2load's per-connection")
print("`--rps` timers fire together, so the requests come in bursts; a burst's fastest request")
print("carries h2load's own time to write the burst, its slowest the server's time to serve it.\n")
print("| qps | requests per burst | burst period ms | a burst's fastest request ms | a burst's slowest ms |")
print("| ---: | ---: | ---: | ---: | ---: |")
for rate in ("5000", "20000"):
    med = medians(rate, (6, 9, 10, 11))[1]
    print(f"| {int(rate):,} | {med[0]:g} | {med[1]:.2f} | {med[2]:.3f} | {med[3]:.3f} |")
PYEOF
cat "$out"
say "results: $out"
