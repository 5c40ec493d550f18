//! The runtimes' scenario suite (`hubwire_runtime::scenarios`) on async-std tasks:
//! the synchronous API over this runtime's drivers ([`OnTasks`]), its hub and its
//! devices over every transport on loopback. The async API itself is checked by
//! tests/loopback.rs; both drive the same tasks.
//!
//! [`OnTasks`]: hubwire_runtime::tasks::OnTasks

hubwire_runtime::scenario_suite!(hubwire_runtime::tasks::OnTasks<hubwire_async_std::AsyncStd>);
