#!/usr/bin/env bash
# The soak test on demand: dotgate in front of a real Unbound under mixed load (pipelining
# clients, short-lived clients resuming TLS 1.3 and 1.2 sessions, NXDOMAIN, answers over
# upstream TCP after TC=1) plus every hostile client of tests/hostile.rs, for SECONDS
# (default 600), with dotgate's RSS and open descriptors sampled every 10 s and printed as a
# table. Fails when they grow after the warm-up (the first quarter, at least 20 s), when a
# descriptor outlives its connection, when any answer is wrong, or when a hostile connection
# is not closed as dotgate promises. See docs/robustness.md.
#
#   scripts/soak.sh [SECONDS]
#
# CI runs the same test for 60 s as part of `cargo test` (tests/soak.rs, DOTGATE_SOAK_SECS
# unset). It uses the debug build that `cargo test` makes, and CARGO_TARGET_DIR if set.
# Needs unbound (scripts/install-deps.sh installs it).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

secs=${1:-600}
case $secs in
  '' | *[!0-9]*) die "usage: scripts/soak.sh [SECONDS]   (a whole number, at least 40)" ;;
esac
[ "$secs" -ge 40 ] || die "SECONDS must be at least 40 (a 20 s warm-up and three samples after it)"
require_cargo
command -v unbound >/dev/null 2>&1 || die "unbound is not installed (scripts/install-deps.sh installs it)"

say "soak: ${secs} s of mixed load and hostile clients against dotgate (a sample every 10 s)"
DOTGATE_SOAK_SECS=$secs exec cargo test --test soak -- --nocapture --test-threads 1
