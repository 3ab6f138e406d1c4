#!/usr/bin/env bash
# Runs every check CI runs: installs the test tools and starts the real
# servers the tests talk to (scripts/test-services.sh: PostgreSQL, Garage
# for S3 — the first run builds it, ~25 minutes — and the Docker test
# image), then formatting, clippy, the crate shape (metrics-core's
# PostgreSQL collector without the backup pipeline; no two modules
# importing each other), docs, all tests (unit, integration,
# end-to-end with the stock age/zstd/tar tools, PostgreSQL, Garage,
# Prometheus and promtool, the Docker Engine; doc tests) and a short run of
# every fuzz target. The servers are stopped at the end.
#
#   scripts/test.sh                 # everything
#   FUZZ_SECONDS=0 scripts/test.sh  # skip the fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

step() { printf '\n== %s\n' "$*" >&2; }

step "starting test services"
scripts/test-services.sh start
trap 'scripts/test-services.sh stop' EXIT

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "crate shape"
# metrics-core's PostgreSQL collector reaches the server through the pg
# crate, not through backup-core: none of the backup pipeline comes along.
pipeline=$(cargo tree -p metrics-core -e normal --features postgres --locked --prefix none |
  grep -E '^(backup-core|age|zstd|tar) v' || true)
if [[ -n $pipeline ]]; then
  echo "metrics-core --features postgres pulls in the backup pipeline:" >&2
  echo "$pipeline" >&2
  exit 1
fi
# No module imports from a module that imports from it.
scripts/module-cycles.py crates/*/src bins/*/src

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo test"
cargo test --workspace --locked

seconds=${FUZZ_SECONDS:-20}
if ((seconds > 0)); then
  step "fuzz smoke run, ${seconds}s per target"
  scripts/fuzz.sh --seconds "$seconds" --jobs 2
fi
step "all checks passed"
