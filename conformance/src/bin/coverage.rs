//! Prints the statement coverage of conformance/statements/*.toml, one table per
//! standard then the totals over all of them, and, with `--check`, fails when a
//! test named there is not in a run's test list.
//!
//! ```text
//! coverage [--statements DIR] [--check LIST [--ignored IGNORED]]
//! ```
//!
//! LIST is the output of `cargo test --workspace -- --list 2>&1`, IGNORED that of
//! `cargo test --workspace -- --list --ignored 2>&1`. Exit status: 0 covered, 1 a
//! listed test missing or ignored (each named on stderr), 2 bad arguments or files.

use std::path::PathBuf;
use std::process::ExitCode;

use hubwire_conformance::coverage::{Catalogue, TestList, statement_files, totals};

const USAGE: &str = "usage: coverage [--statements DIR] [--check LIST [--ignored IGNORED]]";

struct Args {
    statements: PathBuf,
    check: Option<PathBuf>,
    ignored: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        statements: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("statements"),
        check: None,
        ignored: None,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.to_str() {
            Some("--statements") => &mut args.statements,
            Some("--check") => args.check.insert(PathBuf::new()),
            Some("--ignored") => args.ignored.insert(PathBuf::new()),
            Some("-h" | "--help") => return Err(String::from(USAGE)),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        };
        *slot = it.next().map(PathBuf::from).ok_or_else(|| format!("{flag:?} needs a path"))?;
    }
    if args.ignored.is_some() && args.check.is_none() {
        return Err(format!("--ignored needs --check\n{USAGE}"));
    }
    Ok(args)
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn run() -> Result<bool, String> {
    let args = args()?;
    let files = statement_files(&args.statements)
        .map_err(|e| format!("{}: {e}", args.statements.display()))?;
    if files.is_empty() {
        return Err(format!("no statement files in {}", args.statements.display()));
    }
    let list = match &args.check {
        Some(list) => {
            let ignored = args.ignored.as_ref().map(read).transpose()?;
            let run = TestList::from_outputs(&read(list)?, ignored.as_deref());
            if run.tests.is_empty() {
                return Err(format!("{}: no tests listed", list.display()));
            }
            Some(run)
        }
        None => None,
    };
    let mut covered = true;
    let mut catalogues = Vec::with_capacity(files.len());
    for file in &files {
        let catalogue =
            Catalogue::parse(&read(file)?).map_err(|e| format!("{}:\n{e}", file.display()))?;
        println!("{}\n{}", file.display(), catalogue.table());
        if let Some(run) = &list {
            let faults = catalogue.check(run);
            for fault in &faults {
                eprintln!("{}: {fault}", file.display());
            }
            covered &= faults.is_empty();
        }
        catalogues.push(catalogue);
    }
    print!("{}", totals(&catalogues));
    Ok(covered)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("statement coverage: a listed test did not run (see above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
