#!/usr/bin/env bash
# Run all of dotgate's checks: the one test command (README, .ci/run).
#
#   scripts/test.sh
#
# Steps: install the system packages the tests use, lint the shell scripts, cargo fmt --check,
# cargo clippy (-D warnings), cargo test, the deployment files (scripts/check-deploy.sh), the
# supply chain (scripts/check-supply-chain.sh: cargo deny, no unsafe outside dotgate-sys). Every
# step runs even when an earlier one failed, so a single run shows everything; the exit status
# is non-zero when any step failed.
# Each step has a time limit in seconds (override with the variables below) so that a hung
# test cannot eat CI's budget.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

LINT_TIMEOUT=${LINT_TIMEOUT:-120}
FMT_TIMEOUT=${FMT_TIMEOUT:-120}
CLIPPY_TIMEOUT=${CLIPPY_TIMEOUT:-900}
TEST_TIMEOUT=${TEST_TIMEOUT:-1200}
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-600}
SUPPLY_TIMEOUT=${SUPPLY_TIMEOUT:-1200}

logs=$(mktemp -d /tmp/dotgate-test.XXXXXX)
trap 'rm -rf "$logs"' EXIT
start=$SECONDS
results=()
failed=0

# step NAME TIMEOUT COMMAND...: run one step under a time limit, keep its output in
# $logs/NAME.log, and record PASS/FAIL with its duration.
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS rc=0 why
  printf '\n==> %s: %s\n' "$name" "$*" >&2
  timeout --kill-after=30 "$limit" "$@" </dev/null 2>&1 | tee "$logs/$name.log" || rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then
    results+=("$(printf 'PASS  %-8s %5ds' "$name" $((SECONDS - t0)))")
  else
    why="exit $rc"
    [ "$rc" -eq 124 ] && why="timed out after ${limit}s"
    results+=("$(printf 'FAIL  %-8s %5ds  (%s)' "$name" $((SECONDS - t0)) "$why")")
    failed=$((failed + 1))
  fi
}

# bash -n on every tracked shell script, and shellcheck when it is installed.
lint_scripts() {
  local files=() f rc=0
  while IFS= read -r f; do files+=("$f"); done < <(git ls-files -- '*.sh' .ci/run)
  [ ${#files[@]} -gt 0 ] || return 0
  for f in "${files[@]}"; do bash -n "$f" || rc=1; done
  # A script with a shebang is run as a command (the README shows 'scripts/demo.sh', not
  # 'bash scripts/demo.sh'), so git must record it executable or a fresh clone says
  # "Permission denied". lib.sh has no shebang: it is only sourced.
  while read -r mode f; do
    if [ "$mode" != 100755 ] && head -n1 "$f" | grep -q '^#!'; then
      echo "$f: has a shebang but git records mode $mode; run: git update-index --chmod=+x $f"
      rc=1
    fi
  done < <(git ls-files -s -- '*.sh' .ci/run | awk '{ print $1, $4 }')
  if command -v shellcheck >/dev/null; then
    shellcheck -x "${files[@]}" && echo "shellcheck: ${#files[@]} files clean" || rc=1
  else
    echo "shellcheck not installed; only 'bash -n' was run on ${#files[@]} files"
  fi
  return "$rc"
}
export -f lint_scripts

# A full run builds every target once: incremental state would only take disk (gigabytes),
# which a CI machine may not have.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

say "installing dependencies"
if ! bash scripts/install-deps.sh </dev/null; then
  echo "FAIL: scripts/install-deps.sh failed; nothing else was run" >&2
  exit 1
fi
require_cargo

step scripts "$LINT_TIMEOUT" bash -c lint_scripts
step fmt "$FMT_TIMEOUT" cargo fmt --all -- --check
step clippy "$CLIPPY_TIMEOUT" cargo clippy --workspace --all-targets -- -D warnings
step test "$TEST_TIMEOUT" cargo test --workspace --all-targets --no-fail-fast
# The DoT tests again with a DNSENC listener on beside DoT in every dotgate they start: the
# second frontend must change nothing for the first.
step dot+dnsenc "$TEST_TIMEOUT" env DOTGATE_TEST_WITH_DNSENC=1 cargo test --no-fail-fast \
  --test relay --test tls --test framing --test edns --test limits --test hostile --test real_backends
step deploy "$DEPLOY_TIMEOUT" bash scripts/check-deploy.sh
step supply "$SUPPLY_TIMEOUT" bash scripts/check-supply-chain.sh

# cargo prints one "test result:" line per test binary; add them up.
counts=$(awk '/^test result:/ {
    for (i = 1; i < NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i
      if ($(i+1) ~ /^failed/) f += $i
      if ($(i+1) ~ /^ignored/) s += $i
    }
    n++
  }
  END { if (n) printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$logs/test.log")

echo
echo "==================== summary ===================="
printf '%s\n' "${results[@]}"
echo "total time: $((SECONDS - start))s"
if [ "$failed" -eq 0 ]; then
  echo "all ${#results[@]} steps passed"
else
  echo "$failed of ${#results[@]} steps FAILED"
fi
# Last line: the cargo test count, in the form CI reads.
if [ -n "$counts" ]; then echo "tests: $counts"; fi
[ "$failed" -eq 0 ]
