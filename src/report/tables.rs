//! The CSV outputs, with fixed column sets (SPEC §5).

use super::{atomic, neutralise};
use crate::error::Result;
use crate::eval::{Decision, Outcome};
use crate::input::{Problem, Table};
use crate::schema::col;
use std::path::Path;

fn writer<W: std::io::Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(w)
}

/// The identifying cells of a request row, neutralised.
fn ids(requests: &Table, row: usize) -> [std::borrow::Cow<'_, str>; 3] {
    [col::REQUEST_ID, col::REQUEST_INSTANCE, col::REQUEST_ACCOUNT]
        .map(|c| neutralise(requests.text(c, row)))
}

pub fn write_decisions(out: &Path, requests: &Table, decisions: &[Decision<'_>]) -> Result<()> {
    atomic(&out.join("decisions.csv"), |w| {
        let mut csv = writer(w);
        csv.write_record([
            "request_id",
            "instance_id",
            "account_id",
            "outcome",
            "code",
            "reasons",
        ])?;
        let mut reasons = String::new();
        for (row, d) in decisions.iter().enumerate() {
            let [id, instance, account] = ids(requests, row);
            reasons.clear();
            for (i, r) in d.reasons.iter().enumerate() {
                if i > 0 {
                    reasons.push(';');
                }
                reasons.push_str(r.rule);
            }
            let code = neutralise(d.code.as_deref().unwrap_or(""));
            csv.write_record([
                &*id,
                &*instance,
                &*account,
                d.outcome.name(),
                &*code,
                &reasons,
            ])?;
        }
        csv.flush()
    })
}

pub fn write_denials(out: &Path, requests: &Table, decisions: &[Decision<'_>]) -> Result<()> {
    atomic(&out.join("denials.csv"), |w| {
        let mut csv = writer(w);
        csv.write_record([
            "request_id",
            "instance_id",
            "account_id",
            "outcome",
            "rule_id",
            "message",
            "remedy",
        ])?;
        for (row, d) in decisions.iter().enumerate() {
            if !matches!(
                d.outcome,
                Outcome::Denied | Outcome::NotRequired | Outcome::Invalid
            ) {
                continue;
            }
            let [id, instance, account] = ids(requests, row);
            for r in &d.reasons {
                csv.write_record([
                    &*id,
                    &*instance,
                    &*account,
                    d.outcome.name(),
                    r.rule,
                    &neutralise(&r.message),
                    &neutralise(&r.remedy),
                ])?;
            }
        }
        csv.flush()
    })
}

/// The hand-off for bulk issuance: one row per code this run issued.
pub fn write_issued(
    out: &Path,
    requests: &Table,
    decisions: &[Decision<'_>],
    rows: &[usize],
    issued_at: &str,
) -> Result<()> {
    atomic(&out.join("issued.csv"), |w| {
        let mut csv = writer(w);
        csv.write_record([
            "request_id",
            "instance_id",
            "account_id",
            "code",
            "issued_at",
        ])?;
        for &row in rows {
            let [id, instance, account] = ids(requests, row);
            let code = neutralise(decisions[row].code.as_deref().unwrap_or(""));
            csv.write_record([&*id, &*instance, &*account, &*code, issued_at])?;
        }
        csv.flush()
    })
}

pub fn write_input_errors(out: &Path, problems: &[&Problem]) -> Result<()> {
    atomic(&out.join("input-errors.csv"), |w| {
        let mut csv = writer(w);
        csv.write_record(["file", "line", "column", "message"])?;
        for p in problems {
            csv.write_record([
                &*neutralise(&p.file),
                &p.line.to_string(),
                &*neutralise(&p.column),
                &*neutralise(&p.message),
            ])?;
        }
        csv.flush()
    })
}
