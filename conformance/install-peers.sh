#!/usr/bin/env bash
# Installs the real peers the interop tests run against (../shared/spec/peers.md):
# - the mosquitto broker and its clients, and curl (the REST client of
#   tests/interop_curl.rs), from Debian's packages;
# - Apache Qpid Proton's Python binding (AMQP 1.0), from Debian's package, which
#   imports only under /usr/bin/python3, not under another python3 earlier on PATH;
#   conformance/peers/proton (broker.py, device.py) needs nothing else but its SSL
#   support (Debian's build has OpenSSL; no Cyrus SASL, so ANONYMOUS only);
# - Microsoft's Azure IoT device SDK for Node.js, pinned by conformance/peers/node's
#   package-lock.json, into its node_modules (`npm ci`);
# - Microsoft's Azure IoT device SDK for Python, pinned by
#   conformance/peers/python/requirements.txt, into the venv .venv beside it.
# Idempotent, and quick when nothing changed: each SDK directory keeps a stamp of
# what it was installed from, and is reinstalled only when that changes.
set -euo pipefail
cd "$(dirname "$0")"

fail() {
  echo "install-peers.sh: $*" >&2
  exit 1
}

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
[ -x /usr/bin/curl ] || need+=(curl)
/usr/bin/python3 -c 'import proton' >/dev/null 2>&1 || need+=(python3-qpid-proton)
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
dpkg-query -W mosquitto mosquitto-clients python3-qpid-proton curl
/usr/bin/python3 -c 'import proton; print("qpid-proton", ".".join(map(str, proton.VERSION)))' ||
  fail "python3-qpid-proton is installed but /usr/bin/python3 cannot import proton"
/usr/bin/python3 -c 'import proton, sys; sys.exit(not proton.SSL.present())' ||
  fail "/usr/bin/python3's proton has no SSL support: conformance/peers/proton needs it for amqps"

# The SDKs come from their registries, not from Debian: the interop tests need
# the exact versions peers.md describes.
for tool in node npm python3; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "$tool is missing: the interop tests run Microsoft's device SDKs for Node.js and Python; install Node.js (with npm) and Python 3, then rerun"
done

# A stamp is the hash of the lock file plus the interpreter's version: a new Node.js
# or Python can need a fresh install even when the pins did not change.
stamp_of() { # lock-file interpreter-version
  printf '%s %s\n' "$(sha256sum "$1" | cut -d' ' -f1)" "$2"
}

node_dir=peers/node
node_stamp=$(stamp_of "$node_dir/package-lock.json" "$(node --version)")
if [ "$(cat "$node_dir/node_modules/.hubwire-stamp" 2>/dev/null)" != "$node_stamp" ]; then
  echo "installing the Node.js device SDK (npm ci in conformance/$node_dir)" >&2
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    fail "npm ci failed in conformance/$node_dir"
  echo "$node_stamp" >"$node_dir/node_modules/.hubwire-stamp"
fi

python_dir=peers/python
venv=$python_dir/.venv
python_stamp=$(stamp_of "$python_dir/requirements.txt" "$(python3 --version 2>&1)")
if [ "$(cat "$venv/.hubwire-stamp" 2>/dev/null)" != "$python_stamp" ]; then
  echo "installing the Python device SDK (venv conformance/$venv)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" ||
    fail "python3 cannot make a venv (on Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$python_dir/requirements.txt" >&2 ||
    fail "pip install failed in conformance/$venv"
  echo "$python_stamp" >"$venv/.hubwire-stamp"
fi

echo "node $(node --version), npm $(npm --version)"
(cd "$node_dir" && node -e '
  for (const name of Object.keys(require("./package.json").dependencies)) {
    console.log(`${name}@${require(`${name}/package.json`).version}`);
  }')
"$venv/bin/python" -c '
import importlib.metadata as m, platform
print("python", platform.python_version())
for name in ("azure-iot-device", "paho-mqtt"):
    print(f"{name}=={m.version(name)}")'
