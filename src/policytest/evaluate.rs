//! Deciding one case with the real engine: the case's rows are written as the three CSV files
//! of a run and go through the same stages as `run::run` — the table loaders, the indexes, the
//! ledger scan, `eval::decide` and `issue::assign` as a dry run — so a case can only pass if
//! the engine itself decides as it says. Nothing here re-implements a rule.

use super::{Case, Cells};
use crate::digest::Fingerprinter;
use crate::error::{Error, Result};
use crate::eval::{self, Outcome, World};
use crate::input::{self, InstanceIndex, RequestIndex};
use crate::issue;
use crate::policy::Policy;
use crate::policy::waivers::Waivers;
use crate::progress::Progress;
use crate::schema::{Schema, ledger_key};
use std::path::{Path, PathBuf};

/// The engine's decision on a case's request.
#[derive(Debug, Clone)]
pub struct Got {
    /// `eligible` where a real run would issue: cases run as a dry run.
    pub outcome: Outcome,
    /// The reason ids, in the engine's order.
    pub reasons: Vec<String>,
    /// `rule: message` for each reason, for a failing case's report.
    pub messages: Vec<String>,
}

/// A folder of the system's temporary directory, removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Result<Scratch> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let dir = base.join(format!("icp-audit-test-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::failed(format!(
                        "cannot make a scratch folder in {}: {e}",
                        base.display()
                    )));
                }
            }
        }
        Err(Error::failed(format!(
            "cannot make a scratch folder in {}",
            base.display()
        )))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Decides the case's one request under `policy`; `Err` when an input is refused as a whole.
pub fn evaluate(
    policy: &Policy,
    case: &Case,
    scratch: &Scratch,
) -> std::result::Result<Got, String> {
    let (inst_path, req_path, ledger_path) = (
        scratch.path("instances.csv"),
        scratch.path("requests.csv"),
        scratch.path("ledger.csv"),
    );
    let header_only = required_header();
    let instance = case.instance.as_ref().map_or(&header_only, |r| r);
    write_rows(
        &inst_path,
        &with_declared(instance, &policy.instances),
        case.instance.is_some(),
    )?;
    write_rows(
        &req_path,
        &with_declared(&case.request, &policy.requests),
        true,
    )?;
    write_ledger(&ledger_path, &case.ledger)?;
    decide(policy, case, [&inst_path, &req_path, &ledger_path]).map_err(|e| e.message)
}

/// The stages of `run::run` up to issuing, on the files just written.
fn decide(policy: &Policy, case: &Case, [inst, req, led]: [&PathBuf; 3]) -> Result<Got> {
    let instances = input::load_table(inst, "instances.csv", &policy.instances)?;
    let requests = input::load_table(req, "requests.csv", &policy.requests)?;
    let fingerprints = Fingerprinter::default();
    let by_instance = InstanceIndex::new(&instances);
    let by_request = RequestIndex::new(&requests);
    let ledger = input::ledger::scan(led, "ledger.csv", &fingerprints, &by_instance, &by_request)?;
    let repeats = by_request.into_repeats();
    let no_waivers = Waivers::default();
    let as_of_text = crate::time::format(case.as_of);
    let world = World {
        policy,
        instances: &instances,
        requests: &requests,
        ledger: &ledger,
        by_instance: &by_instance,
        repeats: &repeats,
        waivers: &no_waivers,
        as_of: case.as_of,
        as_of_text: &as_of_text,
    };
    let mut decisions = eval::decide(&world, 1, &Progress::hidden())
        .map_err(Error::failed)?
        .decisions;
    issue::assign(
        &mut decisions,
        &policy.code,
        &ledger.codes,
        &fingerprints,
        true,
        None,
    )?;
    let d = decisions
        .first()
        .ok_or_else(|| Error::failed("the request row was not read (is it blank?)"))?;
    Ok(Got {
        outcome: d.outcome,
        reasons: eval::rule_ids(&world, d).map(String::from).collect(),
        messages: eval::reasons(&world, 0, d)
            .into_iter()
            .map(|r| format!("{}: {}", r.rule, r.message))
            .collect(),
    })
}

/// An inventory with no rows still has its required columns.
fn required_header() -> Cells {
    Schema::instances()
        .columns
        .iter()
        .filter(|c| c.required)
        .map(|c| (c.name.clone(), String::new()))
        .collect()
}

/// `row` with an empty cell for each column the policy declares that it does not name: a case
/// leaves out what it does not test, where a run refuses a file without a declared column.
fn with_declared(row: &Cells, schema: &Schema) -> Cells {
    let missing = schema
        .columns
        .iter()
        .filter(|c| c.declared && !row.iter().any(|(k, _)| c.matches_header(k)))
        .map(|c| (c.name.clone(), String::new()));
    row.iter().cloned().chain(missing).collect()
}

/// Writes a header and, when `with_row`, one row.
fn write_rows(path: &Path, row: &Cells, with_row: bool) -> std::result::Result<(), String> {
    let mut text = line(row.iter().map(|(k, _)| k.as_str()));
    if with_row {
        text.push_str(&line(row.iter().map(|(_, v)| v.as_str())));
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The ledger file, with the columns of all its rows; no file (an empty ledger) for no rows.
fn write_ledger(path: &Path, rows: &[Cells]) -> std::result::Result<(), String> {
    if rows.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        };
    }
    // Keys name columns as the ledger's header cells do: `domain` and `Domain`, or `account_id`
    // and `OwnerId`, in two rows are one column, written once.
    let same = |a: &str, b: &str| ledger_key(a) == ledger_key(b);
    // (Within one row, two spellings of one column were refused when the file was read.)
    let mut header: Vec<&str> = Vec::new();
    for (k, _) in rows.iter().flatten() {
        if !header.iter().any(|h| same(h, k)) {
            header.push(k);
        }
    }
    let mut text = line(header.iter().copied());
    for row in rows {
        let value = |h: &str| {
            row.iter()
                .find(|(k, _)| same(k, h))
                .map_or("", |(_, v)| v.as_str())
        };
        text.push_str(&line(header.iter().map(|h| value(h))));
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One CSV record (RFC 4180: a field is quoted when it holds a comma, quote or line end, or
/// space at either end).
fn line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = fields
        .map(|f| {
            let special = f.contains([',', '"', '\n', '\r']) || f.trim() != f;
            if special {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}
