#!/usr/bin/env bash
# Installs the real peers the interop tests run against (../shared/spec/peers.md):
# the mosquitto broker and its clients, from Debian's packages. Idempotent.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Where systemd runs, the package starts a broker on 1883, the port `hubwire hub`
  # uses by default; the tests start brokers of their own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi
dpkg-query -W mosquitto mosquitto-clients
