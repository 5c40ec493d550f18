//! The hubwire command-line program: a local IoT Hub (`hub`), a device simulator
//! (`device`), a field gateway (`gateway`), a device's MQTT credentials for other
//! clients (`token`) and a self-contained demonstration (`demo`).

mod demo;
mod device;
mod gateway;
mod hub;
mod json;
mod load;
mod out;
mod registry;
mod runtime;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Azure IoT Hub device protocols, both roles, from one sans-IO core.
#[derive(Debug, Parser)]
#[command(name = "hubwire", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local IoT Hub; stdout reports D2C messages and events as JSON lines,
    /// stdin takes C2D messages as JSON lines.
    #[command(after_long_help = json::STREAMS_HELP)]
    Hub(hub::HubArgs),
    /// Run a device that sends telemetry and completes the C2D messages it gets.
    Device(device::DeviceArgs),
    /// Run a field gateway: MQTT and HTTPS devices downstream, each with its own SAS
    /// token, carried to their hub over one AMQP connection, the hub judging every
    /// token.
    Gateway(gateway::GatewayArgs),
    /// Print the address, MQTT client id, user name and password (a SAS token) with
    /// which any MQTT client can act as a device.
    ///
    /// Prints `host`, `port`, `clientId`, `username`, `password` and `expiresAt`
    /// (when the password expires, seconds since the Unix epoch), one `name: value`
    /// a line, or one JSON object with those names with --json.
    Token(token::TokenArgs),
    /// Start an embedded hub and simulated devices, and print a summary table.
    Demo(demo::DemoArgs),
    /// Connect many simulated devices to a hub, each sending one acknowledged message
    /// per interval, and report what was sent, acknowledged and lost, latency, and
    /// the hub's memory per connection (a JSON line on stdout, words on stderr).
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Hub(args) => runtime::run(args),
        Command::Device(args) => runtime::run(args),
        Command::Gateway(args) => runtime::run(args),
        Command::Token(args) => token::run(args),
        Command::Demo(args) => runtime::run(args),
        Command::Load(args) => runtime::run(args),
    }
}
