#!/usr/bin/env bash
# dotgate's main job, shown end to end on one machine:
#
#   Unbound (plain DNS, 127.0.0.1:<free port>)  <--UDP--  dotgate (DoT, 127.0.0.1:8853)  <--TLS--  kdig
#
#   scripts/demo.sh
#
# Installs the dependencies, builds dotgate in release mode, starts a throw-away Unbound that
# serves the static zone example.test, starts dotgate in front of it with an ephemeral
# self-signed certificate, and asks a few questions over DNS-over-TLS with kdig: one of them
# pins the certificate's public key (the pin-sha256 value dotgate prints at start).
# Everything runs in a temporary folder and is stopped on exit (dotgate with SIGTERM).
# Exit status 0 when every answer was right.
#
# Environment: DOTGATE_BIN=path   use this binary instead of building target/release/dotgate
#              DEMO_KEEP=1        keep the temporary folder (configs and logs) for a look
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

work=$(mktemp -d /tmp/dotgate-demo.XXXXXX)
unbound_pid=""
dotgate_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$dotgate_pid" ]; then
    local drc=0
    stop_pid "$dotgate_pid" TERM 15 || drc=$?
    # SIGTERM must drain and exit 0 (143 = killed by the signal it should have handled).
    [ "$drc" -eq 0 ] || warn "dotgate exited with status $drc after SIGTERM (expected 0)"
  fi
  [ -z "$unbound_pid" ] || stop_pid "$unbound_pid" TERM 10 || true
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo "kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "installing dependencies"
bash scripts/install-deps.sh </dev/null

if [ -n "${DOTGATE_BIN:-}" ]; then
  bin=$DOTGATE_BIN
else
  say "building dotgate (cargo build --release)"
  require_cargo
  cargo build --release --quiet
  bin=target/release/dotgate
fi
[ -x "$bin" ] || die "no dotgate binary at $bin"

# ---- Unbound with a static demo zone ---------------------------------------------------------
uport=$(free_port_from 5300) || die "no free port for Unbound"
cat >"$work/unbound.conf" <<EOF
# Throw-away Unbound for scripts/demo.sh: foreground, no chroot, no user switch, no DNSSEC.
server:
    interface: 127.0.0.1@$uport
    port: $uport
$(unbound_foreground_lines "$work")
    access-control: 127.0.0.0/8 allow
    # Answer only from local data: never recurse to the Internet.
    local-zone: "." refuse
    local-zone: "example.test." static
    local-data: "example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300"
    local-data: "example.test. 300 IN MX 10 mail.example.test."
    local-data: 'example.test. 300 IN TXT "dotgate demo zone"'
    local-data: "www.example.test. 300 IN A 192.0.2.10"
    local-data: "www.example.test. 300 IN AAAA 2001:db8::10"
    local-data: 'www.example.test. 300 IN TXT "served by Unbound, carried over TLS by dotgate"'
    local-data: "mail.example.test. 300 IN A 192.0.2.25"
remote-control:
    control-enable: no
EOF
unbound-checkconf "$work/unbound.conf" >/dev/null || die "generated Unbound config is invalid: $work/unbound.conf"

say "starting Unbound on 127.0.0.1:$uport"
unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
unbound_pid=$!
unbound_ready() { tcp_listening "$uport" && udp_bound "$uport"; }
if ! wait_for 10 "$unbound_pid" "Unbound" unbound_ready; then
  cat "$work/unbound.log" >&2
  die "Unbound did not start"
fi

# ---- dotgate -----------------------------------------------------------------------------------
port=$(free_port_from 8853) || die "no free port for dotgate"
say "starting dotgate on 127.0.0.1:$port (backend 127.0.0.1:$uport, ephemeral certificate)"
"$bin" --listen "127.0.0.1:$port" --backend "127.0.0.1:$uport" 2>"$work/dotgate.log" &
dotgate_pid=$!
pin_printed() { grep -q 'pin-sha256="' "$work/dotgate.log"; }
if ! wait_for 20 "$dotgate_pid" "dotgate" tcp_listening "$port" ||
  ! wait_for 5 "$dotgate_pid" "dotgate's pin-sha256 line" pin_printed; then
  echo "--- dotgate's stderr:" >&2
  cat "$work/dotgate.log" >&2
  die "dotgate did not start (is the binary still a stub?)"
fi
pin=$(grep -o 'pin-sha256="[^"]*"' "$work/dotgate.log" | head -n1 | cut -d'"' -f2)
[ -n "$pin" ] || die "empty pin-sha256 in dotgate's output"
echo "dotgate's certificate pin: pin-sha256=\"$pin\""

# ---- questions over DoT ------------------------------------------------------------------------
failures=0
# ask HEADING EXPECT(grep -E pattern) KDIG-ARGS...
ask() {
  local heading=$1 expect=$2 out rc=0
  shift 2
  printf '\n--- %s\n$ kdig @127.0.0.1 -p %s %s\n' "$heading" "$port" "$*"
  out=$(timeout 15 kdig @127.0.0.1 -p "$port" +timeout=5 +retry=0 "$@" 2>&1) || rc=$?
  # The status line and the answer section are what a reader wants to see.
  printf '%s\n' "$out" | grep -E '(status:|TLS session|IN[[:space:]]+(A|AAAA|TXT|MX|SOA)[[:space:]]|^;; (ERROR|WARNING))' || true
  # A here-string, not a pipe: grep -q exits at its first match, and under pipefail the writer's
  # SIGPIPE would fail a good answer.
  if [ "$rc" -eq 0 ] && grep -qE "$expect" <<<"$out"; then
    echo "ok"
  else
    echo "FAILED (kdig exit $rc; expected /$expect/). Full output:"
    printf '%s\n' "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

ask "A record of www.example.test" 'www\.example\.test\.[[:space:]].*A[[:space:]]+192\.0\.2\.10' \
  +tls www.example.test A
ask "AAAA record of www.example.test" 'AAAA[[:space:]]+2001:db8::10' \
  +tls www.example.test AAAA
ask "TXT record of www.example.test" 'TXT[[:space:]]+"served by Unbound' \
  +tls www.example.test TXT
ask "MX record of example.test" 'MX[[:space:]]+10 mail\.example\.test\.' \
  +tls example.test MX
ask "a name that does not exist (NXDOMAIN)" 'status: NXDOMAIN' \
  +tls nosuchname.example.test A
ask "A record again, verifying the certificate by its pin" '[[:space:]]A[[:space:]]+192\.0\.2\.10' \
  +tls-pin="$pin" www.example.test A

echo
if [ "$failures" -eq 0 ]; then
  echo "demo OK: all answers were right"
else
  echo "demo FAILED: $failures answer(s) wrong"
  echo "--- dotgate's stderr:"
  cat "$work/dotgate.log"
  exit 1
fi
