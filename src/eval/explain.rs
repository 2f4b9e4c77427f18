//! Turning a compact decision back into words: each reason's rule id, message and remedy,
//! rendered from the row only when a report is written, so a million decisions hold no text.

use super::{Builtin, Decision, Env, Why, World, cond, render};
use crate::policy::{Rule, Template};
use crate::schema::col;
use std::borrow::Cow;
use std::fmt::Write;

/// One reason, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason<'p> {
    pub rule: &'p str,
    pub message: String,
    pub remedy: Cow<'p, str>,
}

/// The rule ids of a decision's reasons, in order, without rendering anything.
pub fn rule_ids<'p>(w: &World<'p>, d: &Decision) -> impl Iterator<Item = &'p str> {
    let policy = w.policy;
    let (mask, single): (u64, Option<&'p str>) = match d.why() {
        Why::Nothing => (0, None),
        Why::Rules(mask) => (mask, None),
        Why::Quota { rule, .. } => (0, Some(policy.quotas[rule as usize].id.as_str())),
        Why::Builtin(b) => (0, Some(b.id())),
    };
    policy
        .rules
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| r.id.as_str())
        .chain(single)
}

/// Every reason of the decision of request `row`, in words.
pub fn reasons<'p>(w: &World<'p>, row: usize, d: &Decision) -> Vec<Reason<'p>> {
    let mut out = Vec::new();
    each_reason(
        w,
        row,
        d,
        &mut Scratch::default(),
        |rule, message, remedy| {
            out.push(Reason {
                rule,
                message: message.to_string(),
                remedy: match remedy {
                    Remedy::Plain(text) => Cow::Borrowed(text),
                    Remedy::Rendered(text) => Cow::Owned(text.to_string()),
                },
            });
            Ok(())
        },
    )
    .expect("collecting cannot fail");
    out
}

/// A reason's remedy: the policy's own text (the same `&'p str` every time), or one rendered
/// from the row.
#[derive(Debug, Clone, Copy)]
pub enum Remedy<'p, 'r> {
    Plain(&'p str),
    Rendered(&'r str),
}

impl<'p, 'r> Remedy<'p, 'r> {
    pub fn text(self) -> &'r str
    where
        'p: 'r,
    {
        match self {
            Remedy::Plain(text) => text,
            Remedy::Rendered(text) => text,
        }
    }
}

/// Buffers the words of reasons are rendered into, reused from one decision to the next.
#[derive(Default)]
pub struct Scratch {
    message: String,
    remedy: String,
}

/// Calls `f(rule id, message, remedy)` for every reason of the decision of request `row`, in
/// order, rendering into `scratch`.
pub fn each_reason<'p>(
    w: &World<'p>,
    row: usize,
    d: &Decision,
    scratch: &mut Scratch,
    mut f: impl FnMut(&'p str, &str, Remedy<'p, '_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let Scratch { message, remedy } = scratch;
    match d.why() {
        Why::Nothing => Ok(()),
        Why::Rules(mask) => {
            for i in (0..w.policy.rules.len()).filter(|i| mask & (1 << i) != 0) {
                let rule = &w.policy.rules[i];
                rule_words(w, row, d, rule, message, remedy);
                f(&rule.id, message, words(&rule.remedy, remedy))?;
            }
            Ok(())
        }
        Why::Quota { rule, used } => {
            let q = &w.policy.quotas[rule as usize];
            let mut env = Env::new(w, row, d.instance_row());
            env.quota = (i64::from(used), i64::from(q.max));
            render(&q.message, &env, message);
            if !q.remedy.is_plain() {
                render(&q.remedy, &env, remedy);
            }
            f(&q.id, message, words(&q.remedy, remedy))
        }
        Why::Builtin(b) => f(
            b.id(),
            &builtin_message(w, row, b),
            Remedy::Plain(builtin_remedy(b)),
        ),
    }
}

/// A template's words: its text when it has no placeholder, else what was rendered.
fn words<'p, 'r>(t: &'p Template, rendered: &'r str) -> Remedy<'p, 'r> {
    match t.plain_text() {
        Some(text) => Remedy::Plain(text),
        None => Remedy::Rendered(rendered),
    }
}

/// Renders a policy rule's message (and its remedy, when it has placeholders). A confidential
/// rule's words are filled without the instance, so they reveal nothing; any other rule whose
/// condition was unknown names the missing value.
fn rule_words(
    w: &World<'_>,
    row: usize,
    d: &Decision,
    rule: &Rule,
    message: &mut String,
    remedy: &mut String,
) {
    let instance = if rule.confidential {
        None
    } else {
        d.instance_row()
    };
    let env = Env::new(w, row, instance);
    render(&rule.message, &env, message);
    // Evaluated again only when the decision says a condition may have been unknown.
    if !rule.confidential
        && d.unknown
        && let cond::Truth::Unknown(f) = cond::eval(&rule.require, &env)
    {
        let _ = write!(
            message,
            " (cannot be checked: `{}` has no value)",
            w.policy.field_name(f)
        );
    }
    if !rule.remedy.is_plain() {
        render(&rule.remedy, &env, remedy);
    }
}

fn builtin_remedy(b: Builtin) -> &'static str {
    match b {
        Builtin::MalformedRequest => "Correct the request row and submit it again.",
        Builtin::DuplicateRequest => "Give every request its own request id.",
        Builtin::RequestIdConflict => "Use a new request id for a new request.",
        Builtin::MalformedInstance => "Correct the inventory export and run again.",
        Builtin::AmbiguousInstance => "Export the inventory again with one row per instance.",
    }
}

/// Built-in messages name the file, line and column at fault.
fn builtin_message(w: &World<'_>, row: usize, b: Builtin) -> String {
    let req = w.requests;
    let here = format!("{}:{}", req.info.path, req.line(row));
    let id = req.text(col::REQUEST_ID, row);
    // The instance's rows, with those of its other spellings (`InstanceIndex::loose_rows`).
    let rows = || {
        let key = w.by_instance.key(req.text(col::REQUEST_INSTANCE, row));
        key.map_or_else(Vec::new, |k| w.by_instance.loose_rows(w.instances, k))
    };
    match b {
        Builtin::MalformedRequest => req.fault(row).map(|p| p.describe()).unwrap_or_default(),
        Builtin::DuplicateRequest => {
            let first = w.repeats.of(row).unwrap_or(row);
            format!(
                "{here}: column `request_id`: `{id}` already appeared on line {}",
                req.line(first)
            )
        }
        Builtin::RequestIdConflict => format!(
            "{here}: column `request_id`: this request id is already recorded in the ledger for another request"
        ),
        Builtin::MalformedInstance => rows()
            .into_iter()
            .find_map(|r| w.instances.fault(r))
            .map(|p| p.describe())
            .unwrap_or_default(),
        Builtin::AmbiguousInstance => {
            let inst = w.instances;
            let rows = rows();
            let lines: Vec<String> = rows.iter().map(|r| inst.line(*r).to_string()).collect();
            let mut spellings: Vec<&str> = Vec::new();
            for r in &rows {
                let id = inst.text(col::INSTANCE_ID, *r);
                if !spellings.contains(&id) {
                    spellings.push(id);
                }
            }
            let spelt = match spellings.len() {
                1 => String::new(),
                _ => format!(
                    " (written {})",
                    spellings
                        .iter()
                        .map(|s| format!("`{}`", visible(s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!(
                "{}: lines {}: column `instance_id`: instance `{}` appears on more than one \
                 row{spelt}",
                inst.info.path,
                lines.join(", "),
                req.text(col::REQUEST_INSTANCE, row)
            )
        }
    }
}

/// An id as a message shows it among its other spellings: the characters a text shows as
/// nothing, and control characters, written as their code points (`i-2\u{200B}`), so that two
/// spellings never look the same.
fn visible(id: &str) -> String {
    id.chars()
        .map(|c| match crate::input::ignorable(c) || c.is_control() {
            true => format!("\\u{{{:X}}}", c as u32),
            false => c.to_string(),
        })
        .collect()
}
