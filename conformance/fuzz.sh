#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS_PER_TARGET seconds (default 20), as many at
# once as there are cores, each on a copy of its committed corpus (fuzz/corpus/<target>/
# is not grown by these runs). Prints per target the executions and libFuzzer's final
# coverage (cov: edges, ft: features). Exits 1 if a target crashed; the crash file is
# left in fuzz/artifacts/<target>/, which conformance/tests/fuzz_corpus_replay.rs replays.
#
# Usage: conformance/fuzz.sh [SECONDS_PER_TARGET]
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them. Targets are built without a sanitizer: core forbids unsafe code (one audited
# exception), so AddressSanitizer finds nothing a panic would not, and costs twice the
# build time and most of the speed. Debug assertions and overflow checks stay on
# (cargo-fuzz's default), so arithmetic overflow is a crash.
set -euo pipefail

seconds=${1:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
export RUSTC_BOOTSTRAP=1

started=$SECONDS
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets"
build_started=$SECONDS
(cd "$fuzz" && cargo fuzz build --sanitizer none)
echo "   built in $((SECONDS - build_started)) s"

host=$(rustc -vV | sed -n 's/^host: //p')
bin="$fuzz/target/$host/release"
work="$fuzz/target/fuzz-run"
mapfile -t targets < <(cd "$fuzz" && cargo fuzz list)
jobs=$(nproc 2>/dev/null || echo 1)

rm -rf "$work"
mkdir -p "$work"

run_target() {
    local target=$1
    mkdir -p "$fuzz/artifacts/$target"
    cp -r "$fuzz/corpus/$target" "$work/$target.corpus"
    # -timeout: an input that takes 10 s is a hang worth saving.
    "$bin/$target" "$work/$target.corpus" \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$target/" >"$work/$target.log" 2>&1
}

echo "== fuzzing ${#targets[@]} targets for $seconds s each, $jobs at a time"
running=()
for target in "${targets[@]}"; do
    while ((${#running[@]} >= jobs)); do
        wait -n || true
        still=()
        for pid in "${running[@]}"; do
            kill -0 "$pid" 2>/dev/null && still+=("$pid")
        done
        running=("${still[@]}")
    done
    (run_target "$target" && echo 0 >"$work/$target.rc" || echo $? >"$work/$target.rc") &
    running+=($!)
done
wait

crashed=()
printf '%-22s %12s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft corpus result
for target in "${targets[@]}"; do
    log="$work/$target.log"
    rc=$(cat "$work/$target.rc")
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/S ... exec/s: E ...".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    result=ok
    if [[ $rc != 0 ]]; then
        result="CRASH (exit $rc)"
        crashed+=("$target")
    fi
    printf '%-22s %12s %10s %8s %8s %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
echo "   total $((SECONDS - started)) s; logs in $work/"

if ((${#crashed[@]})); then
    for target in "${crashed[@]}"; do
        echo
        echo "== $target crashed:"
        grep -m 1 -E "panicked at|ERROR: libFuzzer" -A 3 "$work/$target.log" || true
        file=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$target.log" | tail -n 1)
        if [[ -n $file ]]; then
            echo "   input: $file"
            echo "   reproduce: $bin/$target $file"
            echo "   keep it as a regression (the corpus replay test runs it):"
            echo "     git add -f ${file#"$root"/}"
            echo "     cargo test -p hubwire-conformance --test fuzz_corpus_replay"
        fi
    done
    exit 1
fi
