# shellcheck shell=bash
# Functions loadtest/compare.sh and loadtest/controls.sh share: the server's CPU and process
# tree from /proc, dnsperf's output, CSV lines, and the benchmark zone both measure with.
# Sourced, never run. They use the sourcing script's `client_pids` array (forget_pid) and
# scripts/lib.sh's helpers (stop_pid).

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
