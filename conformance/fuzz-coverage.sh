#!/usr/bin/env bash
# Shows that each session fuzz target gets past the handshake: it runs the target's
# corpus through a coverage build (cargo fuzz coverage, LLVM source-based coverage)
# and prints, per target, the share of code regions run in each message handler of
# its session — PUBLISH, transfer, CBS, REST routes, C2D settlement — for the hub and
# the device. Exits 1 when a handler was never entered: a target that stops at
# authentication would fuzz nothing behind it.
#
# The inputs are the committed seeds (fuzz/corpus/<target>/) and, when there is one,
# the corpus the last conformance/fuzz.sh run grew from them
# (fuzz/target/fuzz-run/<target>.corpus). Needs rustup's llvm-tools (installed when
# missing). amqp_hub's prelude opens without SASL, so that its fuzzer starts at the
# session; amqp_hub_sasl starts at the SASL layer and reaches the hub's SASL PLAIN.
#
# Usage: conformance/fuzz-coverage.sh [TARGET...]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
export RUSTC_BOOTSTRAP=1

host=$(rustc -vV | sed -n 's/^host: //p')
llvm="$(rustc --print sysroot)/lib/rustlib/$host/bin"
if [[ ! -x $llvm/llvm-cov ]]; then
    echo "== installing rustup's llvm-tools (llvm-cov, llvm-profdata)"
    rustup component add llvm-tools
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# target, the session's source file, its handlers (functions of that file).
sessions=(
    "mqtt_hub_session core/src/mqtt/hub.rs handle_connect handle_publish handle_iothub_publish telemetry_stored handle_subscribe handle_c2d_puback pump_c2d answer_twin"
    "mqtt_device_session core/src/mqtt/device.rs handle_connack handle_packet handle_publish handle_iothub_publish settle"
    "amqp_hub core/src/amqp/hub.rs on_attach on_put_token on_telemetry telemetry_stored pump_c2d on_c2d_disposition"
    "amqp_hub_sasl core/src/amqp/hub.rs on_sasl_init plain_login on_attach on_telemetry"
    "amqp_device core/src/amqp/device.rs on_event on_put_token_response attach_device on_outcome on_c2d settle"
    "http_hub core/src/http/hub.rs route dispatch send_event telemetry_stored receive_c2d settle"
    "http_device core/src/http/device.rs next_request read_response handle_response succeeded settle"
)

wanted=("$@")
missed=()
printf '%-20s %-24s %8s\n' target handler regions
for session in "${sessions[@]}"; do
    read -r target file handlers <<<"$session"
    if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " == *" $target "* ]]; then
        continue
    fi
    corpora=("$fuzz/corpus/$target")
    [[ -d $fuzz/target/fuzz-run/$target.corpus ]] && corpora+=("$fuzz/target/fuzz-run/$target.corpus")
    log="$fuzz/coverage/$target.log"
    mkdir -p "$fuzz/coverage"
    if ! (cd "$fuzz" && cargo fuzz coverage "$target" --sanitizer none "${corpora[@]}") >"$log" 2>&1; then
        echo "$target: cargo fuzz coverage failed; see $log" >&2
        exit 1
    fi
    binary="$fuzz/target/$host/coverage/$host/release/$target"
    report=$("$llvm/llvm-cov" report "$binary" \
        -instr-profile="$fuzz/coverage/$target/coverage.profdata" \
        --show-functions "$root/$file")
    for handler in $handlers; do
        # Symbols are v0-mangled: the name follows its length; closures (_RNC…)
        # are left out, the function itself starts _RNv.
        cover=$(awk -v name="${#handler}${handler}" \
            '$1 ~ /^_RNv/ && substr($1, length($1) - length(name) + 1) == name { print $4; exit }' \
            <<<"$report")
        printf '%-20s %-24s %8s\n' "$target" "$handler" "${cover:-absent}"
        if [[ -z $cover || $cover == 0.00% ]]; then
            missed+=("$target: $handler in $file")
        fi
    done
done

if ((${#missed[@]})); then
    echo
    echo "never entered (the target stops before them; give it seeds that reach them):"
    printf '  %s\n' "${missed[@]}"
    exit 1
fi
