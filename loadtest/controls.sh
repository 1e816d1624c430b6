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
root=$(repo_root)
cd "$root"
here=$root/loadtest

variants=(plain proxy ecs ratelimit)
rate=20000
duration=10
repeats=3
set_duration=0
set_repeats=0
quick=0
build=1
keep=0
names=30000
clients=100
outstanding=1000
server_cpu=0
client_cpu=1
backend_cpu=1
max_lost_pct=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --rate) rate=${2:?}; shift ;;
    --duration) duration=${2:?}; set_duration=1; shift ;;
    --repeats) repeats=${2:?}; set_repeats=1; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  [ "$set_duration" = 1 ] || duration=3
  [ "$set_repeats" = 1 ] || repeats=1
fi
for v in rate duration repeats; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v wants a positive number"
done
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || die "needs 2 cores (this machine has $ncpu)"
read -r -a server_pin <<<"taskset -c $server_cpu"
read -r -a client_pin <<<"taskset -c $client_cpu"
read -r -a backend_pin <<<"taskset -c $backend_cpu"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$root/loadtest/work/controls-$stamp
results=$root/loadtest/results
csv=$results/$stamp-controls.csv
md=$results/$stamp-controls.md
mkdir -p "$work" "$results"

unbound_pid=""
server_pid=""
client_pids=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${client_pids[@]}"; do
    kill -0 "$p" 2>/dev/null && { stop_pid "$p" TERM 5 || true; }
  done
  [ -z "$server_pid" ] || stop_tree "$server_pid" 15 || true
  [ -z "$unbound_pid" ] || stop_pid "$unbound_pid" TERM 10 || true
  if [ "$keep" = 1 ]; then
    echo "work folder kept: $work" >&2
  else
    rm -rf "$work"
    rmdir "$root/loadtest/work" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---- dependencies and build --------------------------------------------------------------------
for t in dnsperf unbound unbound-checkconf kdig openssl taskset python3 ss; do
  command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps.sh)"
done
dotgate_bin=${DOTGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/dotgate}
if [ "$build" = 1 ] && [ -z "${DOTGATE_BIN:-}" ]; then
  say "building dotgate (cargo build --release)"
  require_cargo
  if ! cargo build --release --quiet 2>"$work/build.log"; then
    tail -n 20 "$work/build.log" >&2
    die "cargo build --release failed"
  fi
fi
[ -x "$dotgate_bin" ] || die "no dotgate binary at $dotgate_bin"

# ---- test data: the zone and queries of compare.sh, a certificate ------------------------------
say "generating a zone of $names names, the query file and an ECDSA P-256 certificate in $work"
write_bench_zone "$names" "$work"
check_name=h00001.bench.test.
big_name=h00070.bench.test.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/key.pem" -out "$work/cert.pem" -days 7 -subj "/CN=dotgate-loadtest" \
  -addext "subjectAltName=DNS:dotgate-loadtest,IP:127.0.0.1" 2>"$work/openssl.log" ||
  { cat "$work/openssl.log" >&2; die "openssl could not make the certificate"; }

# ---- Unbound: one instance, a plain port and a proxy-protocol port -----------------------------
uport=$(free_port_from 5400) || die "no free port for Unbound"
pport=$(free_port_from $((uport + 1))) || die "no free port for Unbound's proxy-protocol port"
cat >"$work/unbound.conf" <<EOF
# Backend for loadtest/controls.sh: one thread, answers from local data only.
server:
    interface: 127.0.0.1@$uport
    interface: 127.0.0.1@$pport
    # Queries to this port must start with a PROXY v2 header; without one they get nothing.
    proxy-protocol-port: $pport
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$work"
    pidfile: "$work/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
    num-threads: 1
    outgoing-range: 64
    # dotgate keeps one TCP connection to a proxy-protocol backend per client connection (the
    # header names the client), for truncated answers: $clients of them here. Unbound's default
    # of 10 makes the rest wait, and their queries time out (SERVFAIL).
    incoming-num-tcp: $((4 * clients + 100))
    tcp-idle-timeout: 300000
    num-queries-per-thread: 4096
    so-rcvbuf: 8m
    so-sndbuf: 8m
    msg-cache-size: 256m
    rrset-cache-size: 512m
    key-cache-size: 16m
    access-control: 127.0.0.0/8 allow
    local-zone: "." refuse
    local-zone: "bench.test." static
    local-data: "bench.test. 3600 IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300"
    include: "$work/zone.conf"
remote-control:
    control-enable: no
EOF
unbound-checkconf "$work/unbound.conf" >/dev/null || die "generated Unbound config is invalid: $work/unbound.conf"
say "starting Unbound on 127.0.0.1:$uport and 127.0.0.1:$pport (proxy-protocol), core $backend_cpu"
"${backend_pin[@]}" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
unbound_pid=$!
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport" && tcp_listening "$pport" && udp_bound "$pport"; }
if ! wait_for 60 "$unbound_pid" Unbound unbound_ready; then
  cat "$work/unbound.log" >&2
  die "Unbound did not start"
fi
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
port_base=8853
port=""
admin_port=""
# start_dotgate VARIANT: a fresh dotgate on fresh ports, answering; sets server_pid.
start_dotgate() {
  local v=$1 args
  read -r -a args <<<"$(variant_args "$v")"
  port=$(free_port_from "$port_base") || die "no free port"
  admin_port=$(free_port_from $((port + 1))) || die "no free port for --admin"
  port_base=$((admin_port + 1))
  [ "$port_base" -lt 9700 ] || port_base=8853
  # As in compare.sh: every client here is 127.0.0.1, so lift the per-address connection limit.
  "${server_pin[@]}" "$dotgate_bin" --listen "127.0.0.1:$port" "${args[@]}" \
    --cert "$work/cert.pem" --key "$work/key.pem" --workers 1 --max-connections-per-ip 1000000 \
    --admin "127.0.0.1:$admin_port" >>"$work/dotgate-$v.log" 2>&1 &
  server_pid=$!
  if ! wait_for 30 "$server_pid" "dotgate ($v)" tcp_listening "$port" ||
    ! wait_for 30 "$server_pid" "dotgate ($v) answering over DoT" answers "$port"; then
    tail -n 15 "$work/dotgate-$v.log" >&2 || true
    die "dotgate ($v) did not answer over DoT: $(variant_args "$v")"
  fi
}
stop_dotgate() {
  local src=0
  stop_tree "$server_pid" 15 || src=$?
  server_pid=""
  [ "$src" -eq 0 ] || warn "dotgate exited with status $src after SIGTERM"
}
dig_tls() { timeout 5 kdig @127.0.0.1 -p "$1" +tls +timeout=2 +retry=0 "${@:2}" 2>/dev/null; }
answers() { dig_tls "$1" "$check_name" A | grep -q '198\.18\.0\.1$'; }
# metric NAME LABELS: one series from dotgate's /metrics (0 when absent), via python3's urllib.
metric() {
  python3 - "http://127.0.0.1:$admin_port/metrics" "$1" "$2" <<'EOF'
import sys, urllib.request
url, name, labels = sys.argv[1:]
page = urllib.request.urlopen(url, timeout=5).read().decode("utf-8", "replace")
want = name + ("{" + labels + "}" if labels else "")
print(next((l.split()[1] for l in page.splitlines() if l.split() and l.split()[0] == want), "0"))
EOF
}
limited() { metric dotgate_rate_limited_total 'kind="queries"'; }

# ---- sanity: every variant answers right before anything is measured ---------------------------
for v in "${variants[@]}"; do
  start_dotgate "$v"
  out=$(dig_tls "$port" "$check_name" A) || true
  if ! grep -q 'status: NOERROR' <<<"$out" || ! grep -q '198\.18\.0\.1$' <<<"$out"; then
    die "$v: wrong answer for $check_name A through $(variant_args "$v")"
  fi
  size=$(dig_tls "$port" "$big_name" TXT | awk '/^;; Received/ { print $3 }') || true
  [ "${size:-0}" -gt 1232 ] || die "$v: no whole answer for $big_name TXT (${size:-0} bytes; over 1232 expected)"
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
busy_start=$(cpu_busy_pct)
[ "$busy_start" -le 10 ] || warn "other work was using ${busy_start}% of the CPU just before the run: treat these numbers as rough"
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
    status=ok
    timeout $((duration + 60)) "${client_pin[@]}" dnsperf -m dot -s 127.0.0.1 -p "$port" \
      -d "$work/queries.txt" -c "$clients" -T 1 -q "$outstanding" -l "$duration" -t 5 -v \
      -Q "$rate" >"$out" 2>"$out.err" </dev/null &
    dp=$!
    client_pids+=("$dp")
    wait "$dp" || status="dnsperf exit $?"
    forget_pid "$dp"
    s1=$(tree_ticks "$server_pid") || die "$v, repeat $r: dotgate died during the run"
    b1=$(cpu_ticks "$unbound_pid") || die "Unbound died during the run"
    l1=$(limited) || die "$v, repeat $r: could not read /metrics on 127.0.0.1:$admin_port"
    stop_dotgate
    [ "$status" = ok ] || { tail -n 5 "$out.err" >&2; die "$v, repeat $r: $status"; }
    sent=$(dnsperf_field "Queries sent:" "$out")
    done_q=$(dnsperf_field "Queries completed:" "$out")
    lost=$(dnsperf_field "Queries lost:" "$out")
    qps=$(dnsperf_field "Queries per second:" "$out")
    rcodes=$(awk -F': *' '/Response codes:/ { print $2; exit }' "$out")
    [ "${done_q:-0}" -gt 0 ] || die "$v, repeat $r: no answers"
    skip=$(awk -v q="${qps:-0}" 'BEGIN { printf "%d", q }')
    read -r p50 p99 _ < <(python3 "$here/dnsperf_stats.py" --skip "$skip" "$out" || echo "- - -")
    read -r lost_pct cpu_us bcpu_us < <(awk -v sent="$sent" -v c="$done_q" -v lost="$lost" \
      -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v hz="$clk" 'BEGIN {
        printf "%.2f %.1f %.1f\n", (sent ? 100 * lost / sent : 0), (s1 - s0) / hz * 1e6 / c, (b1 - b0) / hz * 1e6 / c }')
    nlimited=$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.0f", b - a }')
    csv_line "$v" "$r" "$rate" "$duration" "$sent" "$done_q" "$lost" "$lost_pct" "$qps" "$cpu_us" "$bcpu_us" \
      "$p50" "$p99" "$nlimited" "$rcodes" >>"$csv"
    printf '    %s qps, lost %s (%s%%), dotgate %s us/query, Unbound %s us/query, p50 %s / p99 %s ms, rate-limited %s, rcodes: %s\n' \
      "$qps" "$lost" "$lost_pct" "$cpu_us" "$bcpu_us" "$p50" "$p99" "$nlimited" "$rcodes" >&2
    rm -f "$out" "$out.err"
    awk -v p="$lost_pct" -v m="$max_lost_pct" 'BEGIN { exit !(p > m) }' &&
      die "$v, repeat $r: lost $lost of $sent queries ($lost_pct% > $max_lost_pct%); results so far: $csv"
    [[ $rcodes == NOERROR\ * && $rcodes != *,* ]] ||
      die "$v, repeat $r: answers other than NOERROR ($rcodes); results so far: $csv"
    [ "$nlimited" = 0 ] || die "$v, repeat $r: $nlimited queries refused for their rate; results so far: $csv"
    sleep 1 # let the connections close before the next run
  done
done

# ---- report -------------------------------------------------------------------------------------
python3 "$here/controls_median.py" "$csv" \
  --note "$(date -u -d "${stamp:0:8} ${stamp:9:2}:${stamp:11:2}:${stamp:13:2}" '+%Y-%m-%d %H:%M UTC'), dotgate $(git describe --always --dirty 2>/dev/null || echo '?'), Unbound $(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }'), $ncpu cores, other work at ${busy_start}% CPU before the run; $repeats x ${duration}s per variant at $rate qps, $clients connections" \
  >"$md"
echo
cat "$md"
echo
say "done in ${SECONDS}s; results: $csv, $md"
