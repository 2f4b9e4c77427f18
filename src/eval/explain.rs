//! Turning a compact decision back into words: each reason's rule id, message and remedy,
//! rendered from the row only when a report is written, so a million decisions hold no text.

use super::{Builtin, Decision, Env, Why, World, cond, instance_row, render};
use crate::schema::col;
use std::borrow::Cow;

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
    let (mask, single): (u64, Option<&'p str>) = match d.why {
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
    match d.why {
        Why::Nothing => Vec::new(),
        Why::Rules(mask) => (0..w.policy.rules.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| rule_reason(w, row, i))
            .collect(),
        Why::Quota { rule, used } => {
            let q = &w.policy.quotas[rule as usize];
            let mut env = Env::new(w, row, instance_row(w, row));
            env.quota = (i64::from(used), i64::from(q.max));
            vec![Reason {
                rule: &q.id,
                message: render(&q.message, &env),
                remedy: Cow::Owned(render(&q.remedy, &env)),
            }]
        }
        Why::Builtin(b) => vec![Reason {
            rule: b.id(),
            message: builtin_message(w, row, b),
            remedy: Cow::Borrowed(builtin_remedy(b)),
        }],
    }
}

/// A policy rule's reason. A confidential rule's words are filled without the instance, so
/// they reveal nothing; any other rule whose condition was unknown names the missing value.
fn rule_reason<'p>(w: &World<'p>, row: usize, i: usize) -> Reason<'p> {
    let rule = &w.policy.rules[i];
    let instance = if rule.confidential {
        None
    } else {
        instance_row(w, row)
    };
    let env = Env::new(w, row, instance);
    let mut message = render(&rule.message, &env);
    if !rule.confidential
        && let cond::Truth::Unknown(f) = cond::eval(&rule.require, &env)
    {
        message.push_str(&format!(
            " (cannot be checked: `{}` has no value)",
            w.policy.field_name(f)
        ));
    }
    Reason {
        rule: &rule.id,
        message,
        remedy: Cow::Owned(render(&rule.remedy, &env)),
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
    let rows = || {
        let key = w.by_instance.key(req.text(col::REQUEST_INSTANCE, row));
        key.into_iter().flat_map(|k| w.by_instance.rows(k))
    };
    match b {
        Builtin::MalformedRequest => req.fault(row).map(|p| p.describe()).unwrap_or_default(),
        Builtin::DuplicateRequest => {
            let first = w.by_request.first_row(id).unwrap_or_default() as usize;
            format!(
                "{here}: column `request_id`: `{id}` already appeared on line {}",
                req.line(first)
            )
        }
        Builtin::RequestIdConflict => format!(
            "{here}: column `request_id`: this request id is already recorded in the ledger for another request"
        ),
        Builtin::MalformedInstance => rows()
            .find_map(|r| w.instances.fault(r))
            .map(|p| p.describe())
            .unwrap_or_default(),
        Builtin::AmbiguousInstance => {
            let inst = w.instances;
            let lines: Vec<String> = rows().map(|r| inst.line(r).to_string()).collect();
            format!(
                "{}: lines {}: column `instance_id`: instance `{}` appears on more than one row",
                inst.info.path,
                lines.join(", "),
                req.text(col::REQUEST_INSTANCE, row)
            )
        }
    }
}
