# shellcheck shell=bash
# Functions the load tests share (loadtest/compare.sh, controls.sh, dnsenc.sh): the server's CPU
# and process tree from /proc, dnsperf's output, CSV lines, the benchmark zone, certificate and
# Unbound, the clean-up; and for the scripts that measure variants of one dotgate in one run
# (controls.sh, dnsenc.sh) their options, set-up, dotgate, clients and checks. Sourced, never
# run. They use scripts/lib.sh's helpers (stop_pid, die...) and the sourcing script's globals
# where they say so (`client_pids` for forget_pid).

now_s() { date +%s.%N; }

# ---- process helpers ---------------------------------------------------------------------------
# PID and all its descendants (nginx: master and worker).
tree_pids() {
  local c
  [ -d "/proc/$1" ] || return 0
  echo "$1"
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_pids "$c"; done
}

# CPU ticks of the whole tree; fails when the root process is gone.
tree_ticks() {
  local t=0 p v
  [ -d "/proc/$1" ] || return 1
  for p in $(tree_pids "$1"); do
    v=$(cpu_ticks "$p") && t=$((t + v))
  done
  echo "$t"
}

# stop_tree PID GRACE: SIGTERM the root, wait, then SIGKILL what is left of the tree.
stop_tree() {
  local pids p rc=0
  pids=$(tree_pids "$1")
  stop_pid "$1" TERM "$2" || rc=$?
  for p in $pids; do
    [ "$p" = "$1" ] || kill -KILL "$p" 2>/dev/null || true
  done
  return "$rc"
}

# forget_pid PID: drop a reaped client from client_pids (its PID may be reused later).
forget_pid() {
  local p kept=()
  for p in "${client_pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  client_pids=("${kept[@]}")
}

# CSV line from the arguments, quoting fields that hold a comma or a quote.
csv_line() {
  local f out="" sep=""
  for f in "$@"; do
    if [[ $f == *[,\"]* ]]; then f="\"${f//\"/\"\"}\""; fi
    out+="$sep$f"
    sep=,
  done
  printf '%s\n' "$out"
}

# Field VALUE from dnsperf's report, e.g. dnsperf_field "Queries per second:" FILE
dnsperf_field() {
  awk -v key="$1" '{
    p = index($0, key)
    if (p && substr($0, 1, p - 1) ~ /^ *$/) { split(substr($0, p + length(key)), w, " "); print w[1]; exit }
  }' "$2"
}

# ---- the run -----------------------------------------------------------------------------------
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

# write_bench_zone NAMES DIR: DIR/zone.conf (Unbound local-data) and DIR/queries.txt (dnsperf).
# Names h00000.bench.test. ... with an A record each (198.18.0.0/15, the benchmarking range),
# an AAAA for every 4th and a TXT for every 10th. Every 70th name's TXT has 6 to 9 strings of
# 200 characters (answers of 1.25 to 1.85 kB, over the 1,232 bytes of the DNS flag day): about
# 1% of the queries. The query file asks for every record once, in name order, so that the
# large answers are spread evenly; dnsperf loops over it.
write_bench_zone() {
  local names=$1 work=$2
  awk -v n="$names" 'BEGIN {
    big = ""
    for (k = 0; k < 200; k++) big = big sprintf("%c", 97 + k % 26)
    for (i = 0; i < n; i++) {
      name = sprintf("h%05d.bench.test.", i)
      printf "    local-data: \"%s 3600 IN A 198.18.%d.%d\"\n", name, int(i / 256) % 256, i % 256
      printf "%s A\n", name > "/dev/stderr"
      if (i % 4 == 0) {
        printf "    local-data: \"%s 3600 IN AAAA 2001:db8::%x\"\n", name, i
        printf "%s AAAA\n", name > "/dev/stderr"
      }
      if (i % 10 == 0) {
        if (i % 70 == 0) {
          s = ""
          for (k = 0; k < 6 + int(i / 70) % 4; k++) s = s sprintf(" \"%s\"", big)
          printf "    local-data: '\''%s 3600 IN TXT%s'\''\n", name, s
        } else
          printf "    local-data: '\''%s 3600 IN TXT \"bench record %d\"'\''\n", name, i
        printf "%s TXT\n", name > "/dev/stderr"
      }
    }
  }' >"$work/zone.conf" 2>"$work/queries.txt"
}

# A name of that zone with an A record (198.18.0.1), and one whose TXT answer is over 1,232 bytes.
# shellcheck disable=SC2034 # for the sourcing scripts
check_name=h00001.bench.test.
# shellcheck disable=SC2034
big_name=h00070.bench.test.

# ---- the bench every script sets up (compare.sh, controls.sh, dnsenc.sh) -----------------------
# enter_repo: root (the repository), here (root/loadtest); cd to root.
# shellcheck disable=SC2034 # for the sourcing scripts
enter_repo() {
  root=$(repo_root)
  here=$root/loadtest
  cd "$root" || die "cannot cd to $root"
}

# install_cleanup: from now on, on exit, stop the clients still running (client_pids), the
# server under test (server_pid, its tree) and Unbound (unbound_pid), then remove the work folder
# ($work) unless $keep is 1.
install_cleanup() {
  unbound_pid=""
  server_pid=""
  client_pids=()
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
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

# write_bench_cert DIR: DIR/cert.pem and DIR/key.pem, a self-signed ECDSA P-256 certificate for
# 127.0.0.1, the one every server is measured with.
write_bench_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1/key.pem" -out "$1/cert.pem" -days 7 -subj "/CN=dotgate-loadtest" \
    -addext "subjectAltName=DNS:dotgate-loadtest,IP:127.0.0.1" 2>"$1/openssl.log" ||
    { cat "$1/openssl.log" >&2; die "openssl could not make the certificate"; }
}

# unbound_bench_lines DIR: the rest of the server: section of every Unbound the load tests
# run (foreground in DIR, one thread, the zone of write_bench_zone in $work, no recursion) and
# its remote-control: section; DIR holds its pid file, so two at once need two DIRs.
unbound_bench_lines() {
  cat <<EOF
$(unbound_foreground_lines "$1")
    num-threads: 1
    # Local data only: few outgoing sockets.
    outgoing-range: 64
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
}

# start_unbound WHO PORT READY_COMMAND... (more lines for its server: section on stdin): the
# backend, one thread, answers from local data only (the zone of write_bench_zone in $work), on
# 127.0.0.1@PORT, pinned by the backend_pin array; sets unbound_pid, and dies unless
# READY_COMMAND succeeds within 60 s.
start_unbound() {
  local who=$1 port=$2 extra
  shift 2
  extra=$(cat)
  cat >"$work/unbound.conf" <<EOF
# Backend for $who: one thread, answers from local data only.
server:
    interface: 127.0.0.1@$port
$extra
    tcp-idle-timeout: 300000
$(unbound_bench_lines "$work")
EOF
  unbound-checkconf "$work/unbound.conf" >/dev/null || die "generated Unbound config is invalid: $work/unbound.conf"
  # shellcheck disable=SC2154 # backend_pin is the sourcing script's
  "${backend_pin[@]}" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
  unbound_pid=$!
  if ! wait_for 60 "$unbound_pid" Unbound "$@"; then
    cat "$work/unbound.log" >&2
    die "Unbound did not start"
  fi
}

# ---- the scripts that measure variants of one dotgate in one run (controls.sh, dnsenc.sh) -------
# Their usage is the comment at the top of the script, down to `set -euo`.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# bench_defaults: the settings both start from (each script may change them before
# parse_options): 10-second runs, 3 repeats, 20,000 qps where a rate is set, a zone of 30,000
# names, dnsperf with 1000 queries in flight, dotgate on core 0 and Unbound and the clients on
# core 1, and a run that loses more than 1% of its queries is an error.
# shellcheck disable=SC2034 # the globals are the sourcing script's
bench_defaults() {
  rate=20000
  duration=10
  repeats=3
  quick=0
  build=1
  keep=0
  names=30000
  outstanding=1000
  server_cpu=0
  client_cpu=1
  backend_cpu=1
  max_lost_pct=1
}

# parse_options ARGS...: the options both take, into the globals quick, rate, duration, repeats,
# build and keep (the script sets their defaults first). --quick makes the runs 3 s and 1 repeat
# unless --duration or --repeats say otherwise; every number must be positive.
# shellcheck disable=SC2034 # the globals are the sourcing script's
parse_options() {
  local set_duration=0 set_repeats=0 v
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
}

# prepare_run NAME: check for 2 cores; set the pins (server_pin, client_pin and backend_pin, from
# server_cpu, client_cpu and backend_cpu), the run's stamp, its work folder ($work,
# loadtest/work/NAME-STAMP) and result files ($csv, $md: loadtest/results/STAMP-NAME.csv and
# .md); install the clean-up.
# shellcheck disable=SC2034,SC2154 # the globals are the sourcing script's
prepare_run() {
  ncpu=$(nproc)
  [ "$ncpu" -ge 2 ] || die "needs 2 cores (this machine has $ncpu)"
  read -r -a server_pin <<<"taskset -c $server_cpu"
  read -r -a client_pin <<<"taskset -c $client_cpu"
  read -r -a backend_pin <<<"taskset -c $backend_cpu"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  work=$root/loadtest/work/$1-$stamp
  results=$root/loadtest/results
  csv=$results/$stamp-$1.csv
  md=$results/$stamp-$1.md
  mkdir -p "$work" "$results"
  install_cleanup
}

# need_tools_and_dotgate TOOL...: die unless every TOOL is installed; build dotgate unless
# $build is 0 or DOTGATE_BIN names a binary (the build log goes to $work); set dotgate_bin.
need_tools_and_dotgate() {
  local t
  for t in "$@"; do
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
}

# take_ports NAME...: a free port for each variable NAME, from $port_base (at first 8853) up;
# port_base moves past them (back to 8853 past 9700), so that a fresh dotgate never waits for
# the ports of the one before.
take_ports() {
  local n p
  for n in "$@"; do
    p=$(free_port_from "${port_base:-8853}") || die "no free port for $n"
    printf -v "$n" %s "$p"
    port_base=$((p + 1))
  done
  [ "$port_base" -lt 9700 ] || port_base=8853
}

# start_bench_dotgate WHAT READY ARGS...: a fresh dotgate with ARGS, the bench certificate, one
# worker (pinned by server_pin) and /metrics on 127.0.0.1:$admin_port, its output appended to
# $work/dotgate-WHAT.log; sets server_pid, and dies (with the log's tail) unless the command READY
# succeeds within 30 s.
# shellcheck disable=SC2154 # admin_port is the sourcing script's
start_bench_dotgate() {
  local what=$1 ready=$2
  shift 2
  # As in compare.sh: every client here is 127.0.0.1, so lift the per-address connection limit.
  "${server_pin[@]}" "$dotgate_bin" "$@" --cert "$work/cert.pem" --key "$work/key.pem" --workers 1 \
    --max-connections-per-ip 1000000 --admin "127.0.0.1:$admin_port" >>"$work/dotgate-$what.log" 2>&1 &
  server_pid=$!
  if ! wait_for 30 "$server_pid" "dotgate ($what)" "$ready"; then
    tail -n 15 "$work/dotgate-$what.log" >&2 || true
    die "dotgate ($what) did not answer: $*"
  fi
}

# stop_dotgate: SIGTERM dotgate (server_pid and its tree) and wait; a warning when it exits
# with a status other than 0.
stop_dotgate() {
  local src=0
  stop_tree "$server_pid" 15 || src=$?
  server_pid=""
  [ "$src" -eq 0 ] || warn "dotgate exited with status $src after SIGTERM"
}

# dig_tls PORT ARGS...: kdig over TLS to 127.0.0.1:PORT, one try, at most 5 s.
dig_tls() { timeout 5 kdig @127.0.0.1 -p "$1" +tls +timeout=2 +retry=0 "${@:2}" 2>/dev/null; }

# dot_answers_right PORT WHO: through kdig over TLS to PORT, $check_name A is NOERROR with the
# right address, and $big_name TXT comes whole (over 1,232 bytes); else die, naming WHO.
dot_answers_right() {
  local out size
  out=$(dig_tls "$1" "$check_name" A) || true
  if ! grep -q 'status: NOERROR' <<<"$out" || ! grep -q '198\.18\.0\.1$' <<<"$out"; then
    die "$2: wrong answer for $check_name A over DoT"
  fi
  size=$(dig_tls "$1" "$big_name" TXT | awk '/^;; Received/ { print $3 }') || true
  [ "${size:-0}" -gt 1232 ] || die "$2: no whole answer for $big_name TXT over DoT (${size:-0} bytes; over 1232 expected)"
}

# metric NAME LABELS: one series from dotgate's /metrics on 127.0.0.1:$admin_port (0 when
# absent), via python3's urllib.
metric() {
  python3 - "http://127.0.0.1:$admin_port/metrics" "$1" "$2" <<'EOF'
import sys, urllib.request
url, name, labels = sys.argv[1:]
page = urllib.request.urlopen(url, timeout=5).read().decode("utf-8", "replace")
want = name + ("{" + labels + "}" if labels else "")
print(next((l.split()[1] for l in page.splitlines() if l.split() and l.split()[0] == want), "0"))
EOF
}

# check_quiet: busy_start, the share of the CPU other work used over 2 s before the runs; a
# warning over 10%.
check_quiet() {
  busy_start=$(cpu_busy_pct)
  [ "$busy_start" -le 10 ] || warn "other work was using ${busy_start}% of the CPU just before the run: treat these numbers as rough"
}

# run_client OUT CMD...: CMD on the client core (client_pin) for at most $duration + 60 s, its
# stdout in OUT and stderr in OUT.err; waits for it. Sets client_status: "ok", or how it ended.
# shellcheck disable=SC2034 # client_status is for the sourcing script
run_client() {
  local out=$1 dp rc
  shift
  client_status=ok
  timeout $((duration + 60)) "${client_pin[@]}" "$@" >"$out" 2>"$out.err" </dev/null &
  dp=$!
  client_pids+=("$dp")
  wait "$dp" || { rc=$?; client_status="${1##*/} exit $rc"; }
  forget_pid "$dp"
}

# dnsperf_counts FILE: "SENT COMPLETED LOST QPS RCODES" from dnsperf's report (or a report in its
# form), "-" for a number that is not there; RCODES is the rest of the line.
dnsperf_counts() {
  local f fields=()
  for f in "Queries sent:" "Queries completed:" "Queries lost:" "Queries per second:"; do
    f=$(dnsperf_field "$f" "$1")
    fields+=("${f:--}")
  done
  echo "${fields[*]} $(awk -F': *' '/Response codes:/ { print $2; exit }' "$1")"
}

# steady_latency FILE QPS: "p50 p99 p99.9" in ms from dnsperf -v's output, the first second's
# answers (QPS of them) left out ("- - -" when there are none).
steady_latency() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/dnsperf_stats.py" \
    --skip "$(awk -v q="${2:-0}" 'BEGIN { printf "%d", q }')" "$1" || echo "- - -"
}

# die_unless_clean WHAT SENT LOST LOST_PCT RCODES: die when a run lost more than $max_lost_pct
# percent of its queries, or had answers other than NOERROR.
# shellcheck disable=SC2154 # max_lost_pct is the sourcing script's
die_unless_clean() {
  if awk -v p="$4" -v m="$max_lost_pct" 'BEGIN { exit !(p > m) }'; then
    die "$1: lost $3 of $2 queries ($4% > $max_lost_pct%); results so far: $csv"
  fi
  [[ $5 == NOERROR\ * && $5 != *,* ]] || die "$1: answers other than NOERROR ($5); results so far: $csv"
}

# run_note BUSY: how a report's note starts: when (from $stamp), which dotgate and Unbound, how
# many cores, and how busy the machine was (BUSY %) just before the run.
run_note() {
  printf '%s, dotgate %s, Unbound %s, %s cores, other work at %s%% CPU before the run' \
    "$(date -u -d "${stamp:0:8} ${stamp:9:2}:${stamp:11:2}:${stamp:13:2}" '+%Y-%m-%d %H:%M UTC')" \
    "$(git describe --always --dirty 2>/dev/null || echo '?')" \
    "$(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }')" "$(nproc)" "$1"
}

# finish_report: print the report ($md) and where the results are.
finish_report() {
  echo
  cat "$md"
  echo
  say "done in ${SECONDS}s; results: $csv, $md"
}
