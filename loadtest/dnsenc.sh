#!/usr/bin/env bash
# What DNSENC costs on one worker: for each query scheme (rsa2048, rsa4096, x25519) the most
# queries per second dotgate answers, its CPU per query, the latency at half and nine tenths of
# that rate, and the bytes each scheme adds on the wire; beside DoT through the same dotgate and
# plain UDP straight to Unbound. All in the same run, interleaved round-robin (rsa2048, rsa4096,
# x25519, dot, udp, rsa2048, ...) so that any drift of the machine hits every variant alike, in
# front of the same Unbound.
#
#   loadtest/dnsenc.sh [--quick] [--rate N] [--duration N] [--repeats N] [--no-build] [--keep]
#
#   --quick        3-second runs, 1 repeat (default: 10 s, 3 repeats)
#   --rate N       the rate at which x25519's CPU per query is set against DoT's (default 20000:
#                  the issue's floor, x25519 within 1.5x of DoT there); when x25519's maximum is
#                  under it, the two are compared at 90% of x25519's maximum instead
#   --duration N   seconds per run
#   --repeats N    rounds of every variant, in each of the two phases
#   --no-build     use the dotgate binary already built (target/release/dotgate)
#   --keep         keep the work folder (configs, keys, logs)
#
# Environment: DOTGATE_BIN=path  measure this binary instead of building it
#              CARGO_TARGET_DIR  where cargo builds (the binary is looked for there too)
#
# The variants. dotgate is the same for all of them, a fresh process for every run: --workers 1,
# pinned to core 0, DoT on one port and DNSENC (UDP and TCP) on another with three keys loaded,
# one of each scheme (the client's NSK picks the key):
#   rsa2048, rsa4096, x25519   `dotgate dnsenc load --prepared 20000`, 20 clients (each its own
#                              UDP socket, up to 10 queries in flight; a TC=1 answer is asked
#                              again over TCP), the NSK of the variant's key. --prepared: 20,000
#                              queries encrypted before the run and sent in turn (dotgate keeps no
#                              state, so its work per query is the same), else the tool's own
#                              X25519 per query made it, not dotgate, the limit on 2 cores
#   dot                        dnsperf -m dot to dotgate, 100 TLS connections, 1000 in flight
#   udp                        dnsperf -m udp straight to Unbound, 100 sockets, 1000 in flight: no
#                              privacy and no dotgate; its CPU figure is Unbound's
# One Unbound (one thread, local data only: the bench.test zone of common.sh, about 1% of the
# answers over 1,232 bytes) and every client run on core 1.
#
# Two phases, each of --repeats rounds:
#   1. max: every variant as fast as its clients go (no rate set).
#   2. set rates, from the medians of phase 1: each DNSENC scheme at 50% and 90% of its own
#      maximum; dot and udp at x25519's two rates (so that the latencies compare at the same
#      load); dot at --rate as well, and x25519 too when its maximum reaches --rate. The RSA
#      schemes cannot reach --rate on one core: their CPU per query is read at 90% of their max.
# On 2 cores, a maximum may be the clients' rather than dotgate's (the clients share core 1 with
# Unbound). The report says which core was full.
#
# Before measuring: Unbound answers plain DNS; dotgate answers each scheme right through
# `dotgate dnsenc query` (an A with the right address, and a TXT over 1,232 bytes whole: TC=1
# over UDP, then over TCP), DoT through kdig (the same two), and nothing in the clear on the
# DNSENC port but REFUSED.
#
# Measured per run: qps, lost and truncated queries, CPU per answered query of dotgate (utime +
# stime of its process tree, /proc/PID/stat; for udp: Unbound's), of Unbound and of the client
# (its children's CPU in this shell's /proc/$$/stat once it has exited), how busy dotgate's core
# and core 1 were, p50/p99 latency (the load tool's own; dnsperf -v at set rates only, the first
# second's answers left out, as controls.sh), and the average bytes per query and per answer,
# outer (the envelopes) and inner (the DNS messages in them). dotgate's DNSENC query counter of
# the variant's scheme must have counted every answered query.
# The script stops with one "error:" line, exit 1, when a run loses more than 1% of its queries,
# gets any answer other than NOERROR, or its client fails.
#
# Output: loadtest/results/<stamp>-dnsenc.csv (one line per run) and <stamp>-dnsenc.md (the
# medians tables, by dnsenc_median.py), also printed.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo

schemes=(rsa2048 rsa4096 x25519)
variants=("${schemes[@]}" dot udp)
bench_defaults
dnsenc_clients=20
dnsenc_prepared=20000
dot_clients=100

parse_options "$@"
prepare_run dnsenc
need_tools_and_dotgate dnsperf unbound unbound-checkconf kdig openssl taskset python3 ss

# ---- test data: the zone and queries of compare.sh, a certificate, a key of each scheme --------
say "generating a zone of $names names, the query file, an ECDSA P-256 certificate and the DNSENC keys in $work"
write_bench_zone "$names" "$work"
write_bench_cert "$work"
key_args=()
for s in "${schemes[@]}"; do
  mkdir -p "$work/keys-$s"
  "$dotgate_bin" dnsenc keygen --scheme "$s" --out "$work/keys-$s" >"$work/$s.nsk" ||
    die "dotgate dnsenc keygen --scheme $s failed"
  keys=("$work/keys-$s"/*.key)
  if [ "${#keys[@]}" != 1 ] || [ ! -f "${keys[0]}" ]; then
    die "dotgate dnsenc keygen --scheme $s did not write one key file"
  fi
  key_args+=(--dnsenc-key "${keys[0]}")
done

# ---- Unbound: one instance for everything ------------------------------------------------------
uport=$(free_port_from 5400) || die "no free port for Unbound"
say "starting Unbound on 127.0.0.1:$uport, core $backend_cpu"
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport"; }
start_unbound loadtest/dnsenc.sh "$uport" unbound_ready </dev/null
kdig @127.0.0.1 -p "$uport" +notcp +timeout=2 +retry=0 "$check_name" A 2>/dev/null | grep -q '198\.18\.0\.1$' ||
  die "Unbound does not answer on 127.0.0.1:$uport"

# ---- dotgate: one configuration for every variant ----------------------------------------------
port=""
eport=""
admin_port=""
# start_dotgate: a fresh dotgate on fresh ports, answering over DoT and DNSENC; sets server_pid.
start_dotgate() {
  take_ports port eport admin_port
  start_bench_dotgate dnsenc answers --listen "127.0.0.1:$port" --backend "127.0.0.1:$uport" \
    --dnsenc-listen "127.0.0.1:$eport" "${key_args[@]}"
}
# dnsenc_query SCHEME NAME TYPE: `dotgate dnsenc query` to the DNSENC port with SCHEME's NSK.
dnsenc_query() {
  timeout 10 "$dotgate_bin" dnsenc query "@127.0.0.1:$eport" "$2" "$3" --nsk "$work/$1.nsk" --timeout 2 2>/dev/null
}
answers() {
  tcp_listening "$port" && dig_tls "$port" "$check_name" A | grep -q '198\.18\.0\.1$' &&
    dnsenc_query x25519 "$check_name" A | grep -q '198\.18\.0\.1$'
}
dnsenc_count() { metric dotgate_dnsenc_queries_total "scheme=\"$1\""; }

# ---- sanity: every variant answers right before anything is measured ---------------------------
start_dotgate
for s in "${schemes[@]}"; do
  out=$(dnsenc_query "$s" "$check_name" A) || true
  if ! grep -q 'status: NOERROR' <<<"$out" || ! grep -q '198\.18\.0\.1$' <<<"$out" ||
    ! grep -q "^;; DNSENC: scheme $s," <<<"$out"; then
    die "$s: wrong answer for $check_name A over DNSENC: $(tail -n 1 <<<"$out")"
  fi
  last=$(dnsenc_query "$s" "$big_name" TXT | tail -n 1) || true
  size=$(sed -n 's/.* \([0-9]*\) received$/\1/p' <<<"$last")
  if [[ $last != *"over TCP after TC=1"* ]] || [ "${size:-0}" -le 1232 ]; then
    die "$s: no whole answer for $big_name TXT after TC=1 (${last:-nothing}; over 1232 bytes over TCP expected)"
  fi
  n=$(dnsenc_count "$s") || die "could not read /metrics on 127.0.0.1:$admin_port"
  [ "$n" -ge 2 ] || die "$s: dotgate counted $n DNSENC queries of the scheme for the 2 asked"
  say "$s answers right over DNSENC"
done
dot_answers_right "$port" dot
say "dot answers right"
out=$(kdig @127.0.0.1 -p "$eport" +notcp +timeout=2 +retry=0 "$check_name" A 2>/dev/null) || true
grep -q 'status: REFUSED' <<<"$out" || die "the DNSENC port does not refuse $check_name A in the clear"
stop_dotgate

# ---- the runs -----------------------------------------------------------------------------------
clk=$(getconf CLK_TCK)
echo "phase,variant,repeat,load,rate,duration_s,queries_sent,queries_completed,queries_lost,lost_pct,qps,server_cpu_us_per_query,dotgate_busy_pct,unbound_cpu_us_per_query,client_cpu_us_per_query,client_core_busy_pct,p50_ms,p99_ms,truncated,truncated_pct,query_outer,query_inner,answer_outer,answer_inner,rcodes" >"$csv"

# measure PHASE VARIANT REPEAT LOAD RATE: one run of VARIANT (RATE 0: as fast as its clients go),
# one CSV line.
measure() {
  local phase=$1 v=$2 r=$3 load=$4 qrate=$5 out=$work/run.out what="$2, repeat $3, $4"
  local cmd=() n0=0 n1=0 s0=0 s1=0 b0 b1 c0 c1 t0 t1
  [ "$v" = udp ] || start_dotgate # before the command line: it names the fresh ports
  case $v in
    udp | dot)
      local target=$uport
      [ "$v" = udp ] || target=$port
      cmd=(dnsperf -m "$v" -s 127.0.0.1 -p "$target" -d "$work/queries.txt" -c "$dot_clients" -T 1
        -q "$outstanding" -l "$duration" -t 5)
      # -v: one line per answer, for the latency; not at the maximum, where printing them would
      # cost the client core queries.
      [ "$qrate" = 0 ] || cmd+=(-v)
      ;;
    *)
      cmd=("$dotgate_bin" dnsenc load -s "127.0.0.1:$eport" --nsk "$work/$v.nsk" -f "$work/queries.txt"
        -c "$dnsenc_clients" -l "$duration" --prepared "$dnsenc_prepared")
      n0=$(dnsenc_count "$v") || die "$what: could not read /metrics on 127.0.0.1:$admin_port"
      ;;
  esac
  [ "$qrate" = 0 ] || cmd+=(-Q "$qrate")
  [ "$v" = udp ] || s0=$(tree_ticks "$server_pid")
  b0=$(cpu_ticks "$unbound_pid")
  t0=$(now_s)
  # The client's CPU: this shell's reaped children's, around the wait for it.
  c0=$(cpu_ticks $$ reaped)
  run_client "$out" "${cmd[@]}"
  c1=$(cpu_ticks $$ reaped)
  t1=$(now_s)
  b1=$(cpu_ticks "$unbound_pid") || die "Unbound died during the run"
  if [ "$v" != udp ]; then
    s1=$(tree_ticks "$server_pid") || die "$what: dotgate died during the run"
    if [ "$v" != dot ]; then
      n1=$(dnsenc_count "$v") || die "$what: could not read /metrics on 127.0.0.1:$admin_port"
    fi
    stop_dotgate
  fi
  [ "$client_status" = ok ] || { tail -n 5 "$out.err" >&2; die "$what: $client_status"; }

  local sent done_q lost qps rcodes p50=- p99=- trunc=- qo=- qi=- ao=- ai=-
  read -r sent done_q lost qps rcodes < <(dnsperf_counts "$out")
  [[ $done_q =~ ^[1-9] ]] || die "$what: no answers"
  case $v in
    udp | dot)
      [ "$qrate" = 0 ] || read -r p50 p99 _ < <(steady_latency "$out" "$qps")
      # dnsperf's DNS messages: on the wire as they are over UDP; inside TLS records over DoT.
      read -r qi ai < <(awk '/Average packet size:/ { gsub(",", ""); print $5, $7; exit }' "$out")
      [ "$v" = dot ] || { qo=$qi; ao=$ai; }
      ;;
    *)
      p50=$(dnsperf_field "Latency p50 (ms):" "$out")
      p99=$(dnsperf_field "Latency p99 (ms):" "$out")
      trunc=$(dnsperf_field "Queries truncated:" "$out")
      read -r qo qi < <(awk '/Bytes per query:/ { gsub(",", ""); print $5, $7; exit }' "$out")
      read -r ao ai < <(awk '/Bytes per answer:/ { gsub(",", ""); print $5, $7; exit }' "$out")
      [ "$((n1 - n0))" -ge "$done_q" ] || die "$what: dotgate counted $((n1 - n0)) $v queries for $done_q answered"
      ;;
  esac
  local lost_pct cpu_us busy ub_us cl_us core1 trunc_pct
  read -r lost_pct cpu_us busy ub_us cl_us core1 trunc_pct < <(awk -v sent="$sent" -v c="$done_q" \
    -v lost="$lost" -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v cl="$((c1 - c0))" -v t0="$t0" -v t1="$t1" \
    -v hz="$clk" -v v="$v" -v tr="$trunc" 'BEGIN {
      wall = (t1 - t0) * hz
      server = v == "udp" ? b : s
      printf "%.2f %.1f %s %.1f %.1f %.0f %s\n", (sent ? 100 * lost / sent : 0), server / hz * 1e6 / c,
        (v == "udp" ? "-" : sprintf("%.0f", 100 * s / wall)), b / hz * 1e6 / c, cl / hz * 1e6 / c,
        100 * (b + cl) / wall, (tr == "-" ? "-" : sprintf("%.2f", sent ? 100 * tr / sent : 0)) }')
  csv_line "$phase" "$v" "$r" "$load" "$qrate" "$duration" "$sent" "$done_q" "$lost" "$lost_pct" "$qps" \
    "$cpu_us" "$busy" "$ub_us" "$cl_us" "$core1" "$p50" "$p99" "$trunc" "$trunc_pct" "$qo" "$qi" "$ao" "$ai" \
    "$rcodes" >>"$csv"
  printf '    %s qps, lost %s (%s%%), %s %s us/query (core %s %s%% busy), Unbound %s, client %s us/query (core %s %s%% busy), p50 %s / p99 %s ms, TC=1 %s, rcodes: %s\n' \
    "$qps" "$lost" "$lost_pct" "$([ "$v" = udp ] && echo Unbound || echo dotgate)" "$cpu_us" "$server_cpu" "$busy" \
    "$ub_us" "$cl_us" "$client_cpu" "$core1" "$p50" "$p99" "$trunc" "$rcodes" >&2
  rm -f "$out" "$out.err"
  die_unless_clean "$what" "$sent" "$lost" "$lost_pct" "$rcodes"
  if [ "$qrate" != 0 ] && awk -v q="$qps" -v want="$qrate" 'BEGIN { exit !(q < 0.95 * want) }'; then
    warn "$what: $qps qps of the $qrate asked (under 95%): its row is marked in the report"
  fi
  sleep 1 # let the connections close before the next run
}

# rounds PHASE "VARIANT LOAD RATE"...: --repeats rounds of those runs, in that order in each.
rounds() {
  local phase=$1 r run v load qrate step=0 total
  shift
  total=$((repeats * $#))
  say "phase $phase: $total runs of ${duration}s, round-robin, $repeats time(s)"
  for r in $(seq 1 "$repeats"); do
    for run in "$@"; do
      read -r v load qrate <<<"$run"
      step=$((step + 1))
      say "[$step/$total, ${SECONDS}s] $v, $load ($([ "$qrate" = 0 ] && echo "as fast as it goes" || echo "$qrate qps")), repeat $r"
      measure "$phase" "$v" "$r" "$load" "$qrate"
    done
  done
}

check_quiet
# Phase 1: the maximum of every variant.
runs=()
for v in "${variants[@]}"; do runs+=("$v max 0"); done
rounds max "${runs[@]}"

# Phase 2: set rates from phase 1's medians, rounded down to 10 queries a second.
# at VARIANT PERCENT: PERCENT of VARIANT's median maximum.
at() {
  local m
  m=$(python3 "$here/dnsenc_median.py" "$csv" --max "$1") || die "no maximum for $1 in $csv"
  awk -v m="$m" -v p="$2" 'BEGIN { r = int(m * p / 1000) * 10; print (r < 10 ? 10 : r) }'
}
x50=$(at x25519 50)
x90=$(at x25519 90)
runs=()
for s in rsa2048 rsa4096; do runs+=("$s 50% $(at "$s" 50)"); done
runs+=("x25519 50% $x50" "dot x25519-50% $x50" "udp x25519-50% $x50")
for s in rsa2048 rsa4096; do runs+=("$s 90% $(at "$s" 90)"); done
runs+=("x25519 90% $x90" "dot x25519-90% $x90" "udp x25519-90% $x90" "dot rate $rate")
if [ "$(at x25519 100)" -ge "$rate" ]; then
  runs+=("x25519 rate $rate")
else
  warn "x25519's maximum here ($(at x25519 100) qps) is under --rate $rate: it is set against DoT at $x90 qps (90% of its maximum) instead"
fi
rounds set "${runs[@]}"

# ---- report -------------------------------------------------------------------------------------
python3 "$here/dnsenc_median.py" "$csv" --rate "$rate" \
  --note "$(run_note "$busy_start"); $repeats x ${duration}s per variant and load; dotgate --workers 1 on core $server_cpu, Unbound and the clients on core $client_cpu; DNSENC: $dnsenc_clients clients of \`dotgate dnsenc load\`, DoT and UDP: dnsperf, $dot_clients connections or sockets, $outstanding in flight" \
  >"$md"
finish_report
