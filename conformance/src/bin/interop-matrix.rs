//! `interop-matrix`: every real peer against hubwire, as a table of peer ×
//! transport × scenario, pass or fail.
//!
//! ```text
//! cargo run -p hubwire-conformance --bin interop-matrix             # runs the interop tests
//! cargo run -p hubwire-conformance --bin interop-matrix -- --from LOG  # reads a test run's output
//! ```
//!
//! The cells are the interop tests of `conformance/tests/interop_*.rs`, which run the
//! real peers (and fail, saying how to install one, when it is missing). `--from`
//! reads the output of a `cargo test` run that included them, so the test command
//! prints the matrix of the run it made instead of running the peers twice. The exit
//! status is non-zero when a cell failed or did not run, or when an interop test is
//! not in [`CELLS`] (a new test must say what it shows).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::process::{Command, ExitCode, Stdio};

/// One interop test: the peer, the transport, the scenarios it shows, and the test
/// (its file under `conformance/tests/`, its function).
struct Cell {
    peer: &'static str,
    transport: &'static str,
    scenarios: &'static [Scenario],
    binary: &'static str,
    test: &'static str,
}

/// The matrix's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    /// Connect and send telemetry the hub stores.
    Telemetry,
    /// Receive C2D messages and settle them (complete; reject and abandon where the
    /// transport has them).
    C2d,
    /// Twin get, reported patch, desired update, direct method.
    TwinMethods,
    /// Wrong credentials or bad requests refused with the standard's answer.
    Refusal,
}

impl Scenario {
    const ALL: [Scenario; 4] =
        [Scenario::Telemetry, Scenario::C2d, Scenario::TwinMethods, Scenario::Refusal];

    fn title(self) -> &'static str {
        match self {
            Scenario::Telemetry => "telemetry",
            Scenario::C2d => "C2D settle",
            Scenario::TwinMethods => "twin + methods",
            Scenario::Refusal => "refusal",
        }
    }
}

const fn cell(
    peer: &'static str,
    transport: &'static str,
    scenarios: &'static [Scenario],
    binary: &'static str,
    test: &'static str,
) -> Cell {
    Cell { peer, transport, scenarios, binary, test }
}

use Scenario::{C2d, Refusal, Telemetry, TwinMethods};

const NODE: &str = "interop_node_sdk";
const PYTHON: &str = "interop_python_sdk";
const PROTON: &str = "interop_proton";
const CURL: &str = "interop_curl";
const CLIENTS: &str = "interop_mosquitto_clients";
const BROKER: &str = "interop_mosquitto_broker";

/// Every interop test, and what it shows.
#[rustfmt::skip]
const CELLS: &[Cell] = &[
    cell("Node.js SDK", "mqtt", &[Telemetry, C2d], NODE,
         "node_sdk_over_mqtt_sends_telemetry_and_completes_c2d"),
    cell("Node.js SDK", "mqtt", &[TwinMethods], NODE,
         "node_sdk_over_mqtt_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("Node.js SDK", "mqtt-ws", &[Telemetry, C2d], NODE,
         "node_sdk_over_mqtt_ws_sends_telemetry_and_completes_c2d"),
    cell("Node.js SDK", "mqtt-ws", &[TwinMethods], NODE,
         "node_sdk_over_mqtt_ws_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("Node.js SDK", "amqp", &[Telemetry, C2d], NODE,
         "node_sdk_over_amqp_sends_telemetry_and_completes_rejects_abandons_c2d"),
    cell("Node.js SDK", "amqp", &[TwinMethods], NODE,
         "node_sdk_over_amqp_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("Node.js SDK", "amqp-ws", &[Telemetry, C2d], NODE,
         "node_sdk_over_amqp_ws_sends_telemetry_and_completes_rejects_abandons_c2d"),
    cell("Node.js SDK", "amqp-ws", &[TwinMethods], NODE,
         "node_sdk_over_amqp_ws_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("Node.js SDK", "http", &[Telemetry, C2d], NODE,
         "node_sdk_over_http_sends_telemetry_and_a_batch_and_polls_c2d_three_ways"),
    cell("Python SDK", "mqtt", &[Telemetry, C2d], PYTHON,
         "python_sdk_over_mqtt_sends_telemetry_and_receives_c2d"),
    cell("Python SDK", "mqtt", &[TwinMethods], PYTHON,
         "python_sdk_over_mqtt_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("Python SDK", "mqtt-ws", &[Telemetry, C2d], PYTHON,
         "python_sdk_over_mqtt_ws_sends_telemetry_and_receives_c2d"),
    cell("Python SDK", "mqtt-ws", &[TwinMethods], PYTHON,
         "python_sdk_over_mqtt_ws_gets_its_twin_reports_hears_desired_and_answers_a_method"),
    cell("mosquitto_pub/sub", "mqtt", &[Telemetry], CLIENTS,
         "mosquitto_pub_with_a_sas_token_publishes_qos_1_telemetry_the_hub_stores"),
    cell("mosquitto_pub/sub", "mqtt", &[C2d], CLIENTS,
         "mosquitto_sub_on_the_device_bound_topic_receives_c2d_with_its_properties"),
    cell("mosquitto_pub/sub", "mqtt", &[Refusal], CLIENTS,
         "mosquitto_pub_with_a_wrong_token_gets_connack_5_and_nothing_is_stored"),
    cell("mosquitto broker (hubwire device)", "mqtt", &[Telemetry], BROKER,
         "device_telemetry_through_mosquitto_reaches_mosquitto_sub_byte_exact"),
    cell("Qpid Proton", "amqp", &[Telemetry, C2d], PROTON,
         "proton_over_amqps_sends_telemetry_and_settles_c2d_three_ways"),
    cell("Qpid Proton", "amqp", &[Refusal], PROTON,
         "proton_with_a_token_of_the_wrong_key_gets_cbs_401_and_a_neighbour_is_unaffected"),
    cell("Qpid Proton", "amqp-tcp", &[Telemetry, C2d], PROTON,
         "proton_over_plain_amqp_with_sasl_anonymous_sends_telemetry_and_settles_c2d_three_ways"),
    cell("Qpid Proton server (hubwire device)", "amqp-tcp", &[Telemetry, C2d], PROTON,
         "hubwire_device_over_amqp_tcp_reaches_proton_and_settles_c2d_three_ways"),
    cell("Qpid Proton server (hubwire device)", "amqp", &[Refusal], PROTON,
         "hubwire_device_over_amqps_reports_a_telemetry_message_proton_rejects"),
    cell("curl", "http", &[Telemetry], CURL,
         "curl_sends_telemetry_single_and_batch"),
    cell("curl", "http", &[C2d], CURL,
         "curl_receives_and_settles_c2d_three_ways"),
    cell("curl", "http", &[Refusal], CURL,
         "curl_is_refused_with_iot_hubs_statuses_and_codes"),
];

/// How one test ended in the run read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// The interop tests' outcomes in a `cargo test` output: (binary, test) → outcome.
/// A test binary's results follow its `Running tests/<binary>.rs (…)` line.
fn outcomes(output: &str) -> BTreeMap<(String, String), Outcome> {
    let mut binary: Option<String> = None;
    let mut found = BTreeMap::new();
    for line in output.lines() {
        let line = line.trim();
        if let Some(running) = line.strip_prefix("Running ") {
            binary = running
                .strip_prefix("tests/")
                .and_then(|rest| rest.split_once(".rs"))
                .map(|(name, _)| name.to_owned())
                .filter(|name| name.starts_with("interop_"));
            continue;
        }
        let (Some(binary), Some(rest)) = (&binary, line.strip_prefix("test ")) else {
            continue;
        };
        let Some((test, result)) = rest.split_once(" ... ") else { continue };
        let outcome = match result {
            "ok" => Outcome::Passed,
            "FAILED" => Outcome::Failed,
            r if r.starts_with("ignored") => Outcome::Ignored,
            _ => continue,
        };
        found.insert((binary.clone(), test.to_owned()), outcome);
    }
    found
}

/// What a run says: the matrix in text, and the problems that fail it.
fn report(found: &BTreeMap<(String, String), Outcome>) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    for (binary, test) in found.keys() {
        if !CELLS.iter().any(|c| c.binary == binary && c.test == test) {
            problems.push(format!(
                "{binary}::{test} is an interop test the matrix does not know: add it to \
                 CELLS in conformance/src/bin/interop-matrix.rs"
            ));
        }
    }
    // Rows in the order CELLS gives them.
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for c in CELLS {
        if !rows.contains(&(c.peer, c.transport)) {
            rows.push((c.peer, c.transport));
        }
    }
    let mut text = String::new();
    let _ = write!(text, "| peer | transport |");
    for scenario in Scenario::ALL {
        let _ = write!(text, " {} |", scenario.title());
    }
    let _ = write!(text, "\n|---|---|");
    for _ in Scenario::ALL {
        text.push_str("---|");
    }
    text.push('\n');
    for (peer, transport) in rows {
        let _ = write!(text, "| {peer} | {transport} |");
        for scenario in Scenario::ALL {
            let cells: Vec<&Cell> = CELLS
                .iter()
                .filter(|c| {
                    c.peer == peer && c.transport == transport && c.scenarios.contains(&scenario)
                })
                .collect();
            let mark = if cells.is_empty() {
                "—"
            } else {
                let mut mark = "pass";
                for c in cells {
                    let key = (c.binary.to_owned(), c.test.to_owned());
                    let outcome = found.get(&key);
                    if outcome != Some(&Outcome::Passed) {
                        mark = "FAIL";
                        let what = match outcome {
                            Some(Outcome::Failed) => "failed",
                            Some(Outcome::Ignored) => "was ignored",
                            _ => "did not run",
                        };
                        problems.push(format!("{}::{} {what}", c.binary, c.test));
                    }
                }
                mark
            };
            let _ = write!(text, " {mark} |");
        }
        text.push('\n');
    }
    let passed = found.values().filter(|o| **o == Outcome::Passed).count();
    let _ = writeln!(text, "\n{passed} interop tests passed; {} problem(s)", problems.len());
    (text, problems)
}

/// Runs the interop tests; returns what cargo and the tests printed, in order.
fn run_interop_tests() -> Result<String, String> {
    let mut binaries: Vec<&str> = CELLS.iter().map(|c| c.binary).collect();
    binaries.dedup();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["test", "-p", "hubwire-conformance"]);
    for binary in &binaries {
        command.args(["--test", binary]);
    }
    // cargo's `Running` lines go to stderr and the results to stdout: one file for
    // both keeps them in the order they were written.
    let path = std::env::temp_dir().join(format!("interop-matrix-{}.log", std::process::id()));
    let file = File::create(&path).map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    let status = command
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2))
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let output = std::fs::read_to_string(&path).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    let output = output?;
    eprint!("{output}");
    if !status.success() {
        eprintln!("interop-matrix: cargo test exited with {status}");
    }
    Ok(output)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let output = match args.as_slice() {
        [] => run_interop_tests(),
        [flag, file] if flag == "--from" => {
            std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))
        }
        _ => Err(String::from("usage: interop-matrix [--from CARGO_TEST_OUTPUT]")),
    };
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            eprintln!("interop-matrix: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, problems) = report(&outcomes(&output));
    println!("{text}");
    for problem in &problems {
        eprintln!("interop-matrix: {problem}");
    }
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's output with every cell passed, as cargo prints it (stdout and stderr
    /// together, as `2>&1` gives them).
    fn all_passed() -> String {
        let mut out = String::from("   Compiling hubwire v0.1.0\n");
        let mut binaries: Vec<&str> = CELLS.iter().map(|c| c.binary).collect();
        binaries.dedup();
        for binary in binaries {
            out.push_str(&format!(
                "     Running tests/{binary}.rs (target/debug/deps/{binary}-0123abcd)\n\nrunning 2 tests\n"
            ));
            for c in CELLS.iter().filter(|c| c.binary == binary) {
                out.push_str(&format!("test {} ... ok\n", c.test));
            }
            out.push_str("\ntest result: ok.\n\n");
        }
        out
    }

    #[test]
    fn a_run_where_every_interop_test_passed_has_no_problem_and_no_fail() {
        let (text, problems) = report(&outcomes(&all_passed()));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!text.contains("FAIL"), "{text}");
        assert!(text.contains("| Node.js SDK | amqp-ws | pass | pass | pass | — |"), "{text}");
    }

    #[test]
    fn a_failed_or_missing_test_fails_its_cell_and_the_run() {
        let run = all_passed()
            .replace(
                "test curl_sends_telemetry_single_and_batch ... ok",
                "test curl_sends_telemetry_single_and_batch ... FAILED",
            )
            .replace("test python_sdk_over_mqtt_ws_sends_telemetry_and_receives_c2d ... ok\n", "");
        let (text, problems) = report(&outcomes(&run));
        assert!(text.contains("| curl | http | FAIL | pass | — | pass |"), "{text}");
        assert!(text.contains("| Python SDK | mqtt-ws | FAIL | FAIL | pass | — |"), "{text}");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn an_interop_test_the_matrix_does_not_know_fails_the_run() {
        let run = all_passed().replace(
            "test curl_sends_telemetry_single_and_batch ... ok",
            "test curl_sends_telemetry_single_and_batch ... ok\ntest curl_does_something_new ... ok",
        );
        let (_, problems) = report(&outcomes(&run));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("curl_does_something_new"), "{problems:?}");
    }

    #[test]
    fn tests_of_other_binaries_are_not_interop_cells() {
        let run = format!(
            "{}     Running tests/cli_demo.rs (target/debug/deps/cli_demo-1)\ntest demo_runs ... ok\n",
            all_passed()
        );
        let (_, problems) = report(&outcomes(&run));
        assert!(problems.is_empty(), "{problems:?}");
    }
}
