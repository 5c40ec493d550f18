//! The runtimes' scenario suite (`hubwire_runtime::scenarios`) on this runtime:
//! its hub and its devices over every transport on loopback.

hubwire_runtime::scenario_suite!(hubwire_mio::EventLoop);
