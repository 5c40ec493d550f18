//! The hubwire command-line program.

fn main() {}
