#!/usr/bin/env bash
# What the per-backend client-address options and the per-client limits cost: dotgate in four
# variants, measured in the same run, interleaved round-robin (plain, proxy, ecs, ratelimit,
# plain, proxy, ...) so that any drift of the machine hits every variant alike, all in front of
# the same Unbound, driven by the same dnsperf.
#
#   loadtest/controls.sh [--quick] [--rate N] [--duration N] [--repeats N] [--no-build] [--keep]
#
#   --quick        3-second runs, 1 repeat (default: 10 s, 3 repeats)
#   --rate N       offered queries per second, dnsperf -Q (default 20000)
#   --duration N   seconds per dnsperf run
#   --repeats N    rounds of the four variants
#   --no-build     use the dotgate binary already built (target/release/dotgate)
#   --keep         keep the work folder (configs, logs)
#
# Environment: DOTGATE_BIN=path  measure this binary instead of building it
#              CARGO_TARGET_DIR  where cargo builds (the binary is looked for there too)
#
# The variants (dotgate --workers 1 --admin, pinned to core 0, a fresh process for every run):
#   plain      --backend 127.0.0.1:PLAIN
#   proxy      --backend 127.0.0.1:PROXYPORT,proxy-protocol  (a PROXY v2 header on every query)
#   ecs        --backend 127.0.0.1:PLAIN,ecs=24:56           (ECS added to every query)
#   ratelimit  --backend 127.0.0.1:PLAIN --max-qps-per-client 1000000  (the flag's maximum:
#              configured, looked up on every query, never hit at these rates)
# One Unbound (one thread, core 1, local data only: the bench.test zone of compare.sh) listens on
# two ports, PLAIN and PROXYPORT; PROXYPORT is in its proxy-protocol-port list, so that it
# answers nothing there without a PROXY header. dnsperf (100 TLS connections, core 1) as in
# compare.sh's throughput scenario.
#
# Before measuring, each variant must answer over DoT through kdig: an A with the right address
# and a TXT over 1,232 bytes whole (truncated over UDP, asked again over TCP: for proxy that is
# the stream form of the header); Unbound's proxy port must answer nothing to a query without a
# header (so the proxy variant answering proves its header works); the ecs variant must not
# leak the ECS option to a client that sent none.
#
# Measured per run: qps, lost queries, dotgate's CPU (utime+stime of its process tree,
# /proc/PID/stat) and Unbound's per answered query, p50/p99 latency (dnsperf -v, the first
# second's answers left out), and dotgate_rate_limited_total{kind="queries"} from /metrics.
# The script stops with one "error:" line, exit 1, when a run loses more than 1% of its queries,
# gets any answer other than NOERROR, or has a query refused for its rate.
#
# Output: loadtest/results/<stamp>-controls.csv (one line per run) and <stamp>-controls.md (the
# medians per variant, dotgate CPU/query as a ratio to plain's: the issue's floor is <= 1.10),
# also printed.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo

bench_defaults
variants=(plain proxy ecs ratelimit)
clients=100

parse_options "$@"
prepare_run controls

# ---- dependencies and build --------------------------------------------------------------------
need_tools_and_dotgate dnsperf unbound unbound-checkconf kdig openssl taskset python3 ss

# ---- test data: the zone and queries of compare.sh, a certificate ------------------------------
say "generating a zone of $names names, the query file and an ECDSA P-256 certificate in $work"
write_bench_zone "$names" "$work"
write_bench_cert "$work"

# ---- Unbound: one instance, a plain port and a proxy-protocol port -----------------------------
uport=$(free_port_from 5400) || die "no free port for Unbound"
pport=$(free_port_from $((uport + 1))) || die "no free port for Unbound's proxy-protocol port"
say "starting Unbound on 127.0.0.1:$uport and 127.0.0.1:$pport (proxy-protocol), core $backend_cpu"
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport" && tcp_listening "$pport" && udp_bound "$pport"; }
start_unbound loadtest/controls.sh "$uport" unbound_ready <<EOF
    interface: 127.0.0.1@$pport
    # Queries to this port must start with a PROXY v2 header; without one they get nothing.
    proxy-protocol-port: $pport
    # dotgate keeps one TCP connection to a proxy-protocol backend per client connection (the
    # header names the client), for truncated answers: $clients of them here. Unbound's default
    # of 10 makes the rest wait, and their queries time out (SERVFAIL).
    incoming-num-tcp: $((4 * clients + 100))
EOF
# Plain DNS straight to Unbound: the plain port answers, the proxy port must not (no header).
kdig @127.0.0.1 -p "$uport" +notcp +timeout=2 +retry=0 "$check_name" A 2>/dev/null | grep -q '198\.18\.0\.1$' ||
  die "Unbound does not answer on its plain port $uport"
if kdig @127.0.0.1 -p "$pport" +notcp +timeout=1 +retry=0 "$check_name" A 2>/dev/null | grep -q '198\.18\.0\.1$'; then
  die "Unbound answered a query without a PROXY header on its proxy-protocol port $pport: the proxy variant would prove nothing"
fi

# ---- dotgate ------------------------------------------------------------------------------------
variant_args() {
  case $1 in
    plain) echo "--backend 127.0.0.1:$uport" ;;
    proxy) echo "--backend 127.0.0.1:$pport,proxy-protocol" ;;
    ecs) echo "--backend 127.0.0.1:$uport,ecs=24:56" ;;
    ratelimit) echo "--backend 127.0.0.1:$uport --max-qps-per-client 1000000" ;;
  esac
}
port=""
admin_port=""
# start_dotgate VARIANT: a fresh dotgate on fresh ports, answering over DoT; sets server_pid.
start_dotgate() {
  local args
  read -r -a args <<<"$(variant_args "$1")"
  take_ports port admin_port
  start_bench_dotgate "$1" answers --listen "127.0.0.1:$port" "${args[@]}"
}
answers() { tcp_listening "$port" && dig_tls "$port" "$check_name" A | grep -q '198\.18\.0\.1$'; }
limited() { metric dotgate_rate_limited_total 'kind="queries"'; }

# ---- sanity: every variant answers right before anything is measured ---------------------------
for v in "${variants[@]}"; do
  start_dotgate "$v"
  dot_answers_right "$port" "$v ($(variant_args "$v"))"
  if [ "$v" = ecs ]; then
    # The client sent no ECS: dotgate must take the one it added (and any echo) out again.
    out=$(dig_tls "$port" +edns "$check_name" A) || true
    grep -q '198\.18\.0\.1$' <<<"$out" || die "ecs: no answer with EDNS"
    ! grep -qi 'CLIENT-SUBNET' <<<"$out" || die "ecs: the answer carries an ECS option the client did not send"
  fi
  n=$(limited) || die "$v: could not read /metrics on 127.0.0.1:$admin_port"
  [ "$n" = 0 ] || die "$v: $n queries refused for their rate during the sanity check"
  say "$v answers right ($(variant_args "$v"))"
  stop_dotgate
done

# ---- the runs -----------------------------------------------------------------------------------
check_quiet
clk=$(getconf CLK_TCK)
echo "variant,repeat,rate,duration_s,queries_sent,queries_completed,queries_lost,lost_pct,qps,dotgate_cpu_us_per_query,unbound_cpu_us_per_query,p50_ms,p99_ms,rate_limited,rcodes" >"$csv"
total=$((repeats * ${#variants[@]}))
step=0
say "$total runs of ${duration}s at $rate qps: ${variants[*]}, round-robin, $repeats time(s)"
for r in $(seq 1 "$repeats"); do
  for v in "${variants[@]}"; do
    step=$((step + 1))
    say "[$step/$total, ${SECONDS}s] $v, repeat $r"
    start_dotgate "$v"
    out=$work/run.dnsperf
    l0=$(limited) || die "$v, repeat $r: could not read /metrics on 127.0.0.1:$admin_port"
    s0=$(tree_ticks "$server_pid")
    b0=$(cpu_ticks "$unbound_pid")
    run_client "$out" dnsperf -m dot -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c "$clients" -T 1 \
      -q "$outstanding" -l "$duration" -t 5 -v -Q "$rate"
    s1=$(tree_ticks "$server_pid") || die "$v, repeat $r: dotgate died during the run"
    b1=$(cpu_ticks "$unbound_pid") || die "Unbound died during the run"
    l1=$(limited) || die "$v, repeat $r: could not read /metrics on 127.0.0.1:$admin_port"
    stop_dotgate
    [ "$client_status" = ok ] || { tail -n 5 "$out.err" >&2; die "$v, repeat $r: $client_status"; }
    read -r sent done_q lost qps rcodes < <(dnsperf_counts "$out")
    [[ $done_q =~ ^[1-9] ]] || die "$v, repeat $r: no answers"
    read -r p50 p99 _ < <(steady_latency "$out" "$qps")
    read -r lost_pct cpu_us bcpu_us < <(awk -v sent="$sent" -v c="$done_q" -v lost="$lost" \
      -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v hz="$clk" 'BEGIN {
        printf "%.2f %.1f %.1f\n", (sent ? 100 * lost / sent : 0), (s1 - s0) / hz * 1e6 / c, (b1 - b0) / hz * 1e6 / c }')
    nlimited=$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.0f", b - a }')
    csv_line "$v" "$r" "$rate" "$duration" "$sent" "$done_q" "$lost" "$lost_pct" "$qps" "$cpu_us" "$bcpu_us" \
      "$p50" "$p99" "$nlimited" "$rcodes" >>"$csv"
    printf '    %s qps, lost %s (%s%%), dotgate %s us/query, Unbound %s us/query, p50 %s / p99 %s ms, rate-limited %s, rcodes: %s\n' \
      "$qps" "$lost" "$lost_pct" "$cpu_us" "$bcpu_us" "$p50" "$p99" "$nlimited" "$rcodes" >&2
    rm -f "$out" "$out.err"
    die_unless_clean "$v, repeat $r" "$sent" "$lost" "$lost_pct" "$rcodes"
    [ "$nlimited" = 0 ] || die "$v, repeat $r: $nlimited queries refused for their rate; results so far: $csv"
    sleep 1 # let the connections close before the next run
  done
done

# ---- report -------------------------------------------------------------------------------------
python3 "$here/controls_median.py" "$csv" \
  --note "$(run_note "$busy_start"); $repeats x ${duration}s per variant at $rate qps, $clients connections" \
  >"$md"
finish_report
