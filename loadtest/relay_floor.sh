#!/usr/bin/env bash
# What the relay hop itself costs on this machine, against a resolver that answers by itself.
# Issue 18's DoH figures compare dotgate (a relay: every query goes on to Unbound over UDP and
# back) with Unbound serving DoH itself (no hop). This measures, in one run, interleaved
# round-robin, all on core 0 and driven by the same dnsperf on core 1 (100 connections, the
# bench.test zone of compare.sh), each a fresh process per run:
#
#   unbound-tcp   Unbound answering plain DNS over TCP itself: no TLS, no HTTP, no hop
#   relay-floor   loadtest/relay_floor.c: plain DNS over TCP in, UDP out to the backend Unbound
#                 (core 1) and back, the fewest system calls a relay can make (no TLS, no HTTP)
#   unbound-doh   Unbound serving DoH itself (compare.sh's unbound-doh: the best DoH peer)
#   dotgate-doh   dotgate --doh-listen, relaying to the backend Unbound (compare.sh's dotgate-doh)
#
# relay-floor's CPU per query is what any relay pays for the hop and the two wake-ups it needs
# when queries arrive one at a time (dnsperf paces them evenly); set against unbound-doh's, it
# says how low a relay's ratio to a resolver serving DoH itself can go on this machine before a
# single byte is encrypted or framed.
#
#   loadtest/relay_floor.sh [--quick] [--duration N] [--repeats N] [--no-build] [--keep]
#
#   --quick        3-second runs, 1 repeat (default: 10 s, 3 repeats)
#   --duration N   seconds per dnsperf run
#   --repeats N    rounds of the variants at each rate (5,000 and 20,000 qps)
#   --no-build     use the dotgate binary already built (target/release/dotgate)
#   --keep         keep the work folder (configs, logs)
#
# Environment: DOTGATE_BIN=path  measure this binary instead of building it
#
# Measured per run: qps, lost queries, the server's CPU (utime+stime, /proc/PID/stat) per
# answered query, the backend Unbound's (relay-floor, dotgate-doh), wake-ups per query
# (relay-floor's own count, dotgate's dotgate_worker_wakeups_total), p50/p99 (dnsperf -v, the
# first second's answers left out). A run that loses over 1% or gets an answer other than NOERROR
# stops the script with one "error:" line.
#
# Output: loadtest/results/<stamp>-relay-floor.csv (one line per run) and <stamp>-relay-floor.md
# (medians per variant and rate, and the ratios to unbound-doh), also printed.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo

bench_defaults
variants=(unbound-tcp relay-floor unbound-doh dotgate-doh)
rates=(5000 20000)
clients=100

parse_options "$@"
prepare_run relay-floor

# ---- dependencies and build --------------------------------------------------------------------
need_tools_and_dotgate dnsperf unbound unbound-checkconf kdig openssl taskset python3 ss gcc
gcc -O2 -Wall -o "$work/relay_floor" "$here/relay_floor.c" || die "gcc could not build loadtest/relay_floor.c"

# ---- test data and the backend -----------------------------------------------------------------
say "generating a zone of $names names, the query file and an ECDSA P-256 certificate in $work"
write_bench_zone "$names" "$work"
write_bench_cert "$work"
uport=$(free_port_from 5400) || die "no free port for Unbound"
say "starting the backend Unbound on 127.0.0.1:$uport, core $backend_cpu"
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport"; }
start_unbound loadtest/relay_floor.sh "$uport" unbound_ready <<EOF
    incoming-num-tcp: 1000
EOF

# ---- the servers under test --------------------------------------------------------------------
port=""
admin_port=""
# server_conf VARIANT: the config of the Unbound that is the server (unbound-tcp, unbound-doh),
# in its own directory.
server_conf() {
  local doh=""
  [ "$1" != unbound-doh ] || doh="    https-port: $port
    tls-service-key: \"$work/key.pem\"
    tls-service-pem: \"$work/cert.pem\"
    http-endpoint: \"/dns-query\"
    http-notls-downstream: no"
  mkdir -p "$work/$1"
  cat <<EOF
server:
    interface: 127.0.0.1@$port
$doh
    incoming-num-tcp: 1000
    tcp-idle-timeout: 300000
$(unbound_bench_lines "$work/$1")
EOF
}
# answers VARIANT: the server on $port answers $check_name A right, over its own transport.
answers() {
  local how=(+tcp)
  case $1 in
    unbound-doh | dotgate-doh) how=(+https) ;;
  esac
  tcp_listening "$port" &&
    timeout 5 kdig @127.0.0.1 -p "$port" "${how[@]}" +timeout=2 +retry=0 "$check_name" A 2>/dev/null | grep -q '198\.18\.0\.1$'
}
dotgate_answers() { answers dotgate-doh; }
# start_server VARIANT: a fresh one on core 0, fresh ports; sets server_pid.
start_server() {
  take_ports port admin_port
  case $1 in
    unbound-tcp | unbound-doh)
      server_conf "$1" >"$work/$1.conf"
      unbound-checkconf "$work/$1.conf" >/dev/null || die "generated Unbound config is invalid: $work/$1.conf"
      "${server_pin[@]}" unbound -d -c "$work/$1.conf" >>"$work/$1.log" 2>&1 &
      server_pid=$!
      ;;
    relay-floor)
      "${server_pin[@]}" "$work/relay_floor" "$port" "$uport" 2>>"$work/$1.log" &
      server_pid=$!
      ;;
    dotgate-doh)
      start_bench_dotgate doh dotgate_answers --listen none --doh-listen "127.0.0.1:$port" \
        --backend "127.0.0.1:$uport"
      return
      ;;
  esac
  wait_for 30 "$server_pid" "$1" answers "$1" || { tail -n 15 "$work/$1.log" >&2; die "$1 did not answer"; }
}
# wakeups VARIANT: the server's own count of its wake-ups so far ("" when it keeps none it can
# tell while running: relay-floor tells at exit).
wakeups() {
  case $1 in
    dotgate-doh) metric dotgate_worker_wakeups_total "" ;;
    *) echo "" ;;
  esac
}

# ---- the runs -----------------------------------------------------------------------------------
check_quiet
clk=$(getconf CLK_TCK)
echo "variant,repeat,rate,duration_s,queries_sent,queries_completed,queries_lost,lost_pct,qps,server_cpu_us_per_query,backend_cpu_us_per_query,wakeups_per_query,p50_ms,p99_ms,rcodes" >"$csv"
total=$((repeats * ${#rates[@]} * ${#variants[@]}))
step=0
say "$total runs of ${duration}s: ${variants[*]}, round-robin, at ${rates[*]} qps, $repeats time(s)"
for r in $(seq 1 "$repeats"); do
  for rate in "${rates[@]}"; do
    for v in "${variants[@]}"; do
      step=$((step + 1))
      say "[$step/$total, ${SECONDS}s] $v at $rate qps, repeat $r"
      start_server "$v"
      mode=tcp
      case $v in unbound-doh | dotgate-doh) mode=doh ;; esac
      out=$work/run.dnsperf
      w0=$(wakeups "$v")
      s0=$(tree_ticks "$server_pid")
      b0=$(cpu_ticks "$unbound_pid")
      run_client "$out" dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c "$clients" -T 1 \
        -q "$outstanding" -l "$duration" -t 5 -v -Q "$rate"
      s1=$(tree_ticks "$server_pid") || die "$v, repeat $r: the server died during the run"
      b1=$(cpu_ticks "$unbound_pid") || die "the backend Unbound died during the run"
      w1=$(wakeups "$v")
      if [ "$v" = relay-floor ]; then
        # It counts from its start and tells at exit: this run's is the log's last line.
        stop_pid "$server_pid" TERM 10 || true
        w0=0
        w1=$(sed -n 's/.*wakeups=\([0-9]*\).*/\1/p' "$work/$v.log" | tail -n 1)
      else
        stop_tree "$server_pid" 15 || warn "$v exited with an error status after SIGTERM"
      fi
      server_pid=""
      [ "$client_status" = ok ] || { tail -n 5 "$out.err" >&2; die "$v, repeat $r: $client_status"; }
      read -r sent done_q lost qps rcodes < <(dnsperf_counts "$out")
      [[ $done_q =~ ^[1-9] ]] || die "$v, repeat $r: no answers"
      read -r p50 p99 _ < <(steady_latency "$out" "$qps")
      backend=0
      case $v in relay-floor | dotgate-doh) backend=1 ;; esac
      read -r lost_pct cpu_us bcpu_us wake < <(awk -v sent="$sent" -v c="$done_q" -v lost="$lost" \
        -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v hz="$clk" -v hop="$backend" -v w0="$w0" -v w1="$w1" 'BEGIN {
          printf "%.2f %.1f %s %s\n", (sent ? 100 * lost / sent : 0), (s1 - s0) / hz * 1e6 / c,
            (hop ? sprintf("%.1f", (b1 - b0) / hz * 1e6 / c) : "-"), (w1 == "" ? "-" : sprintf("%.3f", (w1 - w0) / c)) }')
      csv_line "$v" "$r" "$rate" "$duration" "$sent" "$done_q" "$lost" "$lost_pct" "$qps" "$cpu_us" "$bcpu_us" \
        "$wake" "$p50" "$p99" "$rcodes" >>"$csv"
      printf '    %s qps, lost %s (%s%%), server %s us/query, backend %s us/query, %s wake-ups/query, p50 %s / p99 %s ms\n' \
        "$qps" "$lost" "$lost_pct" "$cpu_us" "$bcpu_us" "$wake" "$p50" "$p99" >&2
      rm -f "$out" "$out.err"
      die_unless_clean "$v at $rate, repeat $r" "$sent" "$lost" "$lost_pct" "$rcodes"
      sleep 1 # let the connections close before the next run
    done
  done
done

# ---- report -------------------------------------------------------------------------------------
python3 - "$csv" "$(run_note "$busy_start"); $repeats x ${duration}s per variant and rate, $clients connections" >"$md" <<'PYEOF'
import csv, statistics, sys
path, note = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
variants = list(dict.fromkeys(r["variant"] for r in rows))
rates = list(dict.fromkeys(r["rate"] for r in rows))
def med(v, rate, col):
    xs = [float(r[col]) for r in rows if r["variant"] == v and r["rate"] == rate and r[col] not in ("", "-")]
    return (statistics.median(xs), xs) if xs else (None, [])
def show(m, fmt="{:.1f}"):
    v, xs = m
    return "-" if v is None else fmt.format(v) + " (" + " / ".join(fmt.format(x) for x in xs) + ")"
print("# The relay hop's cost: medians (each run's value in brackets)\n")
print(note + "\n")
for rate in rates:
    print(f"## {int(rate):,} queries a second (dnsperf, evenly paced)\n")
    print("| variant | server CPU µs/query | backend CPU µs/query | wake-ups/query | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for v in variants:
        print(f"| {v} | {show(med(v, rate, 'server_cpu_us_per_query'))} | {show(med(v, rate, 'backend_cpu_us_per_query'))} "
              f"| {show(med(v, rate, 'wakeups_per_query'), '{:.2f}')} | {show(med(v, rate, 'p50_ms'), '{:.3f}')} "
              f"| {show(med(v, rate, 'p99_ms'), '{:.3f}')} |")
    peer = med("unbound-doh", rate, "server_cpu_us_per_query")[0]
    if peer:
        print(f"\nServer CPU per query over unbound-doh's ({peer:.1f} µs): " + ", ".join(
            f"{v} {med(v, rate, 'server_cpu_us_per_query')[0] / peer:.2f}" for v in variants
            if v != "unbound-doh" and med(v, rate, "server_cpu_us_per_query")[0] is not None) + ".\n")
PYEOF
finish_report
