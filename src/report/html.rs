//! `report.html`: a self-contained page for people (no scripts, no network): the run's header,
//! totals per outcome and the refusals per rule with their remedies. Every value is escaped.

use super::tables::Remedies;
use super::{Counts, Facts};
use crate::input::FileInfo;
use crate::time;
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right}code{font-size:.95em}";

pub fn render(facts: &Facts<'_>, counts: &Counts, remedies: &Remedies) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>icp-audit report</title><style>{STYLE}</style></head><body>\n\
         <h1>ICP service code audit</h1>"
    );
    header(&mut h, facts);
    totals(&mut h, counts);
    rules(&mut h, facts, counts, remedies);
    h.push_str("</body></html>\n");
    h
}

fn header(h: &mut String, f: &Facts<'_>) {
    let file = |info: &FileInfo| {
        format!(
            "<code>{}</code>, {} rows, SHA-256 <code>{}</code>",
            escape(&info.path),
            info.rows,
            escape(&info.sha256)
        )
    };
    let _ = writeln!(
        h,
        "<table><tr><th>As of</th><td>{}</td></tr>\
         <tr><th>Policy</th><td>{} (<code>{}</code>), SHA-256 <code>{}</code></td></tr>\
         <tr><th>Instances</th><td>{}</td></tr><tr><th>Requests</th><td>{}</td></tr>\
         <tr><th>Ledger</th><td>{}; {} rows after the run</td></tr>\
         <tr><th>Dry run</th><td>{}</td></tr><tr><th>Version</th><td>{}</td></tr></table>",
        time::format(f.as_of),
        escape(&f.policy.name),
        escape(&f.policy.source),
        escape(&f.policy.sha256),
        file(f.instances),
        file(f.requests),
        file(f.ledger),
        f.ledger_after,
        if f.dry_run { "yes" } else { "no" },
        env!("CARGO_PKG_VERSION"),
    );
}

fn totals(h: &mut String, counts: &Counts) {
    h.push_str("<h2>Outcomes</h2><table><tr><th>Outcome</th><th>Requests</th></tr>");
    for (o, n) in &counts.outcomes {
        let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", escape(o));
    }
    h.push_str("</table>\n");
}

fn rules(h: &mut String, f: &Facts<'_>, counts: &Counts, tally: &Remedies) {
    let remedies = tally;
    let describe = |id: &str| {
        f.policy
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.description.as_str())
            .or_else(|| {
                f.policy
                    .quotas
                    .iter()
                    .find(|q| q.id == id)
                    .map(|q| q.description.as_str())
            })
            .unwrap_or("built-in check of the input")
    };
    h.push_str(
        "<h2>Refusals by rule</h2><table><tr><th>Rule</th><th>What it requires</th>\
         <th>Requests</th><th>Remedy</th></tr>",
    );
    for (id, n) in &counts.rules {
        let remedy = remedies
            .get(id.as_str())
            .and_then(|m| m.iter().max_by_key(|(_, c)| **c))
            .map_or(String::new(), |(r, _)| escape(r));
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{n}</td><td>{remedy}</td></tr>",
            escape(id),
            escape(describe(id))
        );
    }
    h.push_str("</table>\n");
}
