#!/usr/bin/env bash
# Install the system packages that dotgate's tests, demo and load test use. Idempotent: a
# package that is already installed is left alone, and nothing is fetched when all are there.
#
#   scripts/install-deps.sh              # the standard set
#   scripts/install-deps.sh dnsdist      # ... plus extra Debian packages (the load test uses this)
#
# Works on Debian 12 with or without systemd (also in a plain chroot). Installing unbound or
# bind9 would normally start their services (binding port 53, writing /etc): a temporary
# /usr/sbin/policy-rc.d forbids that, and any daemon that still appears is stopped.
# Finally checks that a Rust toolchain (cargo, rustfmt, clippy) is on PATH; it cannot be
# downloaded here, so its absence is an error.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian package -> why it is needed.
#   unbound        backend resolver for the demo, the integration tests and the load test
#   bind9          second real backend for the integration tests (named; with bind9-utils, its
#                  dependency: dnssec-dsfromkey for the DNSENC key-publication tests)
#   knot-dnsutils  kdig: a DoT client (+tls, +tls-pin); knsupdate: the DS those tests add
#   dnsperf        DoT load generator (-m dot)
#   openssl        test certificates; s_client for the session-resumption tests
#   iproute2       ss (free ports, readiness), ip netns (test hosts)
#   procps         ps, pgrep
#   python3        helper scripts in tests
#   python3-venv   scripts/check-deploy.sh's virtualenv (kubernetes-validate, PyYAML)
#   prometheus     Prometheus and promtool: the dashboard, metrics and alert-rule tests
#   (shellcheck)   lint for these scripts, run by scripts/test.sh
#   curl           a DNS-over-HTTPS client (GET and POST, HTTP/2 and HTTP/1.1) for the DoH tests
PACKAGES=(unbound bind9 knot-dnsutils dnsperf openssl iproute2 procps python3 python3-venv prometheus shellcheck curl "$@")
# Daemons those packages ship; none of them may be left running by the install.
DAEMONS=(unbound named dnsdist prometheus)

# PIDs of running DAEMONS, from /proc (pgrep may not be installed yet).
daemon_pids() {
  local f comm
  for f in /proc/[0-9]*/comm; do
    { read -r comm <"$f"; } 2>/dev/null || continue
    case " ${DAEMONS[*]} " in *" $comm "*)
      f=${f#/proc/}
      printf '%s ' "${f%/comm}"
      ;;
    esac
  done
}

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  say "system packages: all present (${PACKAGES[*]})"
else
  command -v apt-get >/dev/null || die "apt-get not found: install these by hand: ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install these by hand: ${missing[*]}"
    SUDO=(sudo)
  fi
  say "installing: ${missing[*]}"

  log=$(mktemp /tmp/dotgate-install-deps.XXXXXX.log)
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  # PIDs of the daemons that were already running (not ours to touch).
  before=" $(daemon_pids) "

  restore() {
    if [ "$made_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
    rm -f "$log"
  }
  # A policy-rc.d left behind would keep every service on this machine from starting.
  trap restore EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  if [ ! -e "$policy" ]; then
    # 101 = "action forbidden": invoke-rc.d and deb-systemd-invoke then start no service.
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    made_policy=1
  fi

  apt_get() {
    # -qq and a log keep the output short; the log is shown only when apt fails.
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
      apt-get -qq -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@" </dev/null >>"$log" 2>&1; then
      echo "apt-get $* failed; its output:" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
  }
  apt_get update
  apt_get install -y --no-install-recommends "${missing[@]}"

  # Belt and braces: kill any daemon that the install started despite the policy. A service
  # daemonizes (its parent is then PID 1); a foreground instance that some test started
  # meanwhile has its own parent and is left alone.
  for pid in $(daemon_pids); do
    case "$before" in *" $pid "*) continue ;; esac
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    [ "$(echo "$stat" | cut -d' ' -f2)" = 1 ] || continue
    warn "stopping $(ps -o comm= -p "$pid" 2>/dev/null || echo daemon) (pid $pid) started by the install"
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
  done
  # On a systemd machine, do not leave freshly installed DNS servers enabled for the next boot:
  # they would take port 53. Only the services of packages installed just now are touched.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    for p in "${missing[@]}"; do
      case $p in
        unbound) svc=unbound ;;
        bind9) svc=named ;;
        dnsdist) svc=dnsdist ;;
        *) continue ;;
      esac
      "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
      say "disabled the $svc system service (the scripts run their own instances)"
    done
  fi
  restore
  trap - EXIT INT TERM
  say "installed: ${missing[*]}"
fi

# The Rust toolchain: required, but not installable from here.
require_cargo
cargo fmt --version >/dev/null 2>&1 || die "cargo is there but rustfmt is not: run 'rustup component add rustfmt'"
cargo clippy --version >/dev/null 2>&1 || die "cargo is there but clippy is not: run 'rustup component add clippy'"
say "rust: $(cargo --version)"
