//! Statement coverage: which test checks each normative statement of a standard in
//! each of hubwire's roles, or why the statement does not apply
//! (conformance/statements/*.toml).
//!
//! [`Catalogue::parse`] reads and validates one statement file;
//! [`TestList::from_outputs`] reads what `cargo test -- --list` printed;
//! [`Catalogue::check`] names every statement whose listed test is not in that list,
//! or is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Deserialize;

/// Why a statement does not apply to a role: a short fixed list, documented in the
/// statement files' header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The statement binds only the other role, and nothing of it is for this role
    /// to do or check.
    NotThisRole,
    /// The statement binds the other role, and nothing on the wire lets this side
    /// tell whether it was kept.
    PeerSideUnobservable,
    /// A feature IoT Hub's protocol profile does not use, or this role never uses;
    /// the note says which.
    FeatureUnused,
    /// IoT Hub's profile (spec file) replaces the statement for this role; the note
    /// says how.
    IothubDeviation,
    /// A property of the transport below the protocol (TCP, TLS, WebSocket).
    Transport,
}

impl Reason {
    /// Every reason, in the order the table counts them.
    pub const ALL: [Reason; 5] = [
        Reason::NotThisRole,
        Reason::PeerSideUnobservable,
        Reason::FeatureUnused,
        Reason::IothubDeviation,
        Reason::Transport,
    ];

    /// The name the statement files use.
    pub fn name(self) -> &'static str {
        match self {
            Reason::NotThisRole => "not-this-role",
            Reason::PeerSideUnobservable => "peer-side-unobservable",
            Reason::FeatureUnused => "feature-unused",
            Reason::IothubDeviation => "iothub-deviation",
            Reason::Transport => "transport",
        }
    }

    /// Whether a statement given this reason must say more in its `note`.
    fn needs_note(self) -> bool {
        matches!(self, Reason::FeatureUnused | Reason::IothubDeviation)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one role meets one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Checked by these tests, as `<binary>::<path>`.
    Tests(Vec<String>),
    /// Not applicable.
    Reason(Reason),
}

/// A role's entry as written in the file, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoverage {
    tests: Option<Vec<String>>,
    reason: Option<Reason>,
    note: Option<String>,
}

/// Unknown keys are roles (`deny_unknown_fields` does not work with `flatten`):
/// [`Catalogue::parse`] refuses roles the file does not declare.
#[derive(Debug, Deserialize)]
struct RawStatement {
    id: String,
    summary: String,
    note: Option<String>,
    #[serde(flatten)]
    roles: BTreeMap<String, RawCoverage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    standard: String,
    roles: Vec<String>,
    statement: Vec<RawStatement>,
}

/// One normative statement and its coverage per role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The standard's identifier, such as `MQTT-3.1.2-24`.
    pub id: String,
    /// What it requires, in our words.
    pub summary: String,
    /// More about how it is covered.
    pub note: Option<String>,
    /// Coverage in the order of [`Catalogue::roles`].
    pub coverage: Vec<Coverage>,
}

/// A validated statement file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    /// The standard's name, such as `MQTT 3.1.1`.
    pub standard: String,
    /// The roles every statement covers, such as `device` and `hub`.
    pub roles: Vec<String>,
    /// In file order.
    pub statements: Vec<Statement>,
}

/// What is wrong with a statement file: every fault found, one a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogueError(pub Vec<String>);

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for CatalogueError {}

/// Whether `id` looks like `<LETTERS>-<section>-<n>`, the section two to four
/// numbers joined by dots: MQTT's `3.1.2`, AMQP's `2.2` or `5.3.3.2`.
fn well_formed_id(id: &str) -> bool {
    let Some((prefix, rest)) = id.split_once('-') else { return false };
    let Some((section, number)) = rest.rsplit_once('-') else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_uppercase())
        && (2..=4).contains(&section.split('.').count())
        && section.split('.').all(digits)
        && digits(number)
}

impl Catalogue {
    /// Reads a statement file. Errors: TOML that does not parse or has unknown
    /// keys; a malformed or repeated id; a role missing, unknown, or with both or
    /// neither of `tests` and `reason`; an empty test list; a reason that needs a
    /// note without one.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| CatalogueError(vec![e.to_string()]))?;
        let mut faults = Vec::new();
        let mut seen = BTreeSet::new();
        let mut statements = Vec::with_capacity(raw.statement.len());
        for s in raw.statement {
            if !well_formed_id(&s.id) {
                faults.push(format!("{}: not a statement identifier", s.id));
            }
            if !seen.insert(s.id.clone()) {
                faults.push(format!("{}: listed twice", s.id));
            }
            if s.summary.trim().is_empty() {
                faults.push(format!("{}: no summary", s.id));
            }
            for role in s.roles.keys().filter(|r| !raw.roles.contains(r)) {
                faults.push(format!("{}: unknown role {role:?}", s.id));
            }
            let mut coverage = Vec::with_capacity(raw.roles.len());
            for role in &raw.roles {
                let at = format!("{} ({role})", s.id);
                match s.roles.get(role) {
                    None => faults.push(format!("{at}: neither tests nor a reason")),
                    Some(RawCoverage { tests: Some(_), reason: Some(_), .. }) => {
                        faults.push(format!("{at}: both tests and a reason"))
                    }
                    Some(RawCoverage { tests: None, reason: None, .. }) => {
                        faults.push(format!("{at}: neither tests nor a reason"))
                    }
                    Some(RawCoverage { tests: Some(tests), .. }) if tests.is_empty() => {
                        faults.push(format!("{at}: an empty test list"))
                    }
                    Some(RawCoverage { tests: Some(tests), .. }) => {
                        coverage.push(Coverage::Tests(tests.clone()))
                    }
                    Some(RawCoverage { reason: Some(reason), note, .. }) => {
                        if reason.needs_note()
                            && note.as_deref().is_none_or(|n| n.trim().is_empty())
                        {
                            faults.push(format!("{at}: {reason} needs a note saying which"));
                        }
                        coverage.push(Coverage::Reason(*reason));
                    }
                }
            }
            statements.push(Statement { id: s.id, summary: s.summary, note: s.note, coverage });
        }
        if faults.is_empty() {
            Ok(Catalogue { standard: raw.standard, roles: raw.roles, statements })
        } else {
            Err(CatalogueError(faults))
        }
    }

    /// The faults of this catalogue against a test run: every listed test that is
    /// not in `list` (renamed, deleted, or in a binary that did not run) or that is
    /// ignored (so it did not run). Empty when every statement's tests ran.
    pub fn check(&self, list: &TestList) -> Vec<String> {
        let mut faults = Vec::new();
        for s in &self.statements {
            for (role, coverage) in self.roles.iter().zip(&s.coverage) {
                let Coverage::Tests(tests) = coverage else { continue };
                for test in tests {
                    if list.ignored.contains(test) {
                        faults.push(format!("{} ({role}): {test} is ignored", s.id));
                    } else if !list.tests.contains(test) {
                        faults.push(format!("{} ({role}): no test {test} in the run", s.id));
                    }
                }
            }
        }
        faults
    }

    /// The coverage table: one line per statement, then the count per reason and
    /// the tests per role.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self.statements.iter().map(|s| s.id.len()).max().unwrap_or(0).max(9);
        let _ = write!(out, "{:width$}", "statement");
        for role in &self.roles {
            let _ = write!(out, "  {role:24}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for s in &self.statements {
            let _ = write!(out, "{:width$}", s.id);
            for c in &s.coverage {
                let cell = match c {
                    Coverage::Tests(t) if t.len() == 1 => String::from("1 test"),
                    Coverage::Tests(t) => format!("{} tests", t.len()),
                    Coverage::Reason(r) => r.name().to_string(),
                };
                let _ = write!(out, "  {cell:24}");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        let _ = writeln!(out, "\n{}: {} statements", self.standard, self.statements.len());
        let _ = write!(out, "{:24}", "");
        for role in &self.roles {
            let _ = write!(out, "{role:>8}");
        }
        out.push('\n');
        let count = |f: &dyn Fn(&Coverage) -> bool, i: usize| {
            self.statements.iter().filter(|s| s.coverage.get(i).is_some_and(f)).count()
        };
        let tested = |c: &Coverage| matches!(c, Coverage::Tests(_));
        let _ = write!(out, "{:24}", "tested");
        for i in 0..self.roles.len() {
            let _ = write!(out, "{:>8}", count(&tested, i));
        }
        out.push('\n');
        for reason in Reason::ALL {
            let _ = write!(out, "{:24}", reason.name());
            for i in 0..self.roles.len() {
                let _ = write!(out, "{:>8}", count(&|c| *c == Coverage::Reason(reason), i));
            }
            out.push('\n');
        }
        let _ = write!(out, "{:24}", "distinct tests");
        for i in 0..self.roles.len() {
            let distinct: BTreeSet<&String> = self
                .statements
                .iter()
                .filter_map(|s| match s.coverage.get(i) {
                    Some(Coverage::Tests(t)) => Some(t),
                    _ => None,
                })
                .flatten()
                .collect();
            let _ = write!(out, "{:>8}", distinct.len());
        }
        out.push('\n');
        out
    }
}

/// The totals over several catalogues, per role name (roles in order of first
/// appearance): statements, tested, each reason, as [`Catalogue::table`] counts
/// them for one.
pub fn totals(catalogues: &[Catalogue]) -> String {
    let mut roles: Vec<&str> = Vec::new();
    for role in catalogues.iter().flat_map(|c| &c.roles) {
        if !roles.contains(&role.as_str()) {
            roles.push(role);
        }
    }
    // How many statements of every catalogue give `role` a coverage matching `f`.
    let count = |role: &str, f: &dyn Fn(&Coverage) -> bool| -> usize {
        catalogues
            .iter()
            .filter_map(|c| c.roles.iter().position(|r| r == role).map(|i| (c, i)))
            .map(|(c, i)| c.statements.iter().filter(|s| s.coverage.get(i).is_some_and(f)).count())
            .sum()
    };
    let standards: Vec<&str> = catalogues.iter().map(|c| c.standard.as_str()).collect();
    let statements: usize = catalogues.iter().map(|c| c.statements.len()).sum();
    let mut out = format!("all standards ({}): {statements} statements\n", standards.join(", "));
    let _ = write!(out, "{:24}", "");
    for role in &roles {
        let _ = write!(out, "{role:>8}");
    }
    out.push('\n');
    let _ = write!(out, "{:24}", "tested");
    for role in &roles {
        let _ = write!(out, "{:>8}", count(role, &|c| matches!(c, Coverage::Tests(_))));
    }
    out.push('\n');
    for reason in Reason::ALL {
        let _ = write!(out, "{:24}", reason.name());
        for role in &roles {
            let _ = write!(out, "{:>8}", count(role, &|c| *c == Coverage::Reason(reason)));
        }
        out.push('\n');
    }
    out
}

/// The tests a `cargo test -- --list` run printed, as `<binary>::<path>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestList {
    /// Every test listed.
    pub tests: BTreeSet<String>,
    /// Those listed by a `--list --ignored` run: they did not run.
    pub ignored: BTreeSet<String>,
}

impl TestList {
    /// The tests of a run from the output of `cargo test -- --list` and, if
    /// given, of `cargo test -- --list --ignored` (see [`listed_tests`]).
    pub fn from_outputs(list: &str, ignored: Option<&str>) -> TestList {
        TestList {
            tests: listed_tests(list),
            ignored: ignored.map(listed_tests).unwrap_or_default(),
        }
    }
}

/// The tests named in the output (stdout and stderr together) of
/// `cargo test -- --list`, as `<binary>::<path>`: each
/// `Running <source> (<dir>/<binary>-<hash>)` line names the binary of the
/// `<path>: test` lines after it; `Doc-tests <crate>` names doc tests
/// `<crate>::doc::<path>`. Compiler output, counts and benchmarks are skipped.
pub fn listed_tests(output: &str) -> BTreeSet<String> {
    let mut binary: Option<String> = None;
    let mut tests = BTreeSet::new();
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            binary = rest
                .rsplit_once('(')
                .and_then(|(_, path)| path.strip_suffix(')'))
                .and_then(|path| path.rsplit(['/', '\\']).next())
                .map(|file| file.trim_end_matches(".exe"))
                .map(|file| file.rsplit_once('-').map_or(file, |(name, _hash)| name))
                .map(String::from);
            continue;
        }
        if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
            binary = Some(format!("{krate}::doc"));
            continue;
        }
        // Test names never start with a space; cargo's own lines do.
        if line.starts_with(' ') {
            continue;
        }
        if let (Some(b), Some(path)) = (&binary, line.strip_suffix(": test")) {
            tests.insert(format!("{b}::{path}"));
        }
    }
    tests
}

/// The statement files in `dir` (`*.toml`), sorted.
pub fn statement_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
standard = "MQTT 3.1.1"
roles = ["device", "hub"]

[[statement]]
id = "MQTT-3.1.0-2"
summary = "A second CONNECT is a protocol violation."
device.reason = "not-this-role"
hub.tests = ["hubwire_core::mqtt::tests::hub::second_connect"]

[[statement]]
id = "MQTT-4.3.3-1"
summary = "QoS 2 sender."
device.reason = "feature-unused"
device.note = "QoS 2"
hub.tests = ["hubwire_core::a", "interop_x::b"]
"#;

    const LIST: &str = "\
   Compiling hubwire-core v0.1.0 (/w/core)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.11s
     Running unittests src/lib.rs (target/debug/deps/hubwire_core-f1bff2abbd52d740)
mqtt::tests::hub::second_connect: test
a: test
2 tests, 0 benchmarks
     Running tests/interop_x.rs (target/debug/deps/interop_x-0123456789abcdef)
b: test
bench_like: bench
1 test, 1 benchmark
   Doc-tests hubwire_core
core/src/lib.rs - time::Duration (line 12): test
";

    fn list() -> TestList {
        TestList::from_outputs(LIST, None)
    }

    #[test]
    fn the_list_names_each_test_after_its_binary() {
        let tests: Vec<String> = listed_tests(LIST).into_iter().collect();
        assert_eq!(
            tests,
            [
                "hubwire_core::a",
                "hubwire_core::doc::core/src/lib.rs - time::Duration (line 12)",
                "hubwire_core::mqtt::tests::hub::second_connect",
                "interop_x::b",
            ]
        );
    }

    #[test]
    fn a_file_whose_tests_all_ran_passes_the_check() {
        let catalogue = Catalogue::parse(FILE).unwrap();
        assert_eq!(catalogue.statements.len(), 2);
        assert_eq!(catalogue.check(&list()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_test_fails_the_check_naming_the_statement() {
        let catalogue = Catalogue::parse(FILE).unwrap();
        let renamed = LIST.replace("second_connect", "second_connect_closes");
        let run = TestList::from_outputs(&renamed, None);
        assert_eq!(
            catalogue.check(&run),
            [
                "MQTT-3.1.0-2 (hub): no test hubwire_core::mqtt::tests::hub::second_connect in the run"
            ]
        );
        // A binary that did not run takes its tests with it.
        let without = LIST.replace("deps/interop_x-", "deps/other-");
        let run = TestList::from_outputs(&without, None);
        assert_eq!(catalogue.check(&run), ["MQTT-4.3.3-1 (hub): no test interop_x::b in the run"]);
    }

    #[test]
    fn an_ignored_test_fails_the_check() {
        let catalogue = Catalogue::parse(FILE).unwrap();
        let ignored =
            "     Running unittests src/lib.rs (target/debug/deps/hubwire_core-1)\na: test\n";
        let run = TestList::from_outputs(LIST, Some(ignored));
        assert_eq!(catalogue.check(&run), ["MQTT-4.3.3-1 (hub): hubwire_core::a is ignored"]);
    }

    #[test]
    fn every_fault_of_a_file_is_reported() {
        let bad = FILE
            .replace("device.reason = \"not-this-role\"\n", "")
            .replace("device.note = \"QoS 2\"\n", "")
            .replace("MQTT-4.3.3-1", "MQTT-3.1.0-2");
        let Err(CatalogueError(faults)) = Catalogue::parse(&bad) else { panic!("accepted") };
        assert_eq!(
            faults,
            [
                "MQTT-3.1.0-2 (device): neither tests nor a reason",
                "MQTT-3.1.0-2: listed twice",
                "MQTT-3.1.0-2 (device): feature-unused needs a note saying which",
            ]
        );
    }

    #[test]
    fn unknown_reasons_keys_and_roles_are_refused() {
        let reason = FILE.replace("\"not-this-role\"", "\"uncovered\"");
        assert!(Catalogue::parse(&reason).is_err());
        let key = FILE.replace("device.note", "device.notes");
        assert!(Catalogue::parse(&key).is_err());
        let role = FILE.replace("hub.tests", "server.tests");
        let Err(CatalogueError(faults)) = Catalogue::parse(&role) else { panic!("accepted") };
        assert!(faults.contains(&String::from("MQTT-3.1.0-2: unknown role \"server\"")));
        let both = FILE.replace(
            "device.reason = \"not-this-role\"",
            "device.reason = \"not-this-role\"\ndevice.tests = [\"x::y\"]",
        );
        assert!(Catalogue::parse(&both).is_err());
        let id = FILE.replace("MQTT-3.1.0-2", "MQTT-3.1.0.2");
        assert!(Catalogue::parse(&id).is_err());
    }

    #[test]
    fn the_table_counts_reasons_and_tests_per_role() {
        let table = Catalogue::parse(FILE).unwrap().table();
        assert!(table.contains("MQTT 3.1.1: 2 statements"), "{table}");
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
        };
        assert_eq!(line("tested"), Some(vec!["tested", "0", "2"]));
        assert_eq!(line("not-this-role"), Some(vec!["not-this-role", "1", "0"]));
        assert_eq!(line("feature-unused"), Some(vec!["feature-unused", "1", "0"]));
        assert_eq!(line("distinct tests"), Some(vec!["distinct", "tests", "0", "3"]));
    }

    #[test]
    fn amqp_section_numbers_of_two_to_four_parts_are_identifiers() {
        for id in ["AMQP-2.2-1", "AMQP-2.4.1-3", "AMQP-5.3.3.2-1"] {
            assert!(well_formed_id(id), "{id}");
        }
        for id in ["AMQP-2-1", "AMQP-1.2.3.4.5-1", "AMQP-2.2", "amqp-2.2-1", "AMQP-2..2-1"] {
            assert!(!well_formed_id(id), "{id}");
        }
    }

    #[test]
    fn the_totals_add_up_every_standard_per_role() {
        let mqtt = Catalogue::parse(FILE).unwrap();
        let amqp = Catalogue::parse(
            &FILE
                .replace("MQTT 3.1.1", "AMQP 1.0")
                .replace("MQTT-3.1.0-2", "AMQP-2.2-1")
                .replace("MQTT-4.3.3-1", "AMQP-2.4.1-1")
                .replace(
                    "hub.tests = [\"hubwire_core::a\", \"interop_x::b\"]",
                    "hub.reason = \"transport\"",
                ),
        )
        .unwrap();
        let totals = totals(&[mqtt, amqp]);
        assert!(
            totals.starts_with("all standards (MQTT 3.1.1, AMQP 1.0): 4 statements\n"),
            "{totals}"
        );
        let line = |name: &str| {
            totals
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
        };
        assert_eq!(line("tested"), Some(vec!["tested", "0", "3"]));
        assert_eq!(line("not-this-role"), Some(vec!["not-this-role", "2", "0"]));
        assert_eq!(line("feature-unused"), Some(vec!["feature-unused", "2", "0"]));
        assert_eq!(line("transport"), Some(vec!["transport", "0", "1"]));
    }

    /// The real statement files parse, whatever run they are checked against.
    #[test]
    fn the_statement_files_are_valid() {
        for file in statement_files(&statements_dir()).unwrap() {
            let text = std::fs::read_to_string(&file).unwrap();
            if let Err(e) = Catalogue::parse(&text) {
                panic!("{}:\n{e}", file.display());
            }
        }
    }

    fn statements_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("statements")
    }
}
