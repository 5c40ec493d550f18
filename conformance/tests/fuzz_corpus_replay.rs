//! The fuzz targets' committed inputs, replayed as ordinary tests: every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (crashes the fuzzer found,
//! kept as regressions) runs through the target's body in
//! `hubwire_core::testing::fuzz` or `hubwire_transports::testing`, so a crash once
//! fixed stays fixed without cargo-fuzz or a nightly compiler.
//!
//! The seed corpora are written from each target's `seeds`: run this test with
//! `HUBWIRE_WRITE_SEEDS=1` after changing a seed or a body's input format.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

/// One fuzz target of either crate.
struct Target {
    name: &'static str,
    run: fn(&[u8]),
    seeds: fn() -> Vec<Vec<u8>>,
    /// The module whose body its libFuzzer file calls.
    module: &'static str,
}

/// Every fuzz target: core's, then transports'.
fn targets() -> Vec<Target> {
    let core = hubwire_core::testing::fuzz::TARGETS.iter().map(|t| Target {
        name: t.name,
        run: t.run,
        seeds: t.seeds,
        module: "hubwire_core::testing::fuzz",
    });
    let transports = hubwire_transports::testing::TARGETS.iter().map(|t| Target {
        name: t.name,
        run: t.run,
        seeds: t.seeds,
        module: "hubwire_transports::testing",
    });
    core.chain(transports).collect()
}

/// Seed files are `seed-00`, `seed-01`, … in `seeds` order.
const SEED_PREFIX: &str = "seed-";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted, without dot files (`.gitkeep`); none if it is absent.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Runs `target` over every file in `fuzz/<kind>/<target>/`; returns the files that
/// panicked and how many ran.
fn replay(target: &Target, kind: &str) -> (Vec<PathBuf>, usize) {
    let files = files(&fuzz_dir().join(kind).join(target.name));
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).expect("readable corpus file");
        if panic::catch_unwind(|| (target.run)(&data)).is_err() {
            failed.push(file.clone());
        }
    }
    (failed, files.len())
}

#[test]
fn every_corpus_input_passes_its_target() {
    let mut failed = Vec::new();
    for target in &targets() {
        let (f, ran) = replay(target, "corpus");
        assert!(ran > 0, "{} has no corpus", target.name);
        failed.extend(f);
    }
    assert!(failed.is_empty(), "corpus inputs that fail: {failed:#?}");
}

#[test]
fn every_saved_crash_stays_fixed() {
    let mut failed = Vec::new();
    for target in &targets() {
        failed.extend(replay(target, "artifacts").0);
    }
    assert!(failed.is_empty(), "crash regressions that fail again: {failed:#?}");
}

#[test]
fn committed_seed_corpora_match_the_seed_builders() {
    let write = std::env::var_os("HUBWIRE_WRITE_SEEDS").is_some();
    for target in &targets() {
        let dir = fuzz_dir().join("corpus").join(target.name);
        let seeds = (target.seeds)();
        assert!(!seeds.is_empty() && seeds.len() <= 30, "{}: {} seeds", target.name, seeds.len());
        let names: Vec<String> = (0..seeds.len()).map(|i| format!("{SEED_PREFIX}{i:02}")).collect();
        if write {
            fs::create_dir_all(&dir).expect("corpus directory");
            for stale in files(&dir) {
                fs::remove_file(stale).expect("removable seed");
            }
            for (name, seed) in names.iter().zip(&seeds) {
                fs::write(dir.join(name), seed).expect("writable corpus");
            }
        }
        let committed: Vec<String> = files(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(committed, names, "{}: rerun with HUBWIRE_WRITE_SEEDS=1", target.name);
        for (name, seed) in names.iter().zip(&seeds) {
            let on_disk = fs::read(dir.join(name)).expect("readable seed");
            assert!(
                on_disk == *seed,
                "{}/{name} is stale: rerun with HUBWIRE_WRITE_SEEDS=1",
                target.name
            );
        }
    }
}

#[test]
fn every_body_has_a_libfuzzer_target() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for target in &targets() {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{}.rs", target.name));
        let source = fs::read_to_string(&file).expect("fuzz target source");
        assert!(
            source.contains(&format!("{}::{}(data)", target.module, target.name)),
            "{} does not call its body",
            file.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            target.name
        );
    }
}

#[test]
fn target_names_are_unique_across_crates() {
    let mut names: Vec<&str> = targets().iter().map(|t| t.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "two targets share a corpus directory");
}
