#!/usr/bin/env bash
# Side-by-side DNS-over-TLS load test: dotgate and dnsdist, in the same run, each in turn in
# front of the same Unbound, driven by the same dnsperf.
#
#   loadtest/compare.sh [--quick] [--duration N] [--servers LIST] [--rates LIST] [--keep]
#
#   --quick            5-second runs (default: 15 s)
#   --duration N       N-second runs
#   --servers LIST     comma-separated, from: dotgate, dnsdist, dnsdist-mif100, dnsdist-tuned
#                      (default: all four)
#   --rates LIST       comma-separated scenarios; "max" = no rate limit, a number = dnsperf -Q
#                      (default: max,5000,20000)
#   --clients N        dnsperf -c, TLS connections (default 100)
#   --outstanding N    dnsperf -q, queries in flight (default 1000)
#   --server-cpu N     core for the server under test (default 0)
#   --client-cpu N     core for dnsperf (default 1)
#   --backend-cpu N    core for Unbound (default 1, beside dnsperf, so that the server under
#                      test has its core to itself and its CPU time is its own); "none" = unpinned
#   --dnsdist-tcp-threads N  setMaxTCPClientThreads for dnsdist-tuned (default 1)
#   --no-build         use the existing target/release/dotgate
#   --keep             keep the work folder (configs, logs, dnsperf output)
#
# Environment: DOTGATE_BIN=path  measure this binary instead of building target/release/dotgate
#
# The servers under test:
#   dotgate          target/release/dotgate --workers 1
#   dnsdist          dnsdist's defaults: addTLSLocal + newServer, nothing else tuned
#   dnsdist-mif100   as above with addTLSLocal{maxInFlight=100} (out-of-order answers)
#   dnsdist-tuned    maxInFlight=100 on addTLSLocal and on newServer (so that it pipelines
#                    queries on its backend connections instead of opening one per query in
#                    flight), setMaxTCPClientThreads(1) (one TCP worker for its one core),
#                    numberOfStoredSessions=0: the "fair comparison" of the design notes
# All use the same ECDSA P-256 certificate. No packet cache anywhere. dnsdist relays to the
# backend over TCP, dotgate over UDP.
#
# For each server and scenario: queries per second and average latency (dnsperf), lost queries,
# and the CPU time the server spent (utime+stime of all its threads, /proc/PID/stat) per answered
# query. A server that cannot be built or does not start is skipped with a message; the others
# still run.
#
# Output: progress on stderr; loadtest/results/<timestamp>.csv and loadtest/results/latest.md.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
root=$(repo_root)
cd "$root"

duration=15
servers=dotgate,dnsdist,dnsdist-mif100,dnsdist-tuned
rates=max,5000,20000
clients=100
outstanding=1000
server_cpu=0
client_cpu=1
backend_cpu=1
build=1
dnsdist_tcp_threads=1
keep=0
names=10000

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) duration=5 ;;
    --duration) duration=${2:?}; shift ;;
    --servers) servers=${2:?}; shift ;;
    --rates) rates=${2:?}; shift ;;
    --clients) clients=${2:?}; shift ;;
    --outstanding) outstanding=${2:?}; shift ;;
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
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration wants a positive number of seconds"
IFS=, read -r -a server_list <<<"$servers"
IFS=, read -r -a rate_list <<<"$rates"
for s in "${server_list[@]}"; do
  case $s in dotgate | dnsdist | dnsdist-mif100 | dnsdist-tuned) ;; *) die "unknown server: $s" ;; esac
done
for r in "${rate_list[@]}"; do
  [[ $r == max || $r =~ ^[1-9][0-9]*$ ]] || die "bad rate: $r (want max or a number)"
done
ncpu=$(nproc)
for c in "$server_cpu" "$client_cpu" "$backend_cpu"; do
  [ "$c" = none ] || [ "$c" -lt "$ncpu" ] || die "core $c does not exist (this machine has $ncpu)"
done
# taskset prefixes ("none" = no pinning). Used as "${server_pin[@]}" cmd ... so that a command
# started with & is the process itself ($! is its PID, not a subshell's).
pin_for() { if [ "$1" = none ]; then echo env; else echo "taskset -c $1"; fi; }
read -r -a server_pin <<<"$(pin_for "$server_cpu")"
read -r -a client_pin <<<"$(pin_for "$client_cpu")"
read -r -a backend_pin <<<"$(pin_for "$backend_cpu")"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$root/loadtest/work/$stamp
results=$root/loadtest/results
csv=$results/$stamp.csv
mkdir -p "$work" "$results"

unbound_pid=""
server_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$server_pid" ] || stop_pid "$server_pid" TERM 15 || true
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
say "installing dependencies (and dnsdist)"
bash scripts/install-deps.sh dnsdist </dev/null
for t in dnsperf dnsdist unbound kdig openssl taskset; do
  command -v "$t" >/dev/null || die "$t is not installed"
done

dotgate_bin=${DOTGATE_BIN:-$root/target/release/dotgate}
dotgate_skip=""
if [[ ",$servers," == *,dotgate,* ]]; then
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
# Names h00000.bench.test. ... with an A record each (198.18.0.0/15, the benchmarking range),
# an AAAA for every 10th and a TXT for every 20th. The query file asks for each of them.
awk -v n="$names" 'BEGIN {
  for (i = 0; i < n; i++) {
    name = sprintf("h%05d.bench.test.", i)
    printf "    local-data: \"%s 3600 IN A 198.18.%d.%d\"\n", name, int(i / 256) % 256, i % 256
    printf "%s A\n", name > "/dev/stderr"
    if (i % 10 == 0) {
      printf "    local-data: \"%s 3600 IN AAAA 2001:db8::%x\"\n", name, i
      printf "%s AAAA\n", name > "/dev/stderr"
    }
    if (i % 20 == 0) {
      printf "    local-data: '\''%s 3600 IN TXT \"bench record %d\"'\''\n", name, i
      printf "%s TXT\n", name > "/dev/stderr"
    }
  }
}' >"$work/zone.conf" 2>"$work/queries.txt"
nqueries=$(wc -l <"$work/queries.txt")
check_name=h00000.bench.test.

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/key.pem" -out "$work/cert.pem" -days 7 -subj "/CN=dotgate-loadtest" \
  -addext "subjectAltName=DNS:dotgate-loadtest,IP:127.0.0.1" 2>"$work/openssl.log" ||
  { cat "$work/openssl.log" >&2; die "openssl could not make the certificate"; }

# ---- Unbound -----------------------------------------------------------------------------------
uport=$(free_port_from 5400) || die "no free port for Unbound"
cat >"$work/unbound.conf" <<EOF
# Backend for loadtest/compare.sh: one thread, answers from local data only.
server:
    interface: 127.0.0.1@$uport
    port: $uport
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
    # dnsdist keeps TCP connections to the backend; dotgate sends UDP with many queries in flight.
    incoming-num-tcp: 1000
    num-queries-per-thread: 4096
    so-rcvbuf: 8m
    so-sndbuf: 8m
    msg-cache-size: 256m
    rrset-cache-size: 512m
    key-cache-size: 16m
    access-control: 127.0.0.0/8 allow
    # Never recurse to the Internet: everything else is refused.
    local-zone: "." refuse
    local-zone: "bench.test." static
    local-data: "bench.test. 3600 IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300"
    include: "$work/zone.conf"
remote-control:
    control-enable: no
EOF
unbound-checkconf "$work/unbound.conf" >/dev/null || die "generated Unbound config is invalid: $work/unbound.conf"
say "starting Unbound on 127.0.0.1:$uport (core $backend_cpu)"
"${backend_pin[@]}" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
unbound_pid=$!
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport"; }
if ! wait_for 30 "$unbound_pid" Unbound unbound_ready; then
  cat "$work/unbound.log" >&2
  die "Unbound did not start"
fi

# ---- the servers under test --------------------------------------------------------------------
describe() {
  case $1 in
    dotgate) echo "dotgate --workers 1" ;;
    dnsdist) echo "dnsdist $(dnsdist_version) defaults" ;;
    dnsdist-mif100) echo "dnsdist $(dnsdist_version) maxInFlight=100" ;;
    dnsdist-tuned) echo "dnsdist $(dnsdist_version) maxInFlight=100 (frontend+backend), $dnsdist_tcp_threads TCP worker(s), no session cache" ;;
  esac
}
dnsdist_version() { dnsdist --version 2>/dev/null | awk 'NR == 1 { print $2 }'; }

# dnsdist_conf VARIANT PORT: the generated configuration.
dnsdist_conf() {
  local tls_opts="" server_opts="" extra=""
  case $1 in
    dnsdist-mif100) tls_opts=", {maxInFlight=100}" ;;
    dnsdist-tuned)
      tls_opts=", {maxInFlight=100, numberOfStoredSessions=0}"
      server_opts=", maxInFlight=100"
      extra="setMaxTCPClientThreads($dnsdist_tcp_threads)"
      ;;
  esac
  cat <<EOF
-- generated by loadtest/compare.sh ($1)
-- Do not send security-status queries to the Internet.
setSecurityPollSuffix('')
${extra}
addTLSLocal('127.0.0.1:$2', '$work/cert.pem', '$work/key.pem'$tls_opts)
-- The health check asks for a name the backend has (it never recurses).
newServer{address='127.0.0.1:$uport', checkName='$check_name'$server_opts}
EOF
}

# start_server NAME PORT: start it in the background on the server core; sets server_pid.
start_server() {
  local name=$1 port=$2
  case $name in
    dotgate)
      "${server_pin[@]}" "$dotgate_bin" --listen "127.0.0.1:$port" --backend "127.0.0.1:$uport" \
        --cert "$work/cert.pem" --key "$work/key.pem" --workers 1 >"$work/$name.log" 2>&1 &
      ;;
    dnsdist*)
      dnsdist_conf "$name" "$port" >"$work/$name.conf"
      dnsdist --check-config -C "$work/$name.conf" >"$work/$name.log" 2>&1 || return 1
      # Foreground, no console, logs to stderr; no -u/-g, so it stays root and binds nothing privileged.
      "${server_pin[@]}" dnsdist --supervised --disable-syslog -C "$work/$name.conf" >"$work/$name.log" 2>&1 &
      ;;
  esac
  server_pid=$!
}

# answers PORT: one real query over DoT gets the right answer.
answers() {
  timeout 5 kdig @127.0.0.1 -p "$1" +tls +timeout=2 +retry=0 "$check_name" A 2>/dev/null |
    grep -q '198\.18\.0\.0'
}

# Field VALUE from dnsperf's report, e.g. dnsperf_field "Queries per second:" FILE
dnsperf_field() {
  awk -v key="$1" '{
    p = index($0, key)
    if (p && substr($0, 1, p - 1) ~ /^ *$/) { split(substr($0, p + length(key)), w, " "); print w[1]; exit }
  }' "$2"
}

echo "server,variant,rate,duration_s,clients,outstanding,queries_sent,queries_completed,queries_lost,lost_pct,qps,avg_latency_ms,server_cpu_s,server_cpu_us_per_query,backend_cpu_us_per_query,rcodes,status" >"$csv"
clk=$(getconf CLK_TCK)
# How busy the machine is without us: the share of non-idle CPU time over 2 s (/proc/stat).
cpu_busy_pct() {
  local a b
  a=$(head -n1 /proc/stat)
  sleep 2
  b=$(head -n1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0
    for (i = 2; i <= n; i++) total += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%.0f\n", total ? 100 * (total - idle) / total : 0 }'
}
busy_start=$(cpu_busy_pct)
busy_note=""
if [ "$busy_start" -gt 10 ]; then
  busy_note="Other work was using ${busy_start}% of the CPU just before the run: treat these numbers as rough."
  warn "$busy_note"
fi
total=$((${#server_list[@]} * ${#rate_list[@]}))
n=0

for name in "${server_list[@]}"; do
  desc=$(describe "$name")
  skip=""
  [ "$name" != dotgate ] || skip=$dotgate_skip
  port=$(free_port_from 8853) || skip="no free port"
  if [ -z "$skip" ]; then
    say "starting $desc on 127.0.0.1:$port (core $server_cpu)"
    if ! start_server "$name" "$port"; then
      skip="could not start (see below)"
    elif ! wait_for 30 "$server_pid" "$name" tcp_listening "$port" ||
      ! wait_for 30 "$server_pid" "$name answering over DoT" answers "$port"; then
      if kill -0 "$server_pid" 2>/dev/null; then
        skip="not answering over DoT after 30 s"
      else
        st=0
        wait "$server_pid" || st=$?
        skip="exited during start-up with status $st"
      fi
    fi
    if [ -n "$skip" ]; then
      echo "--- last lines of $name's output:" >&2
      tail -n 15 "$work/$name.log" >&2 || true
      [ -z "$server_pid" ] || stop_pid "$server_pid" KILL 5 || true
      server_pid=""
    fi
  fi
  if [ -n "$skip" ]; then
    warn "SKIPPING $name: $skip"
    for rate in "${rate_list[@]}"; do
      n=$((n + 1))
      echo "$name,\"$desc\",$rate,$duration,$clients,$outstanding,,,,,,,,,,,\"skipped: $skip\"" >>"$csv"
    done
    continue
  fi
  uid=$(awk '/^Uid:/ { print $3 }' "/proc/$server_pid/status")
  say "$name is up (pid $server_pid, effective uid $uid)"

  for rate in "${rate_list[@]}"; do
    n=$((n + 1))
    out=$work/$name-$rate.dnsperf
    qflag=()
    [ "$rate" = max ] || qflag=(-Q "$rate")
    say "[$n/$total] $name, offered load: $rate qps, ${duration}s"
    s0=$(cpu_ticks "$server_pid")
    b0=$(cpu_ticks "$unbound_pid")
    status=ok
    timeout $((duration + 60)) "${client_pin[@]}" dnsperf -m dot -s 127.0.0.1 -p "$port" \
      -d "$work/queries.txt" -c "$clients" -q "$outstanding" -l "$duration" -t 5 "${qflag[@]}" \
      >"$out" 2>&1 </dev/null || status="dnsperf exit $?"
    s1=$(cpu_ticks "$server_pid") || status="server died"
    b1=$(cpu_ticks "$unbound_pid") || b1=$b0

    sent=$(dnsperf_field "Queries sent:" "$out")
    done_q=$(dnsperf_field "Queries completed:" "$out")
    lost=$(dnsperf_field "Queries lost:" "$out")
    qps=$(dnsperf_field "Queries per second:" "$out")
    lat=$(dnsperf_field "Average Latency (s):" "$out")
    rcodes=$(awk -F': *' '/Response codes:/ { print $2; exit }' "$out")
    if [ -z "$done_q" ] || [ "$done_q" = 0 ]; then
      [ "$status" != ok ] || status="no answers"
      echo "--- dnsperf output:" >&2
      tail -n 20 "$out" >&2
    fi
    read -r lost_pct lat_ms cpu_s cpu_us bcpu_us < <(awk -v sent="${sent:-0}" -v c="${done_q:-0}" \
      -v lost="${lost:-0}" -v lat="${lat:-0}" -v s0="$s0" -v s1="${s1:-$s0}" -v b0="$b0" -v b1="$b1" \
      -v hz="$clk" 'BEGIN {
        cpu = (s1 - s0) / hz; bcpu = (b1 - b0) / hz
        printf "%.2f %.3f %.2f %.1f %.1f\n", (sent ? 100 * lost / sent : 0), lat * 1000, cpu,
          (c ? cpu * 1e6 / c : 0), (c ? bcpu * 1e6 / c : 0) }')
    printf '    %s qps, lost %s (%s%%), avg latency %s ms, server CPU %s s = %s us/query, backend %s us/query%s\n' \
      "${qps:-?}" "${lost:-?}" "$lost_pct" "$lat_ms" "$cpu_s" "$cpu_us" "$bcpu_us" \
      "$([ "$status" = ok ] || echo " [$status]")" >&2
    echo "$name,\"$desc\",$rate,$duration,$clients,$outstanding,$sent,$done_q,$lost,$lost_pct,$qps,$lat_ms,$cpu_s,$cpu_us,$bcpu_us,\"$rcodes\",$status" >>"$csv"
    sleep 1 # let the connections close before the next scenario
  done

  say "stopping $name (SIGTERM)"
  src=0
  stop_pid "$server_pid" TERM 15 || src=$?
  server_pid=""
  [ "$src" -eq 0 ] || say "$name exited with status $src after SIGTERM"
done

# ---- report ------------------------------------------------------------------------------------
md=$results/latest.md
{
  echo "# DoT load test: dotgate vs dnsdist"
  echo
  echo "Run $stamp by \`loadtest/compare.sh\` (raw numbers: \`$(basename "$csv")\`)."
  echo
  echo "- Machine: $ncpu cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); CPU busy before the run: ${busy_start}%"
  echo "- Backend: Unbound $(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }'), 1 thread, $names names from local data, on core $backend_cpu"
  echo "- Client: $(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2 }') -m dot -c $clients -q $outstanding -l $duration, $nqueries distinct queries, on core $client_cpu"
  echo "- Server under test on core $server_cpu; the same ECDSA P-256 certificate; dotgate ${DOTGATE_BIN:-$(git describe --always --dirty 2>/dev/null || echo '?')}"
  echo "- CPU µs/query = the server's user+system CPU time during the run / answered queries (backend: the same for Unbound)"
  [ -z "$busy_note" ] || printf -- '- **%s**\n' "$busy_note"
  echo
  echo "| server | offered qps | answered qps | lost | avg latency ms | server CPU s (% of its core) | CPU µs/query | backend µs/query | status |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  # Parse the CSV; the quoted fields (variant, rcodes, status) hold no commas of their own
  # except rcodes, which is not shown.
  python3 - "$csv" <<'EOF'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    lost = f"{r['queries_lost']} ({r['lost_pct']}%)" if r['queries_lost'] else ""
    qps = f"{float(r['qps']):.0f}" if r['qps'] else ""
    cpu = r['server_cpu_s']
    if cpu:
        cpu = f"{cpu} ({100 * float(cpu) / float(r['duration_s']):.0f}%)"
    print(f"| {r['variant']} | {r['rate']} | {qps} | {lost} | {r['avg_latency_ms']} | "
          f"{cpu} | {r['server_cpu_us_per_query']} | {r['backend_cpu_us_per_query']} | {r['status']} |")
EOF
  echo
  echo "Offered \"max\": dnsperf keeps $outstanding queries in flight and sends as fast as answers come back."
  echo "dnsperf and Unbound share core $client_cpu, which can be the limit there rather than the server:"
  echo "a server below ~100% of its core was not saturated. dnsdist relays to Unbound over TCP, dotgate over UDP."
} >"$md"

echo
cat "$md"
echo
say "results: $csv and $md"
