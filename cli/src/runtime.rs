//! `--runtime`: which runtime drives the hub and the devices of a command. They
//! offer the same API (`hubwire_runtime::sync`; smol and async-std through their
//! tasks, [`OnTasks`]), so a command is written once, generic over the
//! [`Scheduler`], and this picks the scheduler.

use std::process::ExitCode;

use hubwire_runtime::sync::Scheduler;
use hubwire_runtime::tasks::OnTasks;

/// The runtimes a command can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Runtime {
    // hubwire-blocking: a thread per device, threads per hub connection. (Plain
    // comments: variant docs would turn clap's --help into its long form.)
    Blocking,
    // hubwire-mio: one event loop thread for the hub, one for every device.
    Mio,
    // hubwire-smol: the synchronous API over smol tasks.
    Smol,
    // hubwire-async-std: the synchronous API over async-std tasks.
    AsyncStd,
}

impl Runtime {
    /// Its name, as `--runtime` takes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Blocking => "blocking",
            Runtime::Mio => "mio",
            Runtime::Smol => "smol",
            Runtime::AsyncStd => "async-std",
        }
    }
}

/// A command that runs on any runtime.
pub(crate) trait OnRuntime {
    /// The runtime asked for.
    fn runtime(&self) -> Runtime;

    /// Runs the command on `S`.
    fn run_on<S: Scheduler>(self) -> ExitCode;
}

/// Runs `command` on the runtime it asks for.
pub(crate) fn run(command: impl OnRuntime) -> ExitCode {
    match command.runtime() {
        Runtime::Blocking => command.run_on::<hubwire_blocking::Threads>(),
        Runtime::Mio => command.run_on::<hubwire_mio::EventLoop>(),
        Runtime::Smol => command.run_on::<OnTasks<hubwire_smol::Smol>>(),
        Runtime::AsyncStd => command.run_on::<OnTasks<hubwire_async_std::AsyncStd>>(),
    }
}
