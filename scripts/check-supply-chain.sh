#!/usr/bin/env bash
# Supply chain and hardening checks (a step of scripts/test.sh):
#
#   scripts/check-supply-chain.sh
#
# 1. cargo deny (deny.toml): licenses, banned and duplicate crates, sources; and RustSec
#    advisories when GitHub, where the advisory database lives, can be reached. Where it cannot
#    (this project's build machines reach only the package registries), the script says so on a
#    line of its own and the other checks still decide the result.
# 2. No `unsafe` outside crates/dotgate-sys: both crate roots of dotgate forbid it, so the
#    compiler refuses any; this checks that the attributes are still there.
# cargo-deny is installed from crates.io (pinned, --locked) when missing.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"
require_cargo

CARGO_DENY_VERSION=0.20.2
if ! grep -q "$CARGO_DENY_VERSION" <<<"$(cargo deny --version 2>/dev/null)"; then
  say "installing cargo-deny $CARGO_DENY_VERSION from crates.io (a few minutes, once)"
  cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

checks=(bans licenses sources)
if timeout 20 git ls-remote --heads https://github.com/RustSec/advisory-db >/dev/null 2>&1; then
  checks=(advisories "${checks[@]}")
else
  echo "advisories: NOT CHECKED: github.com (RustSec's advisory database) cannot be reached from here"
fi
say "cargo deny check ${checks[*]}"
cargo deny --log-level warn check "${checks[@]}"

say "unsafe code is forbidden outside crates/dotgate-sys"
for root in src/lib.rs src/main.rs; do
  grep -qx '#!\[forbid(unsafe_code)\]' "$root" || die "$root lost #![forbid(unsafe_code)]"
done
echo "supply chain OK"
