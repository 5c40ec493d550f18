#!/usr/bin/env bash
# The one test command (README.md, .ci/run): installs what the tests need, then runs
# every test — unit, statement, scenario, interop with real peers, corpus replay —
# and a short run of every fuzz target.
#
# FUZZ_SECONDS sets the run per fuzz target (default 15).
set -euo pipefail
# One build per run: incremental caches would only double the target directory.
export CARGO_INCREMENTAL=0
cd "$(dirname "$0")/.."

conformance/install-peers.sh
# The process-level tests in conformance/ run the program this builds.
cargo build -p hubwire --locked
# The run's output is kept: the interop matrix below is read from it, not run again.
log=$(mktemp) list=$(mktemp) ignored=$(mktemp)
trap 'rm -f "$log" "$list" "$ignored"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# Every real peer × transport × scenario, pass or fail (the interop tests above).
cargo run -q -p hubwire-conformance --bin interop-matrix --locked -- --from "$log"
# Statement coverage (conformance/statements/*.toml): every test a statement names
# must be in this run and not ignored. `--list` only lists (it builds nothing new
# and runs no test); the run above failed the script if any test failed, so a test
# listed here and not ignored ran and passed. stderr carries the `Running` lines
# that name each test binary.
cargo test --workspace --locked -- --list >"$list" 2>&1
cargo test --workspace --locked -- --list --ignored >"$ignored" 2>&1
cargo run -q -p hubwire-conformance --locked --bin coverage -- --check "$list" --ignored "$ignored" >/dev/null
# A constrained device builds core without std, MQTT only (DESIGN.md, features);
# AMQP stays no_std too.
cargo build -p hubwire-core --no-default-features --features mqtt --locked
cargo build -p hubwire-core --no-default-features --features amqp --locked
# Formatting, lints and documentation links, as every change must keep them.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
conformance/fuzz.sh "${FUZZ_SECONDS:-15}"
# Each session target's corpus, grown by that run, reaches its message handlers.
conformance/fuzz-coverage.sh
