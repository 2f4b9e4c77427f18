//! Evaluation: where the inputs and the policy meet. Each request row gets exactly one decision
//! by the steps of SPEC §3, in parallel on rayon; the quota is then shared out across the batch
//! in (`requested_at`, `request_id`) order, so neither thread timing nor input order changes who
//! wins. Reasons are data: every refusal carries its rule id, message and remedy.

mod cond;
mod quota;

use crate::input::{InstanceIndex, Ledger, RequestIndex, Table};
use crate::policy::{Field, Kind, Piece, Policy, Refusal, Rule, Template};
use crate::progress::Progress;
use crate::schema::{Value, col};
use crate::time::{self, Time};
use cond::{Lookup, Truth};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Invalid,
    AlreadyIssued,
    NotRequired,
    Denied,
    Issued,
    Eligible,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Invalid,
        Outcome::AlreadyIssued,
        Outcome::NotRequired,
        Outcome::Denied,
        Outcome::Issued,
        Outcome::Eligible,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Invalid => "invalid",
            Outcome::AlreadyIssued => "already_issued",
            Outcome::NotRequired => "not_required",
            Outcome::Denied => "denied",
            Outcome::Issued => "issued",
            Outcome::Eligible => "eligible",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason<'p> {
    pub rule: &'p str,
    pub message: String,
    pub remedy: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    pub outcome: Outcome,
    /// The ledger's code for `already_issued`; the new code for `issued`.
    pub code: Option<String>,
    pub reasons: Vec<Reason<'p>>,
}

impl<'p> Decision<'p> {
    fn refused(outcome: Outcome, reasons: Vec<Reason<'p>>) -> Self {
        Decision {
            outcome,
            code: None,
            reasons,
        }
    }

    fn invalid(rule: &'static str, message: String, remedy: &str) -> Self {
        let reason = Reason {
            rule,
            message,
            remedy: remedy.to_string(),
        };
        Decision::refused(Outcome::Invalid, vec![reason])
    }
}

/// Everything a decision reads.
pub struct World<'a> {
    pub policy: &'a Policy,
    pub instances: &'a Table,
    pub requests: &'a Table,
    pub ledger: &'a Ledger,
    pub by_instance: &'a InstanceIndex<'a>,
    pub by_request: &'a RequestIndex<'a>,
    pub as_of: Time,
}

/// Decides every request row, on `jobs` threads (0: one per core). Eligible requests come back
/// `Eligible`; issuing codes is the next stage's work.
pub fn decide<'p>(world: &World<'p>, jobs: usize, progress: &Progress) -> Vec<Decision<'p>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .expect("a thread pool");
    let mut decisions: Vec<Decision<'p>> = pool.install(|| {
        (0..world.requests.len())
            .into_par_iter()
            .with_min_len(1024)
            .map(|row| {
                let d = decide_one(world, row);
                progress.tick();
                d
            })
            .collect()
    });
    quota::share(world, &mut decisions);
    decisions
}

/// SPEC §3 for one row: the first step that applies decides.
fn decide_one<'p>(w: &World<'p>, row: usize) -> Decision<'p> {
    let req = w.requests;
    if let Some(p) = req.fault(row) {
        let remedy = "Correct the request row and submit it again.";
        return Decision::invalid("malformed-request", p.describe(), remedy);
    }
    let id = req.text(col::REQUEST_ID, row);
    let first = w.by_request.first_row(id).map(|r| r as usize);
    if let Some(first) = first.filter(|f| *f != row) {
        let message = format!(
            "{}:{}: column `request_id`: `{id}` already appeared on line {}",
            req.info.path,
            req.line(row),
            req.line(first)
        );
        let remedy = "Give every request its own request id.";
        return Decision::invalid("duplicate-request", message, remedy);
    }
    if let Some(hit) = w.ledger.hits.get(&(row as u32)) {
        return replay(w, row, hit);
    }
    let key = w.by_instance.key(req.text(col::REQUEST_INSTANCE, row));
    if let Some(key) = key {
        if let Some(d) = confidential_gates(w, row, key) {
            return d;
        }
        if let Some(d) = damaged_inventory(w, key) {
            return d;
        }
    }
    let instance_row = key.map(|k| w.by_instance.rows(k).next().expect("a key has a row"));
    apply_policy(w, row, instance_row)
}

/// A request id the ledger already holds: the same request again, or a conflict.
fn replay<'p>(w: &World<'p>, row: usize, hit: &crate::input::LedgerHit) -> Decision<'p> {
    let req = w.requests;
    let same = hit.instance_id == req.text(col::REQUEST_INSTANCE, row)
        && hit.account_id == req.text(col::REQUEST_ACCOUNT, row);
    if same {
        return Decision {
            outcome: Outcome::AlreadyIssued,
            code: Some(hit.code.clone()),
            reasons: Vec::new(),
        };
    }
    let message = format!(
        "{}:{}: column `request_id`: this request id is already recorded in the ledger for another request",
        req.info.path,
        req.line(row)
    );
    let remedy = "Use a new request id for a new request.";
    Decision::invalid("request-id-conflict", message, remedy)
}

/// Step 4: a confidential gate that refuses on every row of the instance decides alone, before
/// anything about those rows (damage, duplicates) can leak.
fn confidential_gates<'p>(w: &World<'p>, row: usize, key: u32) -> Option<Decision<'p>> {
    w.policy
        .rules
        .iter()
        .filter(|r| r.confidential)
        .find(|rule| {
            w.by_instance.rows(key).all(|inst| {
                let env = Env::new(w, row, Some(inst));
                cond::eval(&rule.require, &env) == Truth::False
            })
        })
        .map(|rule| {
            let env = Env::new(w, row, None);
            let reason = refusal(w, rule, &env, Truth::False);
            Decision::refused(outcome_of(rule), vec![reason])
        })
}

/// Step 5: a damaged or doubled inventory row never becomes a false denial.
fn damaged_inventory<'p>(w: &World<'p>, key: u32) -> Option<Decision<'p>> {
    let inst = w.instances;
    if let Some(p) = w.by_instance.rows(key).find_map(|r| inst.fault(r)) {
        let remedy = "Correct the inventory export and run again.";
        return Some(Decision::invalid(
            "malformed-instance",
            p.describe(),
            remedy,
        ));
    }
    if w.by_instance.row_count(key) > 1 {
        let lines: Vec<String> = w
            .by_instance
            .rows(key)
            .map(|r| inst.line(r).to_string())
            .collect();
        let first = w.by_instance.rows(key).next().unwrap_or_default();
        let message = format!(
            "{}: lines {}: column `instance_id`: instance `{}` appears on more than one row",
            inst.info.path,
            lines.join(", "),
            inst.text(col::INSTANCE_ID, first)
        );
        let remedy = "Export the inventory again with one row per instance.";
        return Some(Decision::invalid("ambiguous-instance", message, remedy));
    }
    None
}

/// Step 6: gates in order (the first refusal ends it), then every failing check.
fn apply_policy<'p>(w: &World<'p>, row: usize, instance: Option<usize>) -> Decision<'p> {
    let env = Env::new(w, row, instance);
    let mut failed = Vec::new();
    for rule in &w.policy.rules {
        let t = cond::eval(&rule.require, &env);
        if t == Truth::True {
            continue;
        }
        // A confidential rule's words are filled without the instance: they reveal nothing.
        let blank = Env::new(w, row, None);
        failed.push(refusal(
            w,
            rule,
            if rule.confidential { &blank } else { &env },
            t,
        ));
        if rule.kind == Kind::Gate {
            return Decision::refused(outcome_of(rule), failed);
        }
    }
    if failed.is_empty() {
        Decision::refused(Outcome::Eligible, failed)
    } else {
        Decision::refused(Outcome::Denied, failed)
    }
}

fn outcome_of(rule: &Rule) -> Outcome {
    match rule.refusal {
        Refusal::Denied => Outcome::Denied,
        Refusal::NotRequired => Outcome::NotRequired,
    }
}

/// The reason a rule gives; when its condition was unknown, the message names the missing value.
fn refusal<'p>(w: &World<'p>, rule: &'p Rule, env: &Env, t: Truth) -> Reason<'p> {
    let mut message = render(&rule.message, env);
    if let Truth::Unknown(f) = t {
        message.push_str(&format!(
            " (cannot be checked: `{}` has no value)",
            w.policy.field_name(f)
        ));
    }
    Reason {
        rule: &rule.id,
        message,
        remedy: render(&rule.remedy, env),
    }
}

/// Fills a template from the row.
fn render(t: &Template, env: &Env) -> String {
    let mut out = String::new();
    for piece in &t.pieces {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Field(f) => match env.get(*f) {
                Some(Value::Str(s)) => out.push_str(s),
                Some(Value::Int(n)) => out.push_str(&n.to_string()),
                Some(Value::Time(t)) => out.push_str(&time::format(t)),
                Some(Value::Missing) | None => out.push_str("(none)"),
            },
        }
    }
    out
}

/// The values one request sees: its row, at most one inventory row, the run's as-of time and,
/// for quota messages, the counts.
struct Env<'w, 'a> {
    w: &'w World<'a>,
    request: usize,
    instance: Option<usize>,
    quota: (i64, i64),
}

impl<'w, 'a> Env<'w, 'a> {
    fn new(w: &'w World<'a>, request: usize, instance: Option<usize>) -> Self {
        Env {
            w,
            request,
            instance,
            quota: (0, 0),
        }
    }
}

impl Lookup for Env<'_, '_> {
    fn get(&self, field: Field) -> Option<Value<'_>> {
        match field {
            Field::Instance(c) => self.instance.map(|r| self.w.instances.value(c, r)),
            Field::Request(c) => Some(self.w.requests.value(c, self.request)),
            Field::AsOf => Some(Value::Time(self.w.as_of)),
            Field::QuotaUsed => Some(Value::Int(self.quota.0)),
            Field::QuotaMax => Some(Value::Int(self.quota.1)),
        }
    }
}
