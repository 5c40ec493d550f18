//! The hubwire command-line program: a local IoT Hub (`hub`), a device simulator
//! (`device`) and a self-contained demonstration (`demo`).

mod demo;
mod device;
mod hub;
mod json;
mod out;
mod registry;

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
    /// Start an embedded hub and simulated devices, and print a summary table.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Hub(args) => hub::run(args),
        Command::Device(args) => device::run(args),
        Command::Demo(args) => demo::run(args),
    }
}
