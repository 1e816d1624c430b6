# shellcheck shell=bash
# Helpers shared by dotgate's scripts. Source it; it is not meant to be run.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Messages go to stderr so that a script's stdout stays its real output.
say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# The repository root (the folder above scripts/).
repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

# Make cargo reachable when rustup installed it but the shell has not sourced its env
# (e.g. a non-login CI shell). Returns non-zero when there is still no cargo.
find_cargo() {
  command -v cargo >/dev/null 2>&1 && return 0
  local d
  for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do
    if [ -x "$d/cargo" ]; then
      PATH="$d:$PATH"
      export PATH
      return 0
    fi
  done
  return 1
}

require_cargo() {
  find_cargo || die "no Rust toolchain: 'cargo' is not on PATH (nor in ~/.cargo/bin).
       Install Rust with rustup (https://rustup.rs) and re-run; this script cannot download it."
}

# True when nothing listens on TCP or UDP port $1 of any local address.
port_free() {
  [ -z "$(ss -Htuln "( sport = :$1 )" 2>/dev/null)" ]
}

# Print the first free port at or above $1 (tries 200 ports).
free_port_from() {
  local p=$1 end=$(($1 + 200))
  while [ "$p" -lt "$end" ]; do
    if port_free "$p"; then
      echo "$p"
      return 0
    fi
    p=$((p + 1))
  done
  return 1
}

# True when some process listens on TCP port $1.
tcp_listening() {
  [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]
}

# True when some socket is bound on UDP port $1.
udp_bound() {
  [ -n "$(ss -Hauln "( sport = :$1 )" 2>/dev/null)" ]
}

# wait_for TIMEOUT_SECS PID DESCRIPTION COMMAND...
# Re-run COMMAND every 0.1 s until it succeeds. Fails when PID dies or the time runs out.
wait_for() {
  local timeout=$1 pid=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  while ! "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn "$what: process $pid exited"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      warn "$what: not ready after ${timeout}s"
      return 1
    fi
    sleep 0.1
  done
}

# stop_pid PID [SIGNAL] [GRACE_SECS]
# Send SIGNAL (default TERM) to PID, wait up to GRACE_SECS (default 10) for it to exit,
# then SIGKILL it. Returns the exit status of the process when it is our child, else 0.
stop_pid() {
  local pid=$1 sig=${2:-TERM} grace=${3:-10}
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null
    return $?
  }
  kill "-$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    # A child that has exited but is not reaped yet still answers kill -0; check for a zombie.
    [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
    warn "process $pid did not exit within ${grace}s of SIG$sig; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null
}

# CPU time (user + system, all threads) of PID in clock ticks; see proc(5). With a second
# argument "reaped": the CPU time of PID's children that it has waited for, instead (cutime +
# cstime; a child's counts there once it has exited and been waited for, with its own reaped
# children's).
cpu_ticks() {
  local stat reaped=${2:-}
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # Field 2 (comm) may hold spaces; the fields after its closing ')' start with field 3.
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $stat
  if [ "$reaped" = reaped ]; then
    echo $((${14} + ${15}))
  else
    echo $((${12} + ${13}))
  fi
}

# unbound_foreground_lines DIR: the server: lines every throw-away Unbound of these scripts
# has (the demo's, the load tests'): in the foreground, no chroot or user switch, no syslog, no
# IPv6, no DNSSEC module, working in DIR with its pid file there.
unbound_foreground_lines() {
  cat <<EOF
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$1"
    pidfile: "$1/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
EOF
}
