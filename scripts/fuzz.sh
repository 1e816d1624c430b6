#!/usr/bin/env bash
# Run dotgate's cargo-fuzz targets (fuzz/README.md) on the machine's stable Rust.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     # default: all targets, 60 s each
#   scripts/fuzz.sh edns 600
#
# Installs cargo-fuzz from crates.io when it is missing. cargo-fuzz needs nightly's -Z flags;
# RUSTC_BOOTSTRAP=1 lets stable Rust take them. AddressSanitizer is on (FUZZ_SANITIZER=none to
# build without it, faster). Targets run one after another, each for SECONDS.
#
# Inputs a run finds worth keeping go to fuzz/work/TARGET (ignored by git); the committed seeds
# in fuzz/corpus/TARGET are read, never written. A crash is saved under fuzz/artifacts/TARGET/
# and the script exits 1: reproduce it with `scripts/fuzz.sh TARGET` after fixing, and add the
# input to fuzz/corpus/TARGET/regression-NAME so that tests/properties.rs runs it in every
# `cargo test`. At the end: executions, corpus size and result per target.
#
# Environment: FUZZ_SANITIZER=address|none   (default address)
#              FUZZ_MAX_LEN=N                longest input libFuzzer makes (default 8192)
#              FUZZ_JOBS=N                   parallel fuzzing processes per target (default 1)
#              CARGO_TARGET_DIR              where cargo fuzz builds (default fuzz/target)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(repo_root)
cd "$root/fuzz"

ALL=(frames query upstream_match edns config inflight dnsenc_nsk dnsenc_outer dnsenc_server pvt_name pvt_encr pvt_sig0)
which=${1:-all}
seconds=${2:-60}
sanitizer=${FUZZ_SANITIZER:-address}
max_len=${FUZZ_MAX_LEN:-8192}
jobs=${FUZZ_JOBS:-1}
case "$which" in
  all) targets=("${ALL[@]}") ;;
  *)
    [ -f "fuzz_targets/$which.rs" ] || die "no target '$which' (have: ${ALL[*]})"
    targets=("$which")
    ;;
esac
[[ "$seconds" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, not '$seconds'"

require_cargo
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

say "building the targets (sanitizer: $sanitizer)"
cargo fuzz build -O -s "$sanitizer"

summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  log="work/$t.log"
  say "fuzzing $t for ${seconds}s (log: fuzz/$log)"
  rc=0
  cargo fuzz run -O -s "$sanitizer" --jobs "$jobs" "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  runs=$(awk '/^stat::number_of_executed_units:/ {n += $2} END {print n + 0}' "$log")
  kept=$(find "work/$t" -type f | wc -l)
  seeds=$(find "corpus/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    result="nothing found"
  else
    result="FAILED (exit $rc): see fuzz/$log and fuzz/artifacts/$t/"
    failed=$((failed + 1))
    tail -n 40 "$log" >&2
  fi
  summary+=("$(printf '%-15s %6ss %12s runs  %5s seeds + %5s found inputs  %s' \
    "$t" "$seconds" "$runs" "$seeds" "$kept" "$result")")
done

echo
echo "==================== fuzzing summary ===================="
printf '%s\n' "${summary[@]}"
[ "$failed" -eq 0 ]
