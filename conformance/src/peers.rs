//! Microsoft's Azure IoT device SDKs and Qpid Proton as peers (peers.md): each
//! command runs one device session that reports on stdout, one JSON object a line,
//! which [`crate::process::next_event`] follows.
//!
//! The programs are `conformance/peers/node/device.js` and
//! `conformance/peers/python/device.py`; their opening comments list the arguments
//! (`--connection-string`, `--ca`, `--transport mqtt|mqtt-ws` — Node also
//! `amqp|amqp-ws` —, `--properties`, `--body`, `--message-id`, `--c2d`, Node's
//! `--settle complete|reject|abandon,…`, `--timeout-ms`) and the events
//! (`connected`, `sent`, `c2d`, Node's `settled`, `closed`, `error` with its
//! `stage`). `conformance/install-peers.sh` installs the pinned SDKs beside them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Written by install-peers.sh inside an SDK's install directory once the install
/// completed, so a half-finished one counts as missing.
const STAMP: &str = ".hubwire-stamp";

/// `node device.js args…`, with Microsoft's device SDK for Node.js
/// (azure-iot-device 1.18.4, azure-iot-device-mqtt 1.16.4, azure-iot-device-amqp
/// 1.14.4 on rhea 1.0.24).
///
/// Only the CA the test passes with `--ca` is trusted: the program hands it to the
/// SDK's `setOptions({ca})`, which replaces every other root.
///
/// # Panics
///
/// When the SDK is not installed, with the command that installs it: interop tests
/// never skip.
pub fn node_device(args: &[&str]) -> Command {
    let dir = installed("node", "node_modules", "Node.js");
    let mut command = Command::new("node");
    command.arg(dir.join("device.js")).args(args);
    // This machine points NODE_EXTRA_CA_CERTS at the system bundle (peers.md); `ca`
    // overrides it, but a test should not depend on what the machine sets.
    command.env_remove("NODE_EXTRA_CA_CERTS");
    command
}

/// `python device.py args…` in the venv holding Microsoft's device SDK for Python
/// (azure-iot-device 2.14.0, which offers TLS 1.2 only).
///
/// Only the CA the test passes with `--ca` is trusted: the SDK verifies against its
/// `server_verification_cert` alone.
///
/// # Panics
///
/// When the SDK is not installed, with the command that installs it.
pub fn python_device(args: &[&str]) -> Command {
    let dir = installed("python", ".venv", "Python");
    let mut command = Command::new(dir.join(".venv/bin/python"));
    command.arg(dir.join("device.py")).args(args);
    command
}

/// `/usr/bin/python3 device.py args…`: an IoT Hub device on Apache Qpid Proton's
/// Python binding (Debian's python3-qpid-proton 0.37), the peer of hubwire's hub
/// role over AMQP.
/// `conformance/peers/proton/device.py`'s opening comment lists its arguments
/// (`--url amqps://…|amqp://…`, `--ca`, `--host-name`, `--sasl`, `--token`,
/// `--send`, `--receive`, `--dispositions`, …) and its events (`cbs`, `sent`,
/// `received`, `disposed`, `closed`, `error` with its `stage`).
///
/// # Panics
///
/// When /usr/bin/python3 cannot import proton, with the command that installs it.
pub fn proton_device(args: &[&str]) -> Command {
    proton("device.py", args)
}

/// `/usr/bin/python3 broker.py args…`: an AMQP 1.0 server on Apache Qpid Proton,
/// the peer of hubwire's device role. `conformance/peers/proton/broker.py`'s
/// opening comment lists its arguments (`--listen`, `--tls-cert`, `--tls-key`,
/// `--send ADDRESS=JSON`, `--outcome`, `--cbs-status`, `--expect`, `--timeout`, …)
/// and its events (`listening`, `connection`, `attach`, `cbs`, `message`, `sent`,
/// `outcome`, `detach`, `closed`, `done`).
///
/// # Panics
///
/// As [`proton_device`].
pub fn proton_broker(args: &[&str]) -> Command {
    proton("broker.py", args)
}

/// `/usr/bin/python3 conformance/peers/proton/<program> args…`, once the binding
/// imports: Debian's binding imports only under /usr/bin/python3, whatever python3
/// comes first on PATH.
fn proton(program: &str, args: &[&str]) -> Command {
    let python = "/usr/bin/python3";
    let imports = Command::new(python)
        .args(["-c", "import proton, sys; sys.exit(not proton.SSL.present())"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !imports {
        panic!(
            "Qpid Proton's Python binding (with SSL) cannot be imported by {python}: run \
             conformance/install-peers.sh (Debian package python3-qpid-proton)"
        );
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join("proton");
    let mut command = Command::new(python);
    command.arg(dir.join(program)).args(args);
    command
}

/// The directory `conformance/peers/<peer>`, once `<install>` inside it is complete.
fn installed(peer: &str, install: &str, language: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join(peer);
    if !dir.join(install).join(STAMP).is_file() {
        panic!(
            "the {language} device SDK is not installed in {}: run conformance/install-peers.sh",
            dir.join(install).display()
        );
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{next_event, spawn};

    /// Runs `command`, which must fail on its arguments before any network use,
    /// and checks the error line and the exit status the programs promise.
    fn reports_argument_error(mut command: Command) {
        let (mut device, _stdin, out) = spawn(&mut command);
        let error = next_event(&out, "error");
        assert_eq!(error["stage"], "args", "{error}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains("connection-string")),
            "{error}"
        );
        let status = device.child.wait().map(|s| s.code());
        assert!(matches!(status, Ok(Some(2))), "{status:?}");
    }

    #[test]
    fn node_device_runs_the_installed_sdk() {
        reports_argument_error(node_device(&["--ca", "/dev/null"]));
    }

    #[test]
    fn python_device_runs_the_installed_sdk() {
        reports_argument_error(python_device(&["--ca", "/dev/null"]));
    }

    #[test]
    fn proton_device_runs_the_installed_binding() {
        let (mut device, _stdin, out) = spawn(&mut proton_device(&["--url", "amqps://h:1"]));
        let error = next_event(&out, "error");
        assert_eq!(error["stage"], "args", "{error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains("--token")), "{error}");
        let status = device.child.wait().map(|s| s.code());
        assert!(matches!(status, Ok(Some(2))), "{status:?}");
    }
}
