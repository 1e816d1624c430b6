#!/usr/bin/env bash
# Side-by-side DNS-over-TLS load test: dotgate (two settings), dnsdist (three settings), nginx and
# HAProxy, in the same run, each in turn in front of the same Unbound, driven by the same clients.
# And DNS over HTTPS (--doh): dotgate's DoH beside Unbound's own DoH and dnsdist's (two settings),
# with dotgate's DoT in the same run for what HTTP costs.
#
#   loadtest/compare.sh [--quick] [--duration N] [--servers LIST] [--scenarios LIST] [--keep]
#   loadtest/compare.sh --doh [--quick]
#
# The full DoH comparison (issue 18's figures), median of three, on a quiet machine:
#   for i in 1 2 3; do loadtest/compare.sh --doh || break; done
#   loadtest/median.py --doh $(ls loadtest/results/*-queries.csv | tail -n 3)
#
#   --quick            short runs: 5-second dnsperf runs, 1-second handshake runs, idle
#                      connection counts 1000,5000 (default: 10 s, 2 s, 5000,20000)
#   --duration N       N-second dnsperf (and h2load) runs
#   --servers LIST     comma-separated, from: dotgate, dotgate-linger, dnsdist, dnsdist-mif100,
#                      dnsdist-tuned, nginx, haproxy (DoT), dotgate-doh, unbound-doh,
#                      dnsdist-doh, dnsdist-doh-tuned (DoH) (default: the seven DoT ones for
#                      the DoT scenarios, plus the four DoH ones and dotgate for the DoH
#                      scenarios). A DoH server takes part in the DoH scenarios only, a DoT
#                      server in the DoT ones, except dotgate, whose DoT is measured in the
#                      DoH scenarios too (the "DoH vs own DoT" line)
#   --doh              = --servers dotgate-doh,unbound-doh,dnsdist-doh,dnsdist-doh-tuned,dotgate
#                        --scenarios doh-throughput,doh-idle (about 7 minutes; 4 with --quick)
#   --scenarios LIST   comma-separated, from (default: the DoT ones, all but doh-*):
#                        throughput  dnsperf, 100 connections, at each of --rates, all pinned
#                        unpinned    the same at each of --unpinned-rates, nothing pinned
#                        short       many short connections: --short-queries queries each
#                        handshake   TLS handshakes/s and server CPU per handshake: full
#                                    TLS 1.3, full TLS 1.2, resumed TLS 1.3, resumed TLS 1.2
#                        idle        server RSS per idle TLS connection at each of --idle-conns
#                        scaling     dotgate with 2 workers (unpinned), and CPU per query at 100
#                                    vs --scale-clients connections for dotgate and the best peer
#                                    (dotgate with its defaults only, not dotgate-linger)
#                                    (dotclient.py load: dnsperf cannot drive that many)
#                        doh-throughput  DoH, --clients connections, at each of --rates, pinned,
#                                    with each of --doh-clients: dnsperf -m doh (GET) and
#                                    h2load (GET ?dns=, the same queries); dotgate (DoT) with
#                                    dnsperf -m dot at the same rates
#                        doh-idle    server RSS per idle HTTP/2 connection at each of
#                                    --doh-idle-conns (dotclient.py hold --h2: ALPN h2, the
#                                    preface and SETTINGS exchanged, no request); dotgate (DoT)
#                                    idle DoT connections at the same counts
#   --rates LIST       throughput rates; "max" = no rate limit, a number = dnsperf -Q
#                      (default: max,5000,20000)
#   --unpinned-rates LIST  rates measured again with nothing pinned (default: max)
#   --unpinned         measure every throughput rate unpinned too (= --unpinned-rates <--rates>)
#   --clients N        dnsperf -c, TLS connections (default 100)
#   --outstanding N    dnsperf -q, queries in flight (default 1000)
#   --short-queries N  queries per connection in the short-connection scenario (default 3)
#   --handshake-time N seconds per handshake measurement (default 2)
#   --idle-conns LIST  idle connection counts, ascending (default 5000,20000)
#   --doh-idle-conns LIST  idle HTTP/2 connection counts, ascending (default 5000)
#   --doh-clients LIST DoH load clients, from dnsperf, h2load (default: both)
#   --h2-streams N     h2load -m, streams in flight per connection (default: --outstanding /
#                      --clients, dnsperf's queries in flight per connection)
#   --scale-clients N  connections for the scaling scenario (default 5000)
#   --scale-rate N     queries/s in all for the 100-vs-many comparison (default 10000)
#   --peer NAME        peer for the scaling scenario (default: the peer with the least CPU per
#                      query at "max" in this run's throughput scenario, else dnsdist-tuned;
#                      dotgate and dotgate-linger are ours, never a peer)
#   --names N          names in the zone (default 30000)
#   --server-cpu N     core for the server under test (default 0)
#   --client-cpu N     core for the clients (default 1)
#   --backend-cpu N    core for Unbound (default 1, beside the clients, so that the server under
#                      test has its core to itself and its CPU time is its own); "none" = unpinned
#   --dnsdist-tcp-threads N  setMaxTCPClientThreads for dnsdist-tuned and dnsdist-doh-tuned
#                      (default 1)
#   --no-build         use the dotgate binary already built (target/release/dotgate)
#   --keep             keep the work folder (configs, logs, dnsperf output)
#
# Environment: DOTGATE_BIN=path  measure this binary instead of building it
#              CARGO_TARGET_DIR  where cargo builds (the binary is looked for there too)
#
# The servers under test (one at a time; all pinned to --server-cpu unless a scenario says not):
#   dotgate          dotgate --workers 1 with its defaults (it answers at once, never lingers);
#                    UDP to Unbound (TCP only for truncated answers)
#   dotgate-linger   the same with --coalesce-window 0.0002: a busy worker lingers up to
#                    200 µs to gather about 6 events into one wake-up (from about 15,000 qps)
#   dnsdist          dnsdist's defaults: addTLSLocal + newServer, nothing else tuned
#   dnsdist-mif100   as above with addTLSLocal{maxInFlight=100} (out-of-order answers)
#   dnsdist-tuned    maxInFlight=100 on addTLSLocal and on newServer (so that it pipelines
#                    queries on its backend connections instead of opening one per query in
#                    flight), setMaxTCPClientThreads(1) (one TCP worker for its one core),
#                    numberOfStoredSessions=0: the "fair comparison" of the design notes
#   nginx            nginx stream {} server, listen ssl, proxy_pass to Unbound's TCP port, one
#                    worker process (what operators build by hand)
#   haproxy          HAProxy mode tcp, bind ssl crt, server = Unbound's TCP port, nbthread 1
#   dotgate-doh      dotgate --workers 1 --listen none --doh-listen (DoH only), UDP to Unbound
#   unbound-doh      a second Unbound 1.17 serving DoH itself (https-port, tls-service-key/pem,
#                    http-notls-downstream: no), the same zone, one thread: this peer IS the
#                    resolver, so its CPU is the whole cost, DoH and resolution (a proxy's
#                    backend CPU comes on top of its own)
#   dnsdist-doh      dnsdist's defaults: addDOHLocal(..., '/dns-query') + newServer; dnsdist 1.7
#                    relays DoH to the backend over UDP (TCP after a truncated answer)
#   dnsdist-doh-tuned  as above with numberOfStoredSessions=0 on addDOHLocal and
#                    setMaxTCPClientThreads(1) (its TCP workers ask again after a truncated UDP
#                    answer), as dnsdist-tuned; maxInFlight has no DoH counterpart (HTTP/2 is
#                    out of order anyway) and internalPipeBufferSize is 1 MiB already on Linux
# All use the same ECDSA P-256 certificate. No packet cache anywhere. dnsdist, nginx and HAProxy
# relay to the backend over TCP (dnsdist's DoH over UDP), dotgate (every setting) over UDP.
# dotgate also gets --admin 127.0.0.1:<a free port>, for its counters. In the idle scenarios every
# server gets long idle timeouts (dotgate --idle-timeout 300, dnsdist setTCPRecvTimeout(300) and
# addDOHLocal idleTimeout=300, nginx proxy_timeout 300s, HAProxy timeout client/server 300s,
# Unbound tcp-idle-timeout 300 s, its DoH connections too).
#
# KNOWN dnsperf BUG (DoH): dnsperf 2.10 (and 2.14, src/net_doh.c) keeps one response buffer per
# connection; its nghttp2 on_data_chunk_recv callback returns NGHTTP2_ERR_PAUSE when a response
# is already complete, but nghttp2 takes a paused chunk as consumed, so the DATA of a response
# that arrives in the same SSL_read as the previous response's END_STREAM is lost (the query
# times out). A server that writes one TLS record per response (Unbound: one SSL_write each;
# OpenSSL's SSL_read returns one record at a time) never triggers it; a server that puts several
# responses in one record (dnsdist 1.7.3; dotgate until it writes one record per HTTP/2
# response) loses most queries under dnsperf once more than one is in flight per connection.
# Hence the second client, h2load (nghttp2), which reads them right: its rows are the ones to
# compare; dnsperf's are kept to show the loss ("lost" column).
#
# Measured: queries per second, lost queries, latency (average, and p50/p99/p99.9 from
# dnsperf -v's per-query lines or h2load --log-file's per-request lines), the CPU time the
# server spent (utime+stime of all its processes and threads, /proc/PID/stat) per answered query
# (and Unbound's CPU per answered query), per connection and per handshake, and its resident
# memory (VmRSS, /proc/PID/status) per idle connection. For dotgate (both
# settings), also its own counters (its admin endpoint's /metrics, read just before and just after
# each dnsperf run, each series summed over its label sets), per answered query: worker wake-ups
# (dotgate_worker_wakeups_total), lingers (dotgate_worker_lingers_total), the share of queries
# asked again over TCP after a truncated UDP answer (dotgate_upstream_tc_fallbacks_total) and the
# share sent straight over TCP (dotgate_upstream_tcp_direct_total; empty when the binary has no
# such series). These columns are empty for the peers, and for the dotclient.py runs of the
# scaling scenario (their CPU and answers are counted over a window after the connections are
# open, which a scrape from here cannot match). A server that cannot
# be built or does not start is skipped with a message; the others still run.
#
# Output: progress on stderr; in loadtest/results/: <timestamp>-queries.csv,
# <timestamp>-handshakes.csv, <timestamp>-idle.csv, <timestamp>.json (all of it), latest.md
# (one table per scenario) and latest.png (plot.py); a run of DoH scenarios only writes
# latest-doh.md instead (and no plot), so that it does not replace the DoT report.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo

dot_servers=dotgate,dotgate-linger,dnsdist,dnsdist-mif100,dnsdist-tuned,nginx,haproxy
doh_servers=dotgate-doh,unbound-doh,dnsdist-doh,dnsdist-doh-tuned
all_servers=$dot_servers,$doh_servers
dot_scenarios=throughput,unpinned,short,handshake,idle,scaling
doh_scenarios=doh-throughput,doh-idle
all_scenarios=$dot_scenarios,$doh_scenarios
duration=10
servers=""
scenarios=$dot_scenarios
doh_idle_conns=5000
doh_clients=dnsperf,h2load
h2_streams=""
rates=max,5000,20000
unpinned_rates=max
unpinned_all=0
clients=100
outstanding=1000
short_queries=3
hs_time=2
idle_conns=5000,20000
scale_clients=5000
scale_rate=10000
peer=""
server_cpu=0
client_cpu=1
backend_cpu=1
build=1
dnsdist_tcp_threads=1
keep=0
names=30000
quick=0
set_duration=0
set_hs=0
set_idle=0

while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --duration) duration=${2:?}; set_duration=1; shift ;;
    --servers) servers=${2:?}; shift ;;
    --scenarios) scenarios=${2:?}; shift ;;
    --doh) servers=$doh_servers,dotgate; scenarios=$doh_scenarios ;;
    --doh-idle-conns) doh_idle_conns=${2:?}; shift ;;
    --doh-clients) doh_clients=${2:?}; shift ;;
    --h2-streams) h2_streams=${2:?}; shift ;;
    --rates) rates=${2:?}; shift ;;
    --unpinned-rates) unpinned_rates=${2:?}; shift ;;
    --unpinned) unpinned_all=1 ;;
    --clients) clients=${2:?}; shift ;;
    --outstanding) outstanding=${2:?}; shift ;;
    --short-queries) short_queries=${2:?}; shift ;;
    --handshake-time) hs_time=${2:?}; set_hs=1; shift ;;
    --idle-conns) idle_conns=${2:?}; set_idle=1; shift ;;
    --scale-clients) scale_clients=${2:?}; shift ;;
    --scale-rate) scale_rate=${2:?}; shift ;;
    --peer) peer=${2:?}; shift ;;
    --names) names=${2:?}; shift ;;
    --server-cpu) server_cpu=${2:?}; shift ;;
    --client-cpu) client_cpu=${2:?}; shift ;;
    --backend-cpu) backend_cpu=${2:?}; shift ;;
    --dnsdist-tcp-threads) dnsdist_tcp_threads=${2:?}; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
# --quick shortens what the command line did not set explicitly.
if [ "$quick" = 1 ]; then
  [ "$set_duration" = 1 ] || duration=5
  [ "$set_hs" = 1 ] || hs_time=1
  [ "$set_idle" = 1 ] || idle_conns=1000,5000
fi
[ "$unpinned_all" = 0 ] || unpinned_rates=$rates
want() { [[ ,$scenarios, == *,"$1",* ]]; }
want_dot() { want throughput || want unpinned || want short || want handshake || want idle || want scaling; }
want_doh() { want doh-throughput || want doh-idle; }
# Default servers: those of the scenarios asked for (dotgate's DoT is in the DoH scenarios too).
if [ -z "$servers" ]; then
  want_dot && servers=$dot_servers
  ! want_doh || servers=${servers:+$servers,}$doh_servers
  ! want_doh || want_dot || servers=$servers,dotgate
fi
[ -n "$h2_streams" ] || h2_streams=$(((outstanding + clients - 1) / clients))
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in duration clients outstanding short_queries hs_time scale_clients scale_rate names h2_streams; do
  is_count "${!v}" || die "--${v//_/-} wants a positive number"
done
[ "$names" -ge 100 ] || die "--names wants at least 100"
IFS=, read -r -a server_list <<<"$servers"
IFS=, read -r -a scenario_list <<<"$scenarios"
IFS=, read -r -a rate_list <<<"$rates"
IFS=, read -r -a unpinned_list <<<"$unpinned_rates"
IFS=, read -r -a idle_list <<<"$idle_conns"
IFS=, read -r -a doh_idle_list <<<"$doh_idle_conns"
IFS=, read -r -a doh_client_list <<<"$doh_clients"
for s in "${server_list[@]}"; do
  [[ ,$all_servers, == *,"$s",* ]] || die "unknown server: $s"
done
for s in "${scenario_list[@]}"; do
  [[ ,$all_scenarios, == *,"$s",* ]] || die "unknown scenario: $s"
done
for r in "${rate_list[@]}" "${unpinned_list[@]}"; do
  [[ $r == max || $r =~ ^[1-9][0-9]*$ ]] || die "bad rate: $r (want max or a number)"
done
for c in "${idle_list[@]}" "${doh_idle_list[@]}"; do is_count "$c" || die "bad idle connection count: $c"; done
for c in "${doh_client_list[@]}"; do
  [ "$c" = dnsperf ] || [ "$c" = h2load ] || die "unknown DoH client: $c (want dnsperf or h2load)"
done
# Ours (every dotgate setting), as opposed to the peers.
is_dotgate() { [ "$1" = dotgate ] || [ "$1" = dotgate-linger ] || [ "$1" = dotgate-doh ]; }
# The DoH servers (the DoH scenarios only); the others serve DoT.
is_doh() { [[ ,$doh_servers, == *,"$1",* ]]; }
[ -z "$peer" ] || { [[ ,$dot_servers, == *,"$peer",* ]] && ! is_dotgate "$peer"; } || die "bad --peer: $peer (want a DoT peer, not dotgate)"
ncpu=$(nproc)
for c in "$server_cpu" "$client_cpu" "$backend_cpu"; do
  [ "$c" = none ] || [ "$c" -lt "$ncpu" ] || die "core $c does not exist (this machine has $ncpu)"
done
# taskset prefixes; "none" = every core. Used as "${server_pin[@]}" cmd ... so that a command
# started with & is the process itself ($! is its PID, not a subshell's).
every_core=0-$((ncpu - 1))
pin_for() { if [ "$1" = none ]; then echo "taskset -c $every_core"; else echo "taskset -c $1"; fi; }
read -r -a server_pin <<<"$(pin_for "$server_cpu")"
read -r -a client_pin <<<"$(pin_for "$client_cpu")"
read -r -a backend_pin <<<"$(pin_for "$backend_cpu")"
read -r -a free_pin <<<"$(pin_for none)"
backend_cores=$backend_cpu
[ "$backend_cpu" != none ] || backend_cores=$every_core

# Every process started here gets as many file descriptors as it may have (20,000 idle
# connections need them; the hard limit cannot be raised without CAP_SYS_RESOURCE).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
[ "$fd_limit" != unlimited ] || fd_limit=1048576

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$root/loadtest/work/$stamp
results=$root/loadtest/results
qcsv=$results/$stamp-queries.csv
hcsv=$results/$stamp-handshakes.csv
icsv=$results/$stamp-idle.csv
mkdir -p "$work" "$results"

install_cleanup

# Resident memory (VmRSS, KiB) of the whole tree.
tree_rss_kib() {
  local t=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) && t=$((t + ${v:-0}))
  done
  echo "$t"
}
# repin CORES PID: move every thread of every process of the tree to CORES.
repin() {
  local p
  for p in $(tree_pids "$2"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}
# Established TCP connections whose local (sport) or remote (dport) port is $2.
established() { ss -Htn state established "( $1 = :$2 )" 2>/dev/null | wc -l; }

# ---- dependencies and build --------------------------------------------------------------------
say "installing dependencies (dnsdist, nginx, HAProxy, h2load, matplotlib)"
bash scripts/install-deps.sh dnsdist nginx libnginx-mod-stream haproxy nghttp2-client python3-matplotlib </dev/null
for t in dnsperf dnsdist nginx haproxy h2load unbound kdig openssl taskset python3 ss; do
  command -v "$t" >/dev/null || die "$t is not installed"
done
nginx_stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
# matplotlib comes from Debian: use a python3 that sees it (a pyenv python3 on PATH may not).
plot_python=""
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null && "$py" -c 'import matplotlib' 2>/dev/null; then plot_python=$py; break; fi
done
[ -n "$plot_python" ] || warn "no python3 with matplotlib: latest.png will not be drawn"

dotgate_bin=${DOTGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/dotgate}
dotgate_skip=""
# The scaling scenario runs dotgate whatever --servers says.
need_dotgate=0
for s in "${server_list[@]}"; do ! is_dotgate "$s" || need_dotgate=1; done
if [ "$need_dotgate" = 1 ] || want scaling; then
  if [ "$build" = 1 ] && [ -z "${DOTGATE_BIN:-}" ]; then
    say "building dotgate (cargo build --release)"
    if ! find_cargo; then
      dotgate_skip="no cargo on PATH"
    elif ! cargo build --release --quiet 2>"$work/build.log"; then
      tail -n 20 "$work/build.log" >&2
      dotgate_skip="cargo build --release failed"
    fi
  fi
  [ -n "$dotgate_skip" ] || [ -x "$dotgate_bin" ] || dotgate_skip="no binary at $dotgate_bin"
  [ -z "$dotgate_skip" ] || warn "dotgate will be skipped: $dotgate_skip"
fi

# ---- test data: zone, queries, certificate -----------------------------------------------------
say "generating a zone of $names names, the query file and an ECDSA P-256 certificate in $work"
write_bench_zone "$names" "$work"
nqueries=$(wc -l <"$work/queries.txt")
nbig=$(( (names + 69) / 70 ))

write_bench_cert "$work"
# h2load's queries: dnsperf's, as GET URIs (?dns=).
! want doh-throughput || python3 "$here/dotclient.py" doh-uris --queries "$work/queries.txt" >"$work/doh-uris.txt"
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem" # HAProxy wants both in one file

# ---- Unbound -----------------------------------------------------------------------------------
# TCP-relaying peers (dnsdist, nginx, HAProxy) open one backend connection per client connection
# (nginx, HAProxy) or per query in flight (dnsdist's defaults). Unbound shortens its TCP idle
# timeout once more than half of incoming-num-tcp is in use, so keep it at least twice the most
# connections any scenario opens towards it (--scale-clients, the idle counts that a TCP peer can
# reach); the run records the peak actually seen ("backend TCP").
most_tcp=$scale_clients
for c in "${idle_list[@]}" "${doh_idle_list[@]}"; do
  # Idle counts that nginx and HAProxy can reach (two descriptors per connection); unbound-doh
  # holds the DoH ones itself, under the same limit.
  [ $((2 * c + 100)) -gt "$fd_limit" ] || [ "$c" -le "$most_tcp" ] || most_tcp=$c
done
incoming_tcp=$((2 * most_tcp + 2000))
[ "$incoming_tcp" -le $((fd_limit - 500)) ] || incoming_tcp=$((fd_limit - 500))
uport=$(free_port_from 5400) || die "no free port for Unbound"
say "starting Unbound on 127.0.0.1:$uport (core $backend_cpu, incoming-num-tcp $incoming_tcp)"
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport"; }
start_unbound loadtest/compare.sh "$uport" unbound_ready <<EOF
    port: $uport
    # Many incoming TCP connections (see above).
    incoming-num-tcp: $incoming_tcp
EOF

# ---- the servers under test --------------------------------------------------------------------
dnsdist_version() { dnsdist --version 2>/dev/null | awk 'NR == 1 { print $2 }'; }
nginx_version() { nginx -v 2>&1 | sed -n 's|.*nginx/||p'; }
haproxy_version() { haproxy -v 2>/dev/null | awk 'NR == 1 { sub(/-.*/, "", $3); print $3 }'; }
describe() {
  case $1 in
    dotgate) echo "dotgate --workers ${2:-1}" ;;
    dotgate-linger) echo "dotgate --workers ${2:-1}, --coalesce-window 0.0002" ;;
    dnsdist) echo "dnsdist $(dnsdist_version) defaults" ;;
    dnsdist-mif100) echo "dnsdist $(dnsdist_version) maxInFlight=100" ;;
    dnsdist-tuned) echo "dnsdist $(dnsdist_version) tuned: maxInFlight=100 both ends, $dnsdist_tcp_threads TCP thread(s), no session cache" ;;
    nginx) echo "nginx $(nginx_version) stream, 1 worker" ;;
    haproxy) echo "HAProxy $(haproxy_version) mode tcp, nbthread 1" ;;
    dotgate-doh) echo "dotgate --workers ${2:-1} DoH" ;;
    unbound-doh) echo "Unbound $(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }') DoH (the resolver itself)" ;;
    dnsdist-doh) echo "dnsdist $(dnsdist_version) DoH defaults" ;;
    dnsdist-doh-tuned) echo "dnsdist $(dnsdist_version) DoH tuned: no session cache, $dnsdist_tcp_threads TCP thread(s)" ;;
  esac
}
# How the server reaches Unbound: over TCP (all but dotgate; dnsdist's DoH only after a
# truncated UDP answer; unbound-doh is the resolver), and with a TCP connection of its own for
# every client connection (nginx, HAProxy: byte pipes).
relays_tcp() { ! is_dotgate "$1" && [ "$1" != unbound-doh ]; }
backend_conn_each() { [ "$1" = nginx ] || [ "$1" = haproxy ]; }

# dnsdist_conf VARIANT PORT MODE: the generated configuration.
dnsdist_conf() {
  local tls_opts="" server_opts="" extra="" doh_opts=()
  case $1 in
    dnsdist-mif100) tls_opts=", {maxInFlight=100}" ;;
    dnsdist-tuned)
      tls_opts=", {maxInFlight=100, numberOfStoredSessions=0}"
      server_opts=", maxInFlight=100"
      extra="setMaxTCPClientThreads($dnsdist_tcp_threads)"
      ;;
    dnsdist-doh-tuned)
      doh_opts=(numberOfStoredSessions=0)
      extra="setMaxTCPClientThreads($dnsdist_tcp_threads)"
      ;;
  esac
  # dnsdist closes a client connection that sends nothing for 2 s (setTCPRecvTimeout); its DoH
  # (h2o) one idle for 30 s (idleTimeout).
  [ "$3" != idle ] || extra="$extra
setTCPRecvTimeout(300)
setTCPSendTimeout(300)"
  [ "$3" != idle ] || doh_opts+=(idleTimeout=300)
  local listen="addTLSLocal('127.0.0.1:$2', '$work/cert.pem', '$work/key.pem'$tls_opts)"
  if is_doh "$1"; then
    listen="addDOHLocal('127.0.0.1:$2', '$work/cert.pem', '$work/key.pem', '/dns-query'"
    local o opts=""
    for o in "${doh_opts[@]}"; do opts+="${opts:+, }$o"; done
    listen="$listen${opts:+, {$opts\}})"
  fi
  cat <<EOF
-- generated by loadtest/compare.sh ($1, $3)
-- Do not send security-status queries to the Internet.
setSecurityPollSuffix('')
${extra}
${listen}
-- The health check asks for a name the backend has (it never recurses).
newServer{address='127.0.0.1:$uport', checkName='$check_name'$server_opts}
EOF
}

# unbound_doh_conf PORT MODE: Unbound serving DoH itself on 127.0.0.1:PORT (its directory:
# $work/unbound-doh), the backend's zone and settings; long idle timeouts in MODE "idle"
# (Unbound's default is 30 s), and as many TCP connections as the backend takes (its default,
# 10, would queue the clients' connections).
unbound_doh_conf() {
  local idle=""
  [ "$2" != idle ] || idle="    tcp-idle-timeout: 300000"
  cat <<EOF
# generated by loadtest/compare.sh (unbound-doh, $2)
server:
    interface: 127.0.0.1@$1
    https-port: $1
    tls-service-key: "$work/key.pem"
    tls-service-pem: "$work/cert.pem"
    http-endpoint: "/dns-query"
    http-notls-downstream: no
    incoming-num-tcp: $incoming_tcp
$idle
$(unbound_bench_lines "$work/unbound-doh")
EOF
}

# nginx_conf PORT MODE: a stream {} server terminating TLS, one worker (the master only
# supervises it), as many connections as the descriptor limit allows: each client connection
# also takes one to Unbound.
nginx_conf() {
  local timeout=10m
  [ "$2" != idle ] || timeout=300s
  cat <<EOF
# generated by loadtest/compare.sh (nginx, $2)
load_module $nginx_stream_module;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $fd_limit;
pid $work/nginx.pid;
error_log stderr warn;
events {
    worker_connections $((fd_limit - 100));
}
stream {
    server {
        listen 127.0.0.1:$1 ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass 127.0.0.1:$uport;
        proxy_connect_timeout 5s;
        proxy_timeout $timeout;
    }
}
EOF
}

# haproxy_conf PORT MODE: mode tcp, TLS terminated on the bind line, one thread; maxconn as
# high as the descriptor limit allows (two descriptors per client connection).
haproxy_conf() {
  local timeout=30s
  [ "$2" != idle ] || timeout=300s
  cat <<EOF
# generated by loadtest/compare.sh (haproxy, $2)
global
    nbthread 1
    maxconn $(((fd_limit - 200) / 2))
defaults
    mode tcp
    timeout connect 5s
    timeout client $timeout
    timeout server $timeout
frontend dot
    bind 127.0.0.1:$1 ssl crt $work/combined.pem
    maxconn $(((fd_limit - 200) / 2))
    default_backend unbound
backend unbound
    server unbound 127.0.0.1:$uport
EOF
}

# start_server NAME PORT MODE WORKERS PIN...: start it in the background; sets server_pid.
# MODE "idle" = long idle timeouts (the idle-connection scenario).
start_server() {
  local name=$1 port=$2 mode=$3 workers=$4
  shift 4
  local idle=() pacing=() listen=(--listen "127.0.0.1:$port")
  case $name in
    dotgate | dotgate-linger | dotgate-doh)
      [ "$mode" != idle ] || idle=(--idle-timeout 300)
      [ "$name" != dotgate-linger ] || pacing=(--coalesce-window 0.0002)
      [ "$name" != dotgate-doh ] || listen=(--listen none --doh-listen "127.0.0.1:$port")
      # Every client here comes from 127.0.0.1: lift the per-address limit (default 1,000),
      # as the peers have none. --admin: its counters (dotgate_counters).
      "$@" "$dotgate_bin" "${listen[@]}" --backend "127.0.0.1:$uport" \
        --cert "$work/cert.pem" --key "$work/key.pem" --workers "$workers" "${idle[@]}" \
        "${pacing[@]}" --max-connections-per-ip 1000000 --admin "127.0.0.1:$admin_port" \
        >"$work/$name-$mode.log" 2>&1 &
      ;;
    unbound-doh)
      mkdir -p "$work/unbound-doh"
      unbound_doh_conf "$port" "$mode" >"$work/$name-$mode.conf"
      unbound-checkconf "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 || return 1
      "$@" unbound -d -c "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 &
      ;;
    dnsdist*)
      dnsdist_conf "$name" "$port" "$mode" >"$work/$name-$mode.conf"
      dnsdist --check-config -C "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 || return 1
      # Foreground, no console, logs to stderr; no -u/-g, so it stays root and binds nothing privileged.
      "$@" dnsdist --supervised --disable-syslog -C "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 &
      ;;
    nginx)
      nginx_conf "$port" "$mode" >"$work/$name-$mode.conf"
      nginx -t -q -e stderr -p "$work" -c "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 || return 1
      "$@" nginx -e stderr -p "$work" -c "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 &
      ;;
    haproxy)
      haproxy_conf "$port" "$mode" >"$work/$name-$mode.conf"
      haproxy -c -q -f "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 || return 1
      # -db: foreground, one process.
      "$@" haproxy -db -f "$work/$name-$mode.conf" >"$work/$name-$mode.log" 2>&1 &
      ;;
  esac
  server_pid=$!
}

# answers PORT HOW: one real query over DoT (HOW +tls) or DoH (+https: POST to /dns-query)
# gets the right answer.
answers() {
  timeout 5 kdig @127.0.0.1 -p "$1" "$2" +timeout=2 +retry=0 "$check_name" A 2>/dev/null |
    grep -q '198\.18\.0\.1$'
}
# answers_big PORT HOW: a TXT answer over 1,232 bytes comes through whole (dotgate gets it
# truncated over UDP and must ask again over TCP); over DoH with GET (+https-get).
answers_big() {
  local size
  size=$(timeout 5 kdig @127.0.0.1 -p "$1" "$2" +timeout=2 +retry=0 "$big_name" TXT 2>/dev/null |
    awk '/^;; Received/ { print $3 }')
  [ "${size:-0}" -gt 1232 ]
}

# bring_up NAME MODE WORKERS PIN...: start NAME on a fresh port and wait until it answers.
# Sets server_pid and port (and admin_port for dotgate, empty for the peers); on failure prints
# why and sets up_error.
port_base=8853
admin_port=""
bring_up() {
  local name=$1 mode=$2 workers=$3 st how=+tls get=+tls proto=DoT
  shift 3
  ! is_doh "$name" || { how=+https; get=+https-get; proto=DoH; }
  up_error=""
  admin_port=""
  port=$(free_port_from "$port_base") || { up_error="no free port"; return 1; }
  port_base=$((port + 1))
  if is_dotgate "$name"; then
    admin_port=$(free_port_from "$port_base") || { up_error="no free port for --admin"; return 1; }
    port_base=$((admin_port + 1))
  fi
  server_pid=""
  if ! start_server "$name" "$port" "$mode" "$workers" "$@"; then
    up_error="invalid configuration (see below)"
  elif ! wait_for 30 "$server_pid" "$name" tcp_listening "$port" ||
    ! wait_for 30 "$server_pid" "$name answering over $proto" answers "$port" "$how"; then
    if kill -0 "$server_pid" 2>/dev/null; then
      up_error="not answering over $proto after 30 s"
    else
      st=0
      wait "$server_pid" || st=$?
      up_error="exited during start-up with status $st"
    fi
  elif ! answers_big "$port" "$get"; then
    up_error="no whole answer for a TXT over 1232 bytes ($big_name)"
  fi
  if [ -n "$up_error" ]; then
    echo "--- last lines of $name's output:" >&2
    tail -n 15 "$work/$name-$mode.log" >&2 || true
    [ -z "$server_pid" ] || stop_tree "$server_pid" 5 || true
    server_pid=""
    return 1
  fi
}

take_down() {
  local name=$1 src=0 grace=5
  # dotgate's drain on SIGTERM is part of what is tested; the peers' is not (dnsdist can take
  # longer than 15 s to stop: no point waiting for it).
  ! is_dotgate "$name" || grace=15
  say "stopping $name (SIGTERM)"
  stop_tree "$server_pid" "$grace" || src=$?
  server_pid=""
  admin_port=""
  [ "$src" -eq 0 ] || say "$name exited with status $src after SIGTERM"
}


clk=$(getconf CLK_TCK)
step=0
progress() { step=$((step + 1)); say "[$step/$total_steps, $(elapsed)] $*"; }
elapsed() { printf '%dm%02ds' $((SECONDS / 60)) $((SECONDS % 60)); }

echo "scenario,server,variant,workers,pinning,rate,duration_s,clients,outstanding,queries_per_conn,queries_sent,queries_completed,queries_lost,lost_pct,qps,avg_latency_ms,p50_ms,p99_ms,p999_ms,connections,conns_per_s,server_cpu_s,server_cpu_pct,cpu_us_per_query,cpu_us_per_conn,backend_cpu_us_per_query,backend_tcp_peak,wakeups_per_query,lingers_per_query,tc_fallback_share,tcp_direct_share,rcodes,status,client" >"$qcsv"
echo "server,variant,mode,tool,seconds,handshakes,resumed,per_s,server_cpu_s,cpu_us_per_handshake,status" >"$hcsv"
echo "server,variant,target,held,server_established,rss_before_kib,rss_after_kib,bytes_per_conn,status,scenario" >"$icsv"

# watch_client PID NAME: wait for a client to finish, noting meanwhile the most TCP
# connections to Unbound (sets tcp_peak, empty for dotgate, which relays over UDP).
watch_client() {
  local n=0 c
  tcp_peak=0
  while kill -0 "$1" 2>/dev/null; do
    if [ $((n % 5)) = 2 ] && relays_tcp "$2"; then
      c=$(established dport "$uport")
      [ "$c" -le "$tcp_peak" ] || tcp_peak=$c
    fi
    n=$((n + 1))
    sleep 0.2
  done
  relays_tcp "$2" || tcp_peak=""
}

# dotgate_counters: dotgate's own counters, read from its admin endpoint (admin_port): one
# line "WAKEUPS LINGERS TC_FALLBACKS TCP_DIRECT", each series summed over its label sets, "-"
# for one the page does not have (an older binary); nothing when there is no admin port (a
# peer) or the page cannot be read. python3's urllib, as install-deps.sh does not install curl.
dotgate_counters() {
  [ -n "$admin_port" ] || return 0
  python3 - "http://127.0.0.1:$admin_port/metrics" <<'EOF' 2>/dev/null || true
import sys
import urllib.request

NAMES = ["dotgate_worker_wakeups_total", "dotgate_worker_lingers_total",
         "dotgate_upstream_tc_fallbacks_total", "dotgate_upstream_tcp_direct_total"]
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    page = r.read().decode("utf-8", "replace")
sums = {}
for line in page.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    # name{labels} value [timestamp], or name value [timestamp]
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], line[line.rfind("}") + 1:]
    else:
        name, rest = line[:space], line[space:]
    if name in NAMES and rest.split():
        sums[name] = sums.get(name, 0.0) + float(rest.split()[0])
print(" ".join("%.0f" % sums[n] if n in sums else "-" for n in NAMES))
EOF
}
# per_answer BEFORE AFTER ANSWERS: dotgate_counters' two readings to "WAKEUPS LINGERS TC DIRECT"
# per answered query ("-" where there is nothing to say: no reading, no answers, or a series in
# neither reading; a series in one reading only counts as 0 in the other).
per_answer() {
  awk -v a="$1" -v b="$2" -v n="${3:-0}" 'BEGIN {
    if (split(a, x) != 4 || split(b, y) != 4 || n + 0 <= 0) { print "- - - -"; exit }
    split("%.3f %.3f %.4f %.4f", f, " ")
    for (i = 1; i <= 4; i++) {
      if (x[i] == "-" && y[i] == "-") v = "-"
      else v = sprintf(f[i], ((y[i] == "-" ? 0 : y[i]) - (x[i] == "-" ? 0 : x[i])) / n)
      printf "%s%s", v, (i < 4 ? " " : "\n")
    }
  }'
}

# report_run ...: print one measurement and append it to the queries CSV (arguments in the
# order of the CSV's columns; the last, the client: dnsperf, h2load or dotclient.py).
report_run() {
  local lost=${13} lost_pct=${14} qps=${15} lat=${16} p50=${17} p99=${18} p999=${19}
  local cps=${21} cpu_s=${22} cpu_pct=${23} cpu_us=${24} cpu_conn=${25} bcpu=${26} peak=${27}
  local wake=${28} linger=${29} tc=${30} direct=${31} status=${33} client=${34} own=""
  if [ -n "$wake$linger$tc$direct" ]; then
    own=$(awk -v w="$wake" -v l="$linger" -v t="$tc" -v d="$direct" 'BEGIN {
      printf ", per query: %s wake-ups, %s lingers; TC fallback %s, direct TCP %s",
        (w == "" ? "?" : w), (l == "" ? "?" : l), (t == "" ? "?" : sprintf("%.2f%%", 100 * t)),
        (d == "" ? "-" : sprintf("%.2f%%", 100 * d)) }')
  fi
  printf '    %s: %s qps, lost %s (%s%%), latency avg %s / p50 %s / p99 %s / p99.9 %s ms, server CPU %s s (%s%%) = %s us/query%s, backend %s us/query%s%s%s\n' \
    "$client" "${qps:-?}" "${lost:-?}" "$lost_pct" "$lat" "$p50" "$p99" "$p999" "$cpu_s" "$cpu_pct" "$cpu_us" \
    "${cpu_conn:+, $cps connections/s = $cpu_conn us/connection}" "$bcpu" \
    "${peak:+, backend TCP connections peak $peak}" "$own" "$([ "$status" = ok ] || echo " [$status]")" >&2
  csv_line "$@" >>"$qcsv"
}

# run_queries SCENARIO NAME DESC WORKERS PINNING RATE CLIENTS QPC [TOOL]
# One load run against the server on $port; one line in the queries CSV.
#   PINNING  "pinned": the client on the client core; "unpinned": on every core
#   QPC      queries per connection (0 = no limit; else dnsperf reconnects after that many)
#   TOOL     dnsperf (the default: -m dot, or -m doh for a DoH server, GET) or h2load (a DoH
#            server: GET ?dns= with the same queries, CLIENTS connections of --h2-streams
#            streams each, --rps RATE/CLIENTS each; QPC must be 0)
run_queries() {
  local scenario=$1 name=$2 desc=$3 workers=$4 pinning=$5 rate=$6 nclients=$7 qpc=$8 tool=${9:-dnsperf}
  local out=$work/$scenario-$name-w$workers-$pinning-$rate-c$nclients.$tool
  local pin=("${client_pin[@]}") qflag=() oflag=() threads q=$outstanding status=ok s0 b0 s1 b1 t0 t1 m0 m1
  local mode=dot cmd
  [ "$pinning" = pinned ] || pin=("${free_pin[@]}")
  ! is_doh "$name" || mode=doh
  if [ "$tool" = h2load ]; then
    [ "$rate" = max ] || qflag=(--rps "$(awk -v r="$rate" -v c="$nclients" 'BEGIN { printf "%.3f", r / c }')")
    q=$((nclients * h2_streams))
    # -t 1: one thread on the client core; --log-file: one line per request, with its latency
    # (dnsperf_stats.py --h2load). It appends: start from an empty file.
    rm -f "$out.log"
    cmd=(h2load -B "https://127.0.0.1:$port" -i "$work/doh-uris.txt" -c "$nclients" -m "$h2_streams" -t 1
      -D "$duration" "${qflag[@]}" --log-file "$out.log")
  else
    [ "$rate" = max ] || qflag=(-Q "$rate")
    [ "$qpc" = 0 ] || { oflag=(-O "num-queries-per-conn=$qpc"); q=$((nclients * qpc)); }
    # dnsperf serves at most 256 connections per thread. -v: one line per answer, with its
    # latency (dnsperf_stats.py). -m doh: GET to /dns-query (dnsperf's defaults).
    threads=$(((nclients + 255) / 256))
    cmd=(dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c "$nclients" -T "$threads"
      -q "$q" -l "$duration" -t 5 -v "${qflag[@]}" "${oflag[@]}")
  fi
  m0=$(dotgate_counters)
  s0=$(tree_ticks "$server_pid")
  b0=$(cpu_ticks "$unbound_pid")
  t0=$(now_s)
  timeout $((duration + 60)) "${pin[@]}" "${cmd[@]}" >"$out" 2>"$out.err" </dev/null &
  local dp=$!
  client_pids+=("$dp")
  watch_client "$dp" "$name"
  wait "$dp" || status="$tool exit $?"
  forget_pid "$dp"
  t1=$(now_s)
  s1=$(tree_ticks "$server_pid") || status="server died"
  b1=$(cpu_ticks "$unbound_pid") || b1=$b0
  m1=$(dotgate_counters)

  local sent done_q lost qps lat rcodes reconn p50 p99 p999 stats=("$out")
  if [ "$tool" = h2load ]; then
    # "requests: T total, S started, D done, OK succeeded, F failed, E errored, X timeout":
    # F = HTTP status other than 2xx, E and X = no response; the streams still open when the
    # time is up are in none of them (dnsperf does not count those as lost either).
    # "time for request: min max mean sd": the mean with its unit (us, ms, s).
    read -r sent done_q lost qps lat < <(awk '
      /^finished in/ { secs = $3; sub(/s,$/, "", secs) }
      /^requests:/ { total = $2; ok = $8; bad = $10 + $12 + $14 }
      /^time for request:/ { v = $6; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
        mean = v / (u == "us" ? 1e6 : u == "ms" ? 1e3 : 1) }
      END { if (total != "") printf "%d %d %d %.1f %.6f\n", total, ok, bad, (secs > 0 ? ok / secs : 0), mean }' "$out")
    reconn=0
    rcodes=$(awk '/^status codes:/ { printf "HTTP %s 2xx, %s 3xx, %s 4xx, %s 5xx", $3, $5, $7, $9; exit }' "$out")
    stats=(--h2load "$out.log")
  else
    sent=$(dnsperf_field "Queries sent:" "$out")
    done_q=$(dnsperf_field "Queries completed:" "$out")
    lost=$(dnsperf_field "Queries lost:" "$out")
    qps=$(dnsperf_field "Queries per second:" "$out")
    lat=$(dnsperf_field "Average Latency (s):" "$out")
    reconn=$(dnsperf_field "Reconnections:" "$out")
    rcodes=$(awk -F': *' '/Response codes:/ { print $2; exit }' "$out")
  fi
  # Steady-state percentiles: the first second's answers (the client still opening its TLS
  # connections, queries queued behind the handshakes on every server) are left out.
  local skip=0
  case $scenario in throughput | unpinned | doh-throughput) skip=$(awk -v q="${qps:-0}" 'BEGIN { printf "%d", q }') ;; esac
  read -r p50 p99 p999 < <(python3 "$here/dnsperf_stats.py" --skip "$skip" "${stats[@]}" || echo "- - -")
  # h2load's paced load comes in bursts (see h2load_bursts.py): their shape, and what the
  # server made of them, on the progress output.
  if [ "$tool" = h2load ] && [ "$rate" != max ]; then
    echo "    h2load load shape: $(python3 "$here/h2load_bursts.py" "$out.log" 2>&1 || true)" >&2
  fi
  [ "$p50" != - ] || { p50=""; p99=""; p999=""; }
  if [ -z "$done_q" ] || [ "$done_q" = 0 ]; then
    [ "$status" != ok ] || status="no answers"
    echo "--- $tool output:" >&2
    grep -v '^> ' "$out" | tail -n 20 >&2
    tail -n 5 "$out.err" >&2
  fi
  # Connections: the initial ones, plus one per reconnection.
  local conns=$((nclients + ${reconn:-0})) window
  window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  local lost_pct lat_ms cpu_s cpu_pct cpu_us cpu_conn bcpu_us cps
  read -r lost_pct lat_ms cpu_s cpu_pct cpu_us cpu_conn bcpu_us cps < <(awk -v sent="${sent:-0}" \
    -v c="${done_q:-0}" -v lost="${lost:-0}" -v lat="${lat:-0}" -v s0="$s0" -v s1="${s1:-$s0}" \
    -v b0="$b0" -v b1="$b1" -v hz="$clk" -v w="$window" -v conns="$conns" -v qpc="$qpc" 'BEGIN {
      cpu = (s1 - s0) / hz; bcpu = (b1 - b0) / hz
      printf "%.2f %.3f %.2f %.0f %.1f %s %.1f %s\n", (sent ? 100 * lost / sent : 0), lat * 1000, cpu,
        (w > 0 ? 100 * cpu / w : 0), (c ? cpu * 1e6 / c : 0),
        (qpc > 0 && conns ? sprintf("%.1f", cpu * 1e6 / conns) : "-"), (c ? bcpu * 1e6 / c : 0),
        (qpc > 0 && w > 0 ? sprintf("%.0f", conns / w) : "-") }')
  [ "$cpu_conn" != - ] || cpu_conn=""
  [ "$cps" != - ] || cps=""
  [ "$qpc" != 0 ] || conns=$nclients
  # dotgate's own counters per answer (empty for the peers, which have no admin port).
  local wake="" linger="" tc="" direct="" v
  if [ -n "$admin_port" ]; then
    if [ -z "$m0" ] || [ -z "$m1" ]; then
      warn "$name: could not read http://127.0.0.1:$admin_port/metrics: no counters for this run"
    else
      read -r wake linger tc direct < <(per_answer "$m0" "$m1" "$done_q")
      for v in wake linger tc direct; do [ "${!v}" != - ] || printf -v "$v" '%s' ""; done
    fi
  fi
  report_run "$scenario" "$name" "$desc" "$workers" "$pinning" "$rate" "$window" "$nclients" "$q" "$qpc" \
    "$sent" "$done_q" "$lost" "$lost_pct" "$qps" "$lat_ms" "$p50" "$p99" "$p999" "$conns" "$cps" \
    "$cpu_s" "$cpu_pct" "$cpu_us" "$cpu_conn" "$bcpu_us" "$tcp_peak" "$wake" "$linger" "$tc" "$direct" \
    "$rcodes" "$status" "$tool"
  rm -f "$out" "$out.err" "$out.log" # up to a million lines each; the CSV has what matters
  sleep 1 # let the connections close before the next run
}

# run_load NAME DESC CONNS: dotclient.py load against the server on $port, pinned: CONNS
# connections, $scale_rate queries per second in all, round-robin, for --duration seconds
# after all connections are up (dnsperf polls each of its sockets in turn, which makes it the
# bottleneck long before 5,000 connections). No dotgate counters here: dotclient.py counts CPU
# and answers over its window only, after the connections are open, and a scrape from here
# would also count the handshakes and the first query on each connection.
run_load() {
  local name=$1 desc=$2 conns=$3 out=$work/load-$1-$3.json status=ok pids line
  pids=$(tree_pids "$server_pid" | tr '\n' ' ')
  timeout $((duration + 60 + conns / 100)) "${client_pin[@]}" python3 "$here/dotclient.py" load \
    --port "$port" --conns "$conns" --rate "$scale_rate" --seconds "$duration" \
    --queries "$work/queries.txt" --pids "$pids" --backend-pid "$unbound_pid" >"$out" 2>"$out.err" </dev/null &
  local lp=$!
  client_pids+=("$lp")
  watch_client "$lp" "$name"
  wait "$lp" || status="dotclient exit $?"
  forget_pid "$lp"
  kill -0 "$server_pid" 2>/dev/null || status="server died"
  line=$(grep -m1 '^{' "$out" || true)
  if [ -z "$line" ]; then
    [ "$status" != ok ] || status="no result"
    tail -n 5 "$out.err" >&2
    line="{}"
  fi
  local f
  f=$(printf '%s' "$line" | python3 -c '
import json, sys
r = json.load(sys.stdin)
g = lambda k: "" if r.get(k) is None else r[k]
a, s, w = r.get("answered") or 0, r.get("sent") or 0, r.get("window_s") or 0
cpu, bcpu = r.get("server_cpu_s"), r.get("backend_cpu_s")
print(g("connections"), g("sent"), g("answered"), g("lost"), "%.2f" % (100.0 * g("lost") / s) if s else "",
      g("qps"), g("avg_ms"), g("p50_ms"), g("p99_ms"), g("p999_ms"), g("window_s"),
      "" if cpu is None else cpu, "%.0f" % (100 * cpu / w) if cpu is not None and w else "",
      "%.1f" % (cpu * 1e6 / a) if cpu is not None and a else "",
      "%.1f" % (bcpu * 1e6 / a) if bcpu is not None and a else "",
      (r.get("error") or "").replace(" ", "_"))
' 2>/dev/null || true)
  local held sent answered lost lost_pct qps avg p50 p99 p999 window cpu_s cpu_pct cpu_us bcpu_us err
  read -r held sent answered lost lost_pct qps avg p50 p99 p999 window cpu_s cpu_pct cpu_us bcpu_us err <<<"$f"
  [ -z "${err:-}" ] || status="${err//_/ }"
  [ -z "$held" ] || [ "$held" -ge "$conns" ] || [ "$status" != ok ] || status="only $held of $conns connections opened"
  report_run scaling-conns "$name" "$desc" 1 pinned "$scale_rate" "${window:-}" "$conns" "" 0 \
    "${sent:-}" "${answered:-}" "${lost:-}" "${lost_pct:-}" "${qps:-}" "${avg:-}" "${p50:-}" "${p99:-}" "${p999:-}" \
    "${held:-}" "" "${cpu_s:-}" "${cpu_pct:-}" "${cpu_us:-}" "" "${bcpu_us:-}" "$tcp_peak" "" "" "" "" "" "$status" dotclient.py
  sleep 1
}

# measure_handshakes NAME DESC: four handshake loops against the server on $port.
measure_handshakes() {
  local name=$1 desc=$2 mode tool out s0 s1 t0 t1 hs reused status line
  for mode in full-tls1.3 full-tls1.2 resumed-tls1.3 resumed-tls1.2; do
    progress "$name, handshakes: $mode, ${hs_time}s"
    out=$work/$name-$mode.hs
    status=ok
    s0=$(tree_ticks "$server_pid")
    t0=$(now_s)
    case $mode in
      full-tls1.3 | full-tls1.2 | resumed-tls1.2)
        # s_time without -www only handshakes and closes. -new: a full handshake each time;
        # -reuse: resume the first session.
        tool="openssl s_time"
        local how=-new ver=-tls1_3
        [[ $mode != resumed-* ]] || how=-reuse
        [[ $mode != *tls1.2 ]] || ver=-tls1_2
        timeout $((hs_time + 30)) "${client_pin[@]}" openssl s_time -connect "127.0.0.1:$port" \
          "$how" "$ver" -time "$hs_time" >"$out" 2>&1 </dev/null || status="s_time exit $?"
        t1=$(now_s)
        hs=$(awk '/ connections in [0-9.]+s;/ { print $1; exit }' "$out")
        # One character per connection: "r" resumed, "*" new.
        reused=$(grep -E '^[r*]+$' "$out" | tr -cd 'r' | wc -c)
        ;;
      resumed-tls1.3)
        # s_time never reads, so it never gets a TLS 1.3 ticket (sent after the handshake):
        # dotclient.py reads the ticket and resumes with it.
        tool="dotclient.py resume"
        timeout $((hs_time + 30)) "${client_pin[@]}" python3 "$here/dotclient.py" resume \
          --port "$port" --seconds "$hs_time" --tls 1.3 >"$out" 2>&1 </dev/null || status="dotclient exit $?"
        t1=$(now_s)
        line=$(grep -m1 '^{' "$out" || true)
        hs=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])' 2>/dev/null || true)
        reused=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reused"])' 2>/dev/null || true)
        ;;
    esac
    s1=$(tree_ticks "$server_pid") || status="server died"
    if [ -z "$hs" ] || [ "$hs" = 0 ]; then
      [ "$status" != ok ] || status="no handshakes"
      tail -n 5 "$out" >&2
    fi
    local res
    res=$(awk -v n="${hs:-0}" -v r="${reused:-0}" -v s0="$s0" -v s1="${s1:-$s0}" -v hz="$clk" \
      -v a="$t0" -v b="$t1" 'BEGIN { cpu = (s1 - s0) / hz
        printf "%.1f %.2f %s", (b > a ? n / (b - a) : 0), cpu, (n ? sprintf("%.1f", cpu * 1e6 / n) : "") }')
    local per_s cpu_s cpu_us
    read -r per_s cpu_s cpu_us <<<"$res"
    if [[ $mode == resumed-* ]] && [ "${hs:-0}" -gt 0 ] && [ "${reused:-0}" -lt $((hs * 9 / 10)) ] && [ "$status" = ok ]; then
      status="only ${reused:-0} of $hs resumed"
    fi
    printf '    %s handshakes (%s resumed), %s/s, server CPU %s s = %s us/handshake%s\n' "${hs:-0}" "${reused:-0}" \
      "$per_s" "$cpu_s" "${cpu_us:-?}" "$([ "$status" = ok ] || echo " [$status]")" >&2
    csv_line "$name" "$desc" "$mode" "$tool" "$hs_time" "$hs" "$reused" "$per_s" "$cpu_s" "$cpu_us" "$status" >>"$hcsv"
    rm -f "$out"
  done
}

# measure_idle NAME DESC SCENARIO: RSS per idle connection, at each of the idle counts (of
# SCENARIO: idle, or doh-idle), on a fresh server started with long idle timeouts (port $port);
# idle HTTP/2 connections for a DoH server (dotclient.py hold --h2), else DoT ones.
measure_idle() {
  local name=$1 desc=$2 scenario=$3 before target prev=0 held=0 holders=() files=() i chunk first reason=""
  local counts=("${idle_list[@]}") h2=()
  [ "$scenario" = idle ] || counts=("${doh_idle_list[@]}")
  ! is_doh "$name" || h2=(--h2)
  # Holder processes of at most 5,000 connections each (well under the descriptor limit),
  # started side by side on any core: opening is the client's CPU work, and the server's
  # memory does not depend on where its clients run.
  local per_client=5000
  [ "$per_client" -lt $((fd_limit - 100)) ] || per_client=$((fd_limit - 100))
  sleep 1
  before=$(tree_rss_kib "$server_pid")
  for target in "${counts[@]}"; do
    if [ -n "$reason" ]; then
      progress "$name, idle connections: $target: skipped"
      csv_line "$name" "$desc" "$target" "" "" "$before" "" "" "not measured: $reason" "$scenario" >>"$icsv"
      continue
    fi
    if backend_conn_each "$name" && [ $((2 * target + 100)) -gt "$fd_limit" ]; then
      # nginx and HAProxy hold a connection to Unbound for every client connection.
      reason="needs 2 descriptors per connection (client + its own TCP connection to Unbound): 2 x $target > the limit of $fd_limit per process (ulimit -Hn)"
      progress "$name, idle connections: $target: not possible"
      warn "$name: $reason"
      csv_line "$name" "$desc" "$target" "" "" "$before" "" "" "not possible: $reason" "$scenario" >>"$icsv"
      continue
    fi
    progress "$name, idle ${h2:+HTTP/2 }connections: opening $((target - prev)) more, to $target"
    i=0
    files=()
    while [ $((prev + i * per_client)) -lt "$target" ]; do
      first=$((prev + i * per_client))
      chunk=$((target - first))
      [ "$chunk" -le "$per_client" ] || chunk=$per_client
      local f=$work/hold-$name-$target-$i.json
      files+=("$f")
      "${free_pin[@]}" python3 "$here/dotclient.py" hold --port "$port" --count "$chunk" \
        --first "$first" --names "$names" --ready "$f" --max-hold 900 "${h2[@]}" </dev/null &
      holders+=("$!")
      client_pids+=("$!")
      i=$((i + 1))
    done
    # Wait for every holder of this step to report (a Python client opens ~500-1000/s).
    local deadline=$((SECONDS + 60 + (target - prev) / 100)) ok=1 f got=0 err=""
    for f in "${files[@]}"; do
      while [ ! -s "$f" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
      if [ ! -s "$f" ]; then ok=0; err="a client did not finish opening in time"; continue; fi
      local h e
      h=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["held"])' "$f")
      e=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$f")
      got=$((got + h))
      [ -z "$e" ] || err=$e
    done
    held=$((held + got))
    sleep 2 # let the server settle (deferred frees, buffers shrinking)
    local after est status=ok bpc
    after=$(tree_rss_kib "$server_pid")
    est=$(established sport "$port")
    kill -0 "$server_pid" 2>/dev/null || status="server died"
    if [ "$held" -lt "$target" ] || [ "$ok" = 0 ]; then
      if [ "$held" -ge $((fd_limit - 200)) ]; then
        # The server's own descriptors (listeners, epoll, upstream sockets...) count too.
        reason="the server stopped accepting at $held connections: its file descriptor limit is $fd_limit"
        status="held $held of $target: the server reached its limit of $fd_limit file descriptors"
      else
        reason="the server stopped accepting at $held connections"
        status="held $held of $target: $err"
      fi
    fi
    bpc=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n }')
    printf '    %s connections held (%s established at the server), RSS %s -> %s KiB = %s bytes/connection%s\n' \
      "$held" "$est" "$before" "$after" "${bpc:-?}" "$([ "$status" = ok ] || echo " [$status]")" >&2
    csv_line "$name" "$desc" "$target" "$held" "$est" "$before" "$after" "$bpc" "$status" "$scenario" >>"$icsv"
    prev=$target
  done
  for i in "${holders[@]}"; do
    stop_pid "$i" TERM 10 || true
    forget_pid "$i"
  done
}

# skip_query_row SCENARIO NAME DESC WORKERS PINNING RATE CLIENTS QPC REASON [CLIENT]: a
# queries-CSV line for a run that did not happen (counts as a step).
skip_query_row() {
  step=$((step + 1))
  csv_line "$1" "$2" "$3" "$4" "$5" "$6" "$duration" "$7" "" "$8" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "" "$9" "${10:-dnsperf}" >>"$qcsv"
}
# skip_rows NAME DESC REASON WHICH: "skipped" lines for every measurement of WHICH (normal|idle|
# doh-throughput|doh-idle).
skip_rows() {
  local name=$1 desc=$2 reason="skipped: $3" r m c
  if [ "$4" = doh-throughput ]; then
    for r in "${rate_list[@]}"; do
      for c in $(doh_tools "$name"); do skip_query_row doh-throughput "$name" "$desc" 1 pinned "$r" "$clients" 0 "$reason" "$c"; done
    done
  elif [ "$4" = doh-idle ]; then
    for c in "${doh_idle_list[@]}"; do
      step=$((step + 1))
      csv_line "$name" "$desc" "$c" "" "" "" "" "" "$reason" doh-idle >>"$icsv"
    done
  elif [ "$4" = normal ]; then
    if want throughput; then
      for r in "${rate_list[@]}"; do skip_query_row throughput "$name" "$desc" 1 pinned "$r" "$clients" 0 "$reason"; done
    fi
    if want short; then skip_query_row short "$name" "$desc" 1 pinned max "$clients" "$short_queries" "$reason"; fi
    if want unpinned; then
      for r in "${unpinned_list[@]}"; do skip_query_row unpinned "$name" "$desc" 1 unpinned "$r" "$clients" 0 "$reason"; done
    fi
    if want handshake; then
      for m in full-tls1.3 full-tls1.2 resumed-tls1.3 resumed-tls1.2; do
        step=$((step + 1))
        csv_line "$name" "$desc" "$m" "" "$hs_time" "" "" "" "" "" "$reason" >>"$hcsv"
      done
    fi
  else
    for c in "${idle_list[@]}"; do
      step=$((step + 1))
      csv_line "$name" "$desc" "$c" "" "" "" "" "" "$reason" idle >>"$icsv"
    done
  fi
}

busy_start=$(cpu_busy_pct)
busy_note=""
if [ "$busy_start" -gt 10 ]; then
  busy_note="Other work was using ${busy_start}% of the CPU just before the run: treat these numbers as rough."
  warn "$busy_note"
fi

# Which server takes part in which scenarios: a DoH server in the DoH ones only, a DoT server in
# the DoT ones, and dotgate (DoT) in both; and the DoH clients of each (h2load speaks no DoT).
takes_dot() { ! is_doh "$1"; }
takes_doh() { is_doh "$1" || [ "$1" = dotgate ]; }
doh_tools() { if is_doh "$1"; then echo "${doh_client_list[*]}"; else echo dnsperf; fi; }
per_server=0
want throughput && per_server=$((per_server + ${#rate_list[@]}))
want short && per_server=$((per_server + 1))
want unpinned && per_server=$((per_server + ${#unpinned_list[@]}))
want handshake && per_server=$((per_server + 4))
want idle && per_server=$((per_server + ${#idle_list[@]}))
total_steps=0
for name in "${server_list[@]}"; do
  ! takes_dot "$name" || total_steps=$((total_steps + per_server))
  if takes_doh "$name"; then
    read -r -a tools <<<"$(doh_tools "$name")"
    ! want doh-throughput || total_steps=$((total_steps + ${#rate_list[@]} * ${#tools[@]}))
    ! want doh-idle || total_steps=$((total_steps + ${#doh_idle_list[@]}))
  fi
done
if want scaling; then
  if want unpinned; then total_steps=$((total_steps + ${#unpinned_list[@]})); else total_steps=$((total_steps + 1)); fi
  total_steps=$((total_steps + 4))
fi
say "$total_steps measurements; dnsperf runs of ${duration}s, handshake runs of ${hs_time}s"

# up_or_skip NAME DESC MODE WHICH: start NAME on the server core (MODE "idle": with long idle
# timeouts); when it cannot be (dotgate not built, a failed start), warn, write the "skipped"
# rows of WHICH (see skip_rows) and fail.
up_or_skip() {
  local name=$1 desc=$2 mode=$3 which=$4 skip=""
  ! is_dotgate "$name" || skip=$dotgate_skip
  if [ -z "$skip" ]; then
    say "starting $desc$([ "$mode" != idle ] || echo " with long idle timeouts") (core $server_cpu)"
    bring_up "$name" "$mode" 1 "${server_pin[@]}" || skip=$up_error
  fi
  if [ -n "$skip" ]; then
    warn "SKIPPING $name ($which): $skip"
    skip_rows "$name" "$desc" "$skip" "$which"
    return 1
  fi
  say "$name is up on 127.0.0.1:$port (pid $server_pid, effective uid $(awk '/^Uid:/ { print $3 }' "/proc/$server_pid/status"))"
}

# run_idle NAME DESC SCENARIO: the idle-connection measurement of SCENARIO (idle, doh-idle) on
# a fresh process with long idle timeouts.
run_idle() {
  if up_or_skip "$1" "$2" idle "$3"; then
    measure_idle "$1" "$2" "$3"
    take_down "$1"
  fi
}

for name in "${server_list[@]}"; do
  desc=$(describe "$name")

  # -- queries, short connections, handshakes: one server process, default settings
  if takes_dot "$name" && { want throughput || want short || want unpinned || want handshake; }; then
    if up_or_skip "$name" "$desc" normal normal; then
      if want throughput; then
        for rate in "${rate_list[@]}"; do
          progress "$name, queries: $clients connections, offered $rate qps, ${duration}s"
          run_queries throughput "$name" "$desc" 1 pinned "$rate" "$clients" 0
        done
      fi
      if want short; then
        progress "$name, short connections: $short_queries queries each, $clients at a time, ${duration}s"
        run_queries short "$name" "$desc" 1 pinned max "$clients" "$short_queries"
      fi
      if want handshake; then
        measure_handshakes "$name" "$desc"
      fi
      if want unpinned; then
        # Let the scheduler place everything: the server, Unbound and dnsperf on any core.
        repin "$every_core" "$server_pid"
        repin "$every_core" "$unbound_pid"
        for rate in "${unpinned_list[@]}"; do
          progress "$name, queries, nothing pinned: offered $rate qps, ${duration}s"
          run_queries unpinned "$name" "$desc" 1 unpinned "$rate" "$clients" 0
        done
        repin "$backend_cores" "$unbound_pid"
      fi
      take_down "$name"
    fi
  fi

  # -- idle connections: a fresh process with long idle timeouts
  if takes_dot "$name" && want idle; then
    run_idle "$name" "$desc" idle
  fi

  # -- DoH queries (dotgate: its DoT, for the "DoH vs own DoT" line): each client at each rate
  if takes_doh "$name" && want doh-throughput; then
    if up_or_skip "$name" "$desc" normal doh-throughput; then
      for tool in $(doh_tools "$name"); do
        for rate in "${rate_list[@]}"; do
          progress "$name, $(is_doh "$name" && echo DoH || echo DoT) queries ($tool): $clients connections, offered $rate qps, ${duration}s"
          run_queries doh-throughput "$name" "$desc" 1 pinned "$rate" "$clients" 0 "$tool"
        done
      done
      take_down "$name"
    fi
  fi

  # -- idle HTTP/2 connections (dotgate: idle DoT connections, at the same counts)
  if takes_doh "$name" && want doh-idle; then
    run_idle "$name" "$desc" doh-idle
  fi
done

# -- scaling: dotgate with 2 workers; 100 vs many connections for dotgate and the best peer
chosen_peer=""
if want scaling; then
  if [ -n "$peer" ]; then
    chosen_peer=$peer
  else
    # The peer that spent the least CPU per query at "max" in this run (pinned); every
    # dotgate setting (dotgate, dotgate-linger) is ours, not a peer.
    chosen_peer=$(python3 - "$qcsv" <<'EOF'
import csv, sys
best = None
for r in csv.DictReader(open(sys.argv[1])):
    if r["scenario"] == "throughput" and r["rate"] == "max" and not r["server"].startswith("dotgate") \
            and r["status"] == "ok" and r["cpu_us_per_query"]:
        v = float(r["cpu_us_per_query"])
        if best is None or v < best[0]:
            best = (v, r["server"])
print(best[1] if best else "dnsdist-tuned")
EOF
)
  fi
  say "scaling: dotgate and the best peer ($chosen_peer, least CPU per query at max)"
  scale_w_rates=("${unpinned_list[@]}")
  want unpinned || scale_w_rates=(max)
  for name in dotgate "$chosen_peer"; do
    desc=$(describe "$name")
    skip=""
    ! is_dotgate "$name" || skip=$dotgate_skip
    if [ -z "$skip" ]; then
      say "starting $desc (core $server_cpu)"
      bring_up "$name" normal 1 "${server_pin[@]}" || skip=$up_error
    fi
    if [ -n "$skip" ]; then
      warn "SKIPPING $name (scaling): $skip"
      for c in "$clients" "$scale_clients"; do
        skip_query_row scaling-conns "$name" "$desc" 1 pinned "$scale_rate" "$c" 0 "skipped: $skip"
      done
      continue
    fi
    for c in "$clients" "$scale_clients"; do
      progress "$name, $c connections, $scale_rate qps in all, ${duration}s after opening them"
      run_load "$name" "$desc" "$c"
    done
    take_down "$name"
  done
  desc=$(describe dotgate 2)
  if [ -n "$dotgate_skip" ]; then
    for rate in "${scale_w_rates[@]}"; do
      skip_query_row scaling-workers dotgate "$desc" 2 unpinned "$rate" "$clients" 0 "skipped: $dotgate_skip"
    done
  else
    say "starting $desc (unpinned)"
    if bring_up dotgate normal 2 "${free_pin[@]}"; then
      repin "$every_core" "$unbound_pid"
      for rate in "${scale_w_rates[@]}"; do
        progress "dotgate --workers 2, nothing pinned: offered $rate qps, ${duration}s"
        run_queries scaling-workers dotgate "$desc" 2 unpinned "$rate" "$clients" 0
      done
      repin "$backend_cores" "$unbound_pid"
      take_down dotgate
    else
      warn "SKIPPING dotgate --workers 2: $up_error"
      for rate in "${scale_w_rates[@]}"; do
        skip_query_row scaling-workers dotgate "$desc" 2 unpinned "$rate" "$clients" 0 "skipped: $up_error"
      done
    fi
  fi
fi

# Unbound's own complaints (dropped TCP connections, "too many" anything) go in the report.
unbound_warnings=$(grep -ciE 'error|warning|too many|exceed' "$work/unbound.log" || true)

# ---- report ------------------------------------------------------------------------------------
meta=$work/meta.tsv
{
  printf 'stamp\t%s\n' "$stamp"
  printf 'machine\t%s cores (%s), %s\n' "$ncpu" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -sr)"
  printf 'busy_start\t%s\n' "$busy_start"
  printf 'busy_note\t%s\n' "$busy_note"
  printf 'unbound\t%s\n' "$(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }')"
  printf 'dnsperf\t%s\n' "$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')"
  printf 'openssl\t%s\n' "$(openssl version | awk '{ print $2 }')"
  printf 'dotgate\t%s\n' "${DOTGATE_BIN:-$(git describe --always --dirty 2>/dev/null || echo '?')}"
  printf 'names\t%s\n' "$names"
  printf 'nqueries\t%s\n' "$nqueries"
  printf 'nbig\t%s\n' "$nbig"
  printf 'duration\t%s\n' "$duration"
  printf 'hs_time\t%s\n' "$hs_time"
  printf 'clients\t%s\n' "$clients"
  printf 'outstanding\t%s\n' "$outstanding"
  printf 'short_queries\t%s\n' "$short_queries"
  printf 'scale_clients\t%s\n' "$scale_clients"
  printf 'scale_rate\t%s\n' "$scale_rate"
  printf 'peer\t%s\n' "$chosen_peer"
  printf 'server_cpu\t%s\n' "$server_cpu"
  printf 'client_cpu\t%s\n' "$client_cpu"
  printf 'backend_cpu\t%s\n' "$backend_cpu"
  printf 'incoming_tcp\t%s\n' "$incoming_tcp"
  printf 'fd_limit\t%s\n' "$fd_limit"
  printf 'unbound_warnings\t%s\n' "$unbound_warnings"
  printf 'h2load\t%s\n' "$(h2load --version 2>/dev/null | awk '{ sub(/.*nghttp2\//, ""); print; exit }')"
  printf 'dnsdist\t%s\n' "$(dnsdist_version)"
  printf 'h2_streams\t%s\n' "$h2_streams"
  printf 'doh_clients\t%s\n' "$doh_clients"
  printf 'elapsed_s\t%s\n' "$SECONDS"
} >"$meta"
# A run of DoH scenarios only writes latest-doh.md and no plot: the DoT report stays.
latest=latest.md
want_dot || latest="latest-doh.md"
python3 "$here/report.py" --meta "$meta" --queries "$qcsv" --handshakes "$hcsv" --idle "$icsv" \
  --json "$results/$stamp.json" --md "$results/$latest"
if want_dot && [ -n "$plot_python" ]; then
  "$plot_python" "$here/plot.py" "$results/$stamp.json" "$results/latest.png" ||
    warn "plot.py failed: no latest.png"
fi

echo
cat "$results/$latest"
echo
say "done in $(elapsed); results: $results/$latest, $(want_dot && echo 'latest.png, ')$stamp.json and $stamp-*.csv"
