//! `icp-audit test`: policy test cases written in YAML. Each case is an inventory row, a request,
//! ledger rows and an as-of time; it is decided by the real engine (the loaders, the evaluator
//! and the issuing stage of `run`, as a dry run) and the outcome and reason ids are compared
//! with the expected ones. `--coverage` names each side of each rule that no case exercised.
//! This module loads and runs; printing is `main`'s job.

mod coverage;
mod evaluate;
mod file;

pub use coverage::{Coverage, RuleCoverage, measure};
pub use evaluate::Got;
pub use file::BUILT_IN;

use crate::error::{Error, Result};
use crate::eval::Outcome;
use crate::policy::{self, Policy};
use crate::time::Time;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A row's cells as (column name as written, text), in order.
pub type Cells = Vec<(String, String)>;

/// The outcome a case expects, by the engine's names (`issued` and `eligible` are the same
/// expectation).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Expected(String);

impl TryFrom<String> for Expected {
    type Error = String;

    fn try_from(name: String) -> std::result::Result<Self, String> {
        if Outcome::ALL.iter().any(|o| o.name() == name) {
            Ok(Expected(name))
        } else {
            let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
            Err(format!(
                "unknown outcome `{name}`, expected one of {}",
                names.join(", ")
            ))
        }
    }
}

impl Expected {
    /// The engine's outcome of the same name, with `issued` read as `eligible`: cases run as a
    /// dry run, which never issues.
    fn outcome(&self) -> Outcome {
        match Outcome::ALL.into_iter().find(|o| o.name() == self.0) {
            Some(Outcome::Issued) | None => Outcome::Eligible,
            Some(o) => o,
        }
    }

    fn name(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an expectation: a mapping with outcome (and reasons)"
)]
pub struct Expect {
    pub outcome: Expected,
    /// The exact reason ids, in the order the engine reports them.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// One case under one policy, ready to run.
pub struct Case {
    /// The test file, as given on the command line.
    pub file: String,
    /// The case's name, followed by ` [policy name]` when its file runs it under several.
    pub name: String,
    /// Index into `Suite::policies`.
    pub policy: usize,
    pub as_of: Time,
    /// `None`: the inventory has no row.
    pub instance: Option<Cells>,
    pub request: Cells,
    pub ledger: Vec<Cells>,
    pub expect: Expect,
}

#[derive(Default)]
pub struct Suite {
    pub policies: Vec<Policy>,
    pub cases: Vec<Case>,
}

/// Reads and checks every test file and loads the policies they name. A file that does not
/// parse, a case that does not make sense or a policy that does not compile refuses the whole
/// run (exit 2), every problem listed.
pub fn load(paths: &[PathBuf]) -> Result<Suite> {
    let mut loader = Loader::default();
    let problems: Vec<String> = paths
        .iter()
        .filter_map(|p| loader.file(p).err().map(|e| e.message))
        .collect();
    if problems.is_empty() {
        Ok(loader.suite)
    } else {
        Err(Error::refused(problems.join("\n")))
    }
}

#[derive(Default)]
struct Loader {
    suite: Suite,
    /// Policy path (canonical, or `built-in`) → index in `suite.policies`.
    seen: HashMap<String, usize>,
}

impl Loader {
    fn file(&mut self, path: &Path) -> Result<()> {
        let shown = path.display().to_string();
        let whole = crate::policy::read_text(path, &shown, "a test file")?;
        let text = crate::policy::yaml_text(&whole, &shown)?;
        let mut raw = file::parse(text).map_err(|(place, msg)| {
            let (line, col) = place.unwrap_or((1, 1));
            Error::refused(format!(
                "{shown}:{line}:{col}: {}",
                crate::policy::plain_numbers(&crate::policy::one_line(&msg))
            ))
        })?;
        let written = crate::policy::locate::Locations::of(text);
        crate::policy::refuse_unread(&written, &shown)?;
        file::keep_spelling(&mut raw, &written);
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        if raw.cases.is_empty() {
            problems.push(format!("{shown}: `cases` is empty"));
        }
        // The base row is the file's, checked once here rather than in each case that uses it;
        // the cases wait for it to be mended.
        let mut cases = raw.cases.as_slice();
        if let Some(Err(e)) = raw.instance.as_ref().map(file::base_instance) {
            problems.push(format!("{shown}: the file's {e}"));
            cases = &[];
        }
        let mut names = HashSet::new();
        for case in cases {
            let at = |e: String| format!("{shown}: case `{}`: {e}", case.name);
            let wanted = case.policy.as_ref().or(raw.policy.as_ref());
            let added = if names.insert(case.name.as_str()) {
                file::draft(&raw, case)
                    .map_err(at)
                    .and_then(|d| self.add(d, wanted, &shown, dir))
            } else {
                Err(at("another case of the file has this name".to_string()))
            };
            // A policy that does not load is named once, not once per case.
            if let Err(e) = added
                && !problems.contains(&e)
            {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::refused(problems.join("\n")))
        }
    }

    /// Adds the case once per policy it runs under, named ` [policy name]` when several.
    /// `Err` is a problem, formatted.
    fn add(
        &mut self,
        draft: file::Draft,
        wanted: Option<&file::Policies>,
        shown: &str,
        dir: &Path,
    ) -> std::result::Result<(), String> {
        let names = wanted.map_or(vec![BUILT_IN], |p| p.paths());
        if names.is_empty() {
            return Err(format!(
                "{shown}: case `{}`: `policy` lists no policy",
                draft.name
            ));
        }
        let indices = names
            .iter()
            .map(|p| self.policy(dir, p))
            .collect::<Result<Vec<usize>>>()
            .map_err(|e| e.message)?;
        for &policy in &indices {
            let name = if indices.len() > 1 {
                format!("{} [{}]", draft.name, self.suite.policies[policy].name)
            } else {
                draft.name.clone()
            };
            self.suite.cases.push(draft.under(shown, name, policy));
        }
        Ok(())
    }

    /// The suite's index of a policy named by a test file (a path relative to the file, or
    /// `built-in`), loading it the first time.
    fn policy(&mut self, dir: &Path, name: &str) -> Result<usize> {
        let path = dir.join(name);
        let key = if name == BUILT_IN {
            BUILT_IN.to_string()
        } else {
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            canonical.display().to_string()
        };
        if let Some(&i) = self.seen.get(&key) {
            return Ok(i);
        }
        let policy = if name == BUILT_IN {
            policy::default_policy()
        } else {
            policy::load(&path)?
        };
        self.suite.policies.push(policy);
        self.seen.insert(key, self.suite.policies.len() - 1);
        Ok(self.suite.policies.len() - 1)
    }
}

/// What one case gave.
pub struct CaseResult {
    pub case: usize,
    /// The engine's decision, or why the case could not be decided (an input it refused).
    pub got: std::result::Result<Got, String>,
}

impl CaseResult {
    pub fn passed(&self, suite: &Suite) -> bool {
        let expect = &suite.cases[self.case].expect;
        match &self.got {
            Ok(got) => got.outcome == expect.outcome.outcome() && got.reasons == expect.reasons,
            Err(_) => false,
        }
    }

    /// `ok   NAME`, or `FAIL NAME: expected … , got …` followed by indented details.
    pub fn lines(&self, suite: &Suite) -> Vec<String> {
        let case = &suite.cases[self.case];
        if self.passed(suite) {
            return vec![format!("ok   {}", case.name)];
        }
        let want = format!(
            "{} [{}]",
            case.expect.outcome.name(),
            case.expect.reasons.join(", ")
        );
        let policy = &suite.policies[case.policy];
        let place = format!("     in {} (policy {})", case.file, policy.source);
        match &self.got {
            Ok(got) => {
                let mut lines = vec![
                    format!(
                        "FAIL {}: expected {want}, got {} [{}]",
                        case.name,
                        got.outcome.name(),
                        got.reasons.join(", ")
                    ),
                    place,
                ];
                lines.extend(got.messages.iter().map(|m| format!("     {m}")));
                lines
            }
            Err(e) => {
                // An error of several lines (a corrupt ledger's) goes on indented, so that the
                // block still reads as one case's.
                let text = e.to_string();
                let mut said = text.lines();
                let first = said.next().unwrap_or_default();
                let mut lines = vec![format!(
                    "FAIL {}: expected {want}, got an error: {first}",
                    case.name
                )];
                lines.extend(said.map(|l| format!("     {l}")));
                lines.push(place);
                lines
            }
        }
    }
}

/// Runs every case, in order, in a scratch folder of the system's temporary directory that is
/// removed afterwards.
pub fn run(suite: &Suite) -> Result<Vec<CaseResult>> {
    let scratch = evaluate::Scratch::new()?;
    Ok(suite
        .cases
        .iter()
        .enumerate()
        .map(|(i, case)| CaseResult {
            case: i,
            got: evaluate::evaluate(&suite.policies[case.policy], case, &scratch),
        })
        .collect())
}
