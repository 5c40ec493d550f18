#!/usr/bin/env bash
# Records the regression transcripts in this directory: Microsoft's device SDKs
# (conformance/peers, installed by conformance/install-peers.sh) against
# `hubwire hub --record`, one hub per transcript, on IoT Hub's standard ports at
# 127.0.0.5x (root, or CAP_NET_BIND_SERVICE, for 443).
#
#   cargo build -p hubwire && conformance/transcripts/record.sh [NAME...]
#
# Each NAME.txt is rewritten: a comment header saying how it was made, then the
# hub's transcript. Replayed by `cargo test -p hubwire-conformance --test transcripts`.
# Re-record only when a change to what the SDKs see is meant; review the diff.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
hubwire="${HUBWIRE:-$root/target/debug/hubwire}"
node_device=(node "$root/conformance/peers/node/device.js")
python_device=("$root/conformance/peers/python/.venv/bin/python" "$root/conformance/peers/python/device.py")
# The SDKs trust only the hub's CA; the machine's extra roots stay out of it.
unset NODE_EXTRA_CA_CERTS

C2D_ONE='{"deviceId":"dev1","body":"switch on","messageId":"c2d-1","correlationId":"corr-1","properties":{"command":"on","level":"3"}}'
PROPERTIES='{"k":"v","sp ace":"a&b=c","unit":"°C"}'
HTTP_PROPERTIES='{"k":"v","unit":"C","a&b":"x=y;z"}'

c2d_three() {
    for id in c2d-complete c2d-reject c2d-abandon; do
        printf '{"deviceId":"dev1","body":"%s body","messageId":"%s","properties":{"k":"%s"}}\n' "$id" "$id" "$id"
    done
}

# record NAME IP WHEN DEVICE-COMMAND...: a hub at IP with dev1 and seed 1; WHEN is
# `before` (the three C2D messages queued before the device starts) or `after`
# (one C2D message queued once the hub has stored the device's telemetry).
record() {
    local name="$1" ip="$2" when="$3"
    shift 3
    local work
    work="$(mktemp -d)"
    mkfifo "$work/stdin"
    "$hubwire" hub --bind "$ip" --mqtt-port 8883 --https-port 443 --amqp-port 5671 \
        --data-dir "$work" --in-memory --device dev1 --seed 1 --record "$work/rec" \
        <"$work/stdin" >"$work/hub.out" 2>"$work/hub.err" &
    local hub=$!
    exec 9>"$work/stdin"
    until grep -q '"event":"listening"' "$work/hub.out"; do sleep 0.1; done
    local cs ca
    cs="$(sed -n 's/.*"connectionString":"\([^"]*\)".*/\1/p' "$work/hub.out" | head -1)"
    ca="$(sed -n 's/.*"ca":"\([^"]*\)".*/\1/p' "$work/hub.out" | head -1)"
    if [ "$when" = before ]; then
        c2d_three >&9
        until [ "$(grep -c '"event":"c2dQueued"' "$work/hub.out")" = 3 ]; do sleep 0.1; done
    fi
    "$@" --connection-string "$cs" --ca "$ca" >"$work/device.out" 2>&1 &
    local device=$!
    if [ "$when" = after ]; then
        until grep -q '"event":"telemetry"' "$work/hub.out"; do sleep 0.1; done
        echo "$C2D_ONE" >&9
    fi
    local status=0
    wait "$device" || status=$?
    sleep 0.5
    exec 9>&-
    kill "$hub"
    wait "$hub" || true
    if [ "$status" != 0 ]; then
        cat "$work/device.out" "$work/hub.err" >&2
        echo "record.sh: $name: the device failed" >&2
        exit 1
    fi
    local transcript
    transcript="$(ls "$work"/rec/hub-*.txt)"
    {
        echo "# $name: made by conformance/transcripts/record.sh $name"
        echo "#   hubwire hub --bind $ip --mqtt-port 8883 --https-port 443 --amqp-port 5671 --in-memory --device dev1 --seed 1 --record DIR"
        echo "#   device: ${*#$root/} (C2D queued $when)"
        sed 's/^/#   device said: /' "$work/device.out"
        cat "$transcript"
    } >"$here/$name.txt"
    rm -rf "$work"
    echo "record.sh: $name.txt: $(wc -c <"$here/$name.txt") bytes"
}

scenario() {
    case "$1" in
    node-mqtt) record node-mqtt 127.0.0.51 after "${node_device[@]}" --transport mqtt \
        --properties "$PROPERTIES" --c2d 1 ;;
    node-mqtt-ws) record node-mqtt-ws 127.0.0.52 after "${node_device[@]}" --transport mqtt-ws \
        --properties "$PROPERTIES" --c2d 1 ;;
    node-amqp) record node-amqp 127.0.0.53 before "${node_device[@]}" --transport amqp \
        --properties "$PROPERTIES" --settle complete,reject,abandon,complete ;;
    node-amqp-ws) record node-amqp-ws 127.0.0.54 before "${node_device[@]}" --transport amqp-ws \
        --properties "$PROPERTIES" --settle complete,reject,abandon,complete ;;
    node-http) record node-http 127.0.0.55 before "${node_device[@]}" --transport http \
        --properties "$HTTP_PROPERTIES" --settle complete,reject,abandon,complete --batch 2 ;;
    python-mqtt-keep-alive) record python-mqtt-keep-alive 127.0.0.56 after "${python_device[@]}" \
        --transport mqtt --properties "$PROPERTIES" --c2d 1 --keep-alive 2 --linger-ms 4500 ;;
    *) echo "record.sh: no scenario $1" >&2; exit 2 ;;
    esac
}

if [ "$#" = 0 ]; then
    set -- node-mqtt node-mqtt-ws node-amqp node-amqp-ws node-http python-mqtt-keep-alive
fi
for name in "$@"; do scenario "$name"; done
