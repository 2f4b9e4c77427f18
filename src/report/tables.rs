//! The CSV outputs, with fixed column sets (SPEC §5).

use super::csvrow::{
    cell as csv_cell, cell_unquoted, needs_quotes, prefix as csv_prefix, prefix_unquoted,
    row as csv_row,
};
use super::{Durable, Staged, neutralise, stage, stage_large, write_in_pieces};
use crate::error::Result;
use crate::eval::{Decision, Exemption, Outcome, Remedy, Scratch, World, each_reason, rule_ids};
use crate::input::{Problem, Table};
use crate::issue::Issued;
use crate::policy::{Piece, Policy};
use crate::schema::col;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// How many refusals each remedy of each rule accounts for: the report's top remedies.
pub type Remedies<'p> = BTreeMap<&'p str, BTreeMap<String, u64>>;

/// One piece's count of remedies per rule: the policy's own texts by identity (the same few
/// `&str`s every time, so no text is compared or copied per row), rendered ones by text.
#[derive(Default)]
struct Tally<'p> {
    plain: Vec<Made<'p>>,
    rendered: Remedies<'p>,
}

/// What a rule with a plain remedy writes the same in every denial row, made once per rule and
/// piece, and how many of the piece's rows it wrote.
struct Made<'p> {
    rule: &'p str,
    remedy: &'p str,
    /// Its id and the comma after it, as CSV.
    head: Vec<u8>,
    /// A comma, its remedy and the line's end, as CSV.
    tail: Vec<u8>,
    /// Whether its messages need no quotes when both tables are plain: the words of its
    /// message template need none, and every value it is filled with comes from those tables
    /// or is ours (a number, a time, a word, `(none)`).
    message_unquoted: bool,
    count: u64,
}

impl<'p> Tally<'p> {
    /// Counts one row of a rule with a plain remedy, found by identity, and gives what the row
    /// writes of it.
    fn add_plain(&mut self, policy: &'p Policy, rule: &'p str, remedy: &'p str) -> &Made<'p> {
        let same = |m: &Made| std::ptr::eq(m.rule, rule) && std::ptr::eq(m.remedy, remedy);
        let at = match self.plain.iter().position(same) {
            Some(at) => at,
            None => {
                self.plain.push(Made::new(policy, rule, remedy));
                self.plain.len() - 1
            }
        };
        let made = &mut self.plain[at];
        made.count += 1;
        made
    }

    fn add_rendered(&mut self, rule: &'p str, text: &str) {
        let by_remedy = self.rendered.entry(rule).or_default();
        match by_remedy.get_mut(text) {
            Some(n) => *n += 1,
            None => {
                by_remedy.insert(text.to_string(), 1);
            }
        }
    }

    /// Adds this piece's counts to `remedies`, by text.
    fn add_to(self, remedies: &mut Remedies<'p>) {
        for m in self.plain {
            *remedies
                .entry(m.rule)
                .or_default()
                .entry(m.remedy.to_string())
                .or_default() += m.count;
        }
        for (rule, by_remedy) in self.rendered {
            let mine = remedies.entry(rule).or_default();
            for (text, n) in by_remedy {
                *mine.entry(text).or_default() += n;
            }
        }
    }
}

impl<'p> Made<'p> {
    fn new(policy: &'p Policy, rule: &'p str, remedy: &'p str) -> Made<'p> {
        let mut head = Vec::new();
        csv_prefix(&mut head, &[rule]);
        let mut tail = vec![b','];
        csv_row(&mut tail, &[&neutralise(remedy)]);
        // The rule or quota of this id (a built-in reason has neither: its message names a
        // file, which may need quotes).
        let template = (policy.rules.iter())
            .map(|r| (&r.id, &r.message))
            .chain(policy.quotas.iter().map(|q| (&q.id, &q.message)))
            .find(|(id, _)| std::ptr::eq(id.as_str(), rule))
            .map(|(_, t)| t);
        let message_unquoted = template.is_some_and(|t| {
            t.pieces.iter().all(|p| match p {
                Piece::Text(words) => !needs_quotes(words.as_bytes()),
                Piece::Field(_) => true,
            })
        });
        Made {
            rule,
            remedy,
            head,
            tail,
            message_unquoted,
            count: 0,
        }
    }
}

/// How many denials' inventory rows are fetched into cache together, before they are rendered.
const WARM: usize = 64;

/// How many rendered bytes the small tables gather before a write.
const SPILL: usize = 64 << 10;

/// Writes out and empties `buf` once it holds `SPILL` bytes.
fn spill(w: &mut impl Write, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.len() >= SPILL {
        w.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

/// The identifying cells of a request row, neutralised.
fn ids(requests: &Table, row: usize) -> [std::borrow::Cow<'_, str>; 3] {
    // Written out, not mapped over an array: the code generation left the map out of line.
    let cell = |c| neutralise(requests.text(c, row));
    [
        cell(col::REQUEST_ID),
        cell(col::REQUEST_INSTANCE),
        cell(col::REQUEST_ACCOUNT),
    ]
}

/// Appends a request row's identifying cells, neutralised, each followed by a comma: the cells
/// every row of the large tables starts with. Those of a `plain` table are copied without the
/// quoting check.
fn push_ids(buf: &mut Vec<u8>, requests: &Table, row: usize) {
    let [id, instance, account] = ids(requests, row);
    let cells: [&str; 3] = [&id, &instance, &account];
    if requests.plain() {
        prefix_unquoted(buf, &cells);
    } else {
        csv_prefix(buf, &cells);
    }
}

/// The code a decision carries: the ledger's for `already_issued`, the new one for `issued`.
fn code_of<'a>(w: &'a World<'_>, issued: &'a Issued, row: usize, d: &Decision) -> &'a str {
    match d.outcome {
        Outcome::AlreadyIssued => w
            .ledger
            .hits
            .get(&(row as u32))
            .map_or("", |h| h.code.as_str()),
        Outcome::Issued => issued.code(row).unwrap_or(""),
        _ => "",
    }
}

pub fn write_decisions(
    out: &Path,
    w: &World<'_>,
    decisions: &[Decision],
    issued: &Issued,
) -> Result<Staged> {
    stage_large(&out.join("decisions.csv"), Durable::Renamed, |file| {
        let header = "request_id,instance_id,account_id,outcome,code,reasons\n";
        file.write_all(header.as_bytes())?;
        write_in_pieces(file, decisions.len(), |rows, buf| {
            for row in rows {
                let d = &decisions[row];
                push_ids(buf, w.requests, row);
                prefix_unquoted(buf, &[d.outcome.name()]);
                let code = neutralise(code_of(w, issued, row, d));
                csv_prefix(buf, &[&code]);
                // Rule ids are lower-case letters, digits and hyphens (the policy compiler
                // refuses any other), the built-in reasons' too: they need no quotes.
                for (i, rule) in rule_ids(w, d).enumerate() {
                    if i > 0 {
                        buf.push(b';');
                    }
                    cell_unquoted(buf, rule);
                }
                buf.push(b'\n');
            }
            Ok(())
        })?;
        Ok(())
    })
}

/// Writes `denials.csv` and tallies the remedies for the report.
pub fn write_denials<'p>(
    out: &Path,
    w: &World<'p>,
    decisions: &[Decision],
) -> Result<(Staged, Remedies<'p>)> {
    let mut remedies = Remedies::new();
    let staged = stage_large(&out.join("denials.csv"), Durable::Renamed, |file| {
        let header = "request_id,instance_id,account_id,outcome,rule_id,message,remedy\n";
        file.write_all(header.as_bytes())?;
        let tallies = write_in_pieces(file, decisions.len(), |rows, buf| {
            let mut tally = Tally::default();
            let mut scratch = Scratch::default();
            let mut inventory = Vec::with_capacity(WARM);
            let mut shared = Vec::new();
            let tables_plain = w.instances.plain() && w.requests.plain();
            for start in rows.clone().step_by(WARM) {
                let few = start..(start + WARM).min(rows.end);
                // The inventory rows these messages will read, fetched together just before:
                // a few at a time, so that they are still in cache when they are read.
                inventory.clear();
                inventory.extend(
                    decisions[few.clone()]
                        .iter()
                        .filter(|d| matches!(d.outcome, Outcome::Denied | Outcome::NotRequired))
                        .filter_map(Decision::instance_row),
                );
                w.instances.warm(&inventory);
                for row in few {
                    let d = &decisions[row];
                    if !matches!(
                        d.outcome,
                        Outcome::Denied | Outcome::NotRequired | Outcome::Invalid
                    ) {
                        continue;
                    }
                    // The cells every reason row of the request starts with, written once.
                    shared.clear();
                    push_ids(&mut shared, w.requests, row);
                    prefix_unquoted(&mut shared, &[d.outcome.name()]);
                    each_reason(w, row, d, &mut scratch, |rule, message, remedy| {
                        buf.extend_from_slice(&shared);
                        match remedy {
                            Remedy::Plain(text) => {
                                let made = tally.add_plain(w.policy, rule, text);
                                buf.extend_from_slice(&made.head);
                                // A message that may name a missing field is checked.
                                let message = neutralise(message);
                                if made.message_unquoted && tables_plain && !d.unknown {
                                    cell_unquoted(buf, &message);
                                } else {
                                    csv_cell(buf, &message);
                                }
                                buf.extend_from_slice(&made.tail);
                            }
                            Remedy::Rendered(text) => {
                                csv_row(buf, &[rule, &neutralise(message), &neutralise(text)]);
                                tally.add_rendered(rule, text);
                            }
                        }
                        Ok(())
                    })?;
                }
            }
            Ok(tally)
        })?;
        for tally in tallies {
            tally.add_to(&mut remedies);
        }
        Ok(())
    })?;
    Ok((staged, remedies))
}

/// The hand-off for bulk issuance: one row per code this run issued.
pub fn write_issued(
    out: &Path,
    requests: &Table,
    issued: &Issued,
    issued_at: &str,
) -> Result<Staged> {
    stage_large(&out.join("issued.csv"), Durable::Synced, |w| {
        let mut buf = Vec::with_capacity(SPILL);
        csv_row(
            &mut buf,
            &[
                "request_id",
                "instance_id",
                "account_id",
                "code",
                "issued_at",
            ],
        );
        for (row, code) in issued.iter() {
            push_ids(&mut buf, requests, row);
            csv_row(&mut buf, &[&neutralise(code), issued_at]);
            spill(w, &mut buf)?;
        }
        w.write_all(&buf)
    })
}

/// `waived.csv`: a row per check a waiver let a request pass, in request order, with the
/// request's final outcome and the waiver's ticket and end, so that an auditor finds the
/// requests behind each waiver's count (`decisions.csv` shows a waived request as any other).
pub fn write_waived(
    out: &Path,
    w: &World<'_>,
    decisions: &[Decision],
    exemptions: &[Exemption],
) -> Result<Staged> {
    stage(&out.join(crate::run::WAIVED), Durable::Renamed, |f| {
        let mut buf = Vec::new();
        csv_row(
            &mut buf,
            &[
                "request_id",
                "instance_id",
                "account_id",
                "outcome",
                "rule_id",
                "ticket",
                "until",
            ],
        );
        for e in exemptions {
            let row = e.row as usize;
            let waiver = &w.waivers.list[e.waiver as usize];
            push_ids(&mut buf, w.requests, row);
            csv_row(
                &mut buf,
                &[
                    decisions[row].outcome.name(),
                    &w.policy.rules[usize::from(e.rule)].id,
                    &neutralise(&waiver.ticket),
                    &crate::time::format(waiver.until),
                ],
            );
            spill(f, &mut buf)?;
        }
        f.write_all(&buf)
    })
}

pub fn write_input_errors(out: &Path, problems: &[&Problem]) -> Result<Staged> {
    stage(&out.join("input-errors.csv"), Durable::Renamed, |w| {
        let mut buf = Vec::new();
        csv_row(&mut buf, &["file", "line", "column", "message"]);
        for p in problems {
            csv_row(
                &mut buf,
                &[
                    &neutralise(&p.file),
                    &p.line.to_string(),
                    &neutralise(&p.column),
                    &neutralise(&p.message),
                ],
            );
            spill(w, &mut buf)?;
        }
        w.write_all(&buf)
    })
}
