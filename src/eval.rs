//! Evaluation: where the inputs and the policy meet. Each request row gets exactly one decision
//! by the steps of SPEC §3, in parallel on rayon; the quota is then shared out across the batch
//! in (`requested_at`, `request_id`) order, so neither thread timing nor input order changes who
//! wins. Reasons are data: every refusal carries its rule id, message and remedy.

mod block;
mod cond;
mod explain;
mod quota;
mod verdict;

pub use explain::{Reason, Remedy, Scratch, each_reason, reasons, rule_ids};
use verdict::Verdict;
pub use verdict::Verdicts;

use crate::input::{InstanceIndex, Ledger, Repeats, Table};
use crate::policy::waivers::Waivers;
use crate::policy::{Cond, Field, Kind, Piece, Policy, Refusal, Rule, Template};
use crate::progress::Progress;
use crate::schema::{Value, col};
use crate::time::{self, Time};
use cond::{Lookup, Truth};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The reasons the engine itself gives, before any policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    MalformedRequest,
    DuplicateRequest,
    RequestIdConflict,
    MalformedInstance,
    AmbiguousInstance,
}

impl Builtin {
    /// Every built-in reason, in the order of the declaration.
    pub const ALL: [Builtin; 5] = [
        Builtin::MalformedRequest,
        Builtin::DuplicateRequest,
        Builtin::RequestIdConflict,
        Builtin::MalformedInstance,
        Builtin::AmbiguousInstance,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Builtin::MalformedRequest => "malformed-request",
            Builtin::DuplicateRequest => "duplicate-request",
            Builtin::RequestIdConflict => "request-id-conflict",
            Builtin::MalformedInstance => "malformed-instance",
            Builtin::AmbiguousInstance => "ambiguous-instance",
        }
    }
}

/// Why a request got its outcome, compactly: messages are rendered only when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Nothing,
    /// The policy rules that refused: bit `i` is `policy.rules[i]`.
    Rules(u64),
    /// A quota rule, and how many codes the instance held when it refused.
    Quota {
        rule: u16,
        used: u32,
    },
    Builtin(Builtin),
}

/// Which `Why` a decision holds: its `payload` is then nothing, the rules' mask, a quota's
/// (rule, used) or a built-in's place in `Builtin::ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhyKind {
    Nothing,
    Rules,
    Quota,
    Builtin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The `Why`, unpacked by `why` (a `Why` takes 16 bytes; this and `kind` take 9).
    payload: u64,
    /// The inventory row the request was judged on (`NO_ROW` when there was none).
    pub instance: u32,
    pub outcome: Outcome,
    kind: WhyKind,
    /// Whether a refusing rule's condition may have been unknown (a value it reads was
    /// missing), so that its message must say which; when false, none was.
    pub unknown: bool,
}

// A million decisions take 16 MB (the README says so).
const _: () = assert!(std::mem::size_of::<Decision>() == 16);

/// `Decision::instance` when the request was not judged on an inventory row.
pub const NO_ROW: u32 = u32::MAX;

impl Decision {
    fn new(outcome: Outcome, why: Why) -> Self {
        let (kind, payload) = match why {
            Why::Nothing => (WhyKind::Nothing, 0),
            Why::Rules(mask) => (WhyKind::Rules, mask),
            Why::Quota { rule, used } => (WhyKind::Quota, u64::from(rule) << 32 | u64::from(used)),
            // Its place in the declaration, which `Builtin::ALL` follows.
            Why::Builtin(b) => (WhyKind::Builtin, b as u64),
        };
        Decision {
            payload,
            instance: NO_ROW,
            outcome,
            kind,
            unknown: false,
        }
    }

    /// Why the request got its outcome.
    pub fn why(&self) -> Why {
        match self.kind {
            WhyKind::Nothing => Why::Nothing,
            WhyKind::Rules => Why::Rules(self.payload),
            WhyKind::Quota => Why::Quota {
                rule: (self.payload >> 32) as u16,
                used: self.payload as u32,
            },
            WhyKind::Builtin => Why::Builtin(Builtin::ALL[self.payload as usize]),
        }
    }

    fn on(mut self, instance: Option<usize>) -> Self {
        self.instance = instance.map_or(NO_ROW, |i| i as u32);
        self
    }

    /// The inventory row the request was judged on.
    pub fn instance_row(&self) -> Option<usize> {
        (self.instance != NO_ROW).then_some(self.instance as usize)
    }

    fn invalid(b: Builtin) -> Self {
        Decision::new(Outcome::Invalid, Why::Builtin(b))
    }
}

/// Everything a decision reads.
pub struct World<'a> {
    pub policy: &'a Policy,
    pub instances: &'a Table,
    pub requests: &'a Table,
    pub ledger: &'a Ledger,
    pub by_instance: &'a InstanceIndex<'a>,
    /// The request rows whose id an earlier row carried.
    pub repeats: &'a Repeats,
    pub waivers: &'a Waivers,
    pub as_of: Time,
    /// `as_of` in the output form, written once for every message that names it.
    pub as_of_text: &'a str,
}

/// What evaluation gives: a decision per request row, how many requests each waiver exempted
/// from its check, and each exemption (for `waived.csv`).
pub struct Evaluation {
    pub decisions: Vec<Decision>,
    pub waived: Vec<u64>,
    /// Every check a waiver in force let a request pass, by request row, then rule, then waiver.
    pub exemptions: Vec<Exemption>,
}

/// One waiver letting one request pass one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Exemption {
    pub row: u32,
    /// The place of the check in `policy.rules`.
    pub rule: u16,
    /// The place of the waiver in the waivers file.
    pub waiver: u32,
}

/// The waivers' tallies while requests are decided side by side.
struct Waiving {
    counts: Vec<AtomicU64>,
    /// Rare (a waiver exempts few requests), so one lock for all.
    exemptions: std::sync::Mutex<Vec<Exemption>>,
}

/// How many requests one task decides at a time.
const CHUNK: usize = crate::input::BATCH;

/// Decides every request row, on `jobs` threads (0: one per core). Eligible requests come back
/// `Eligible`; issuing codes is the next stage's work.
pub fn decide(world: &World<'_>, jobs: usize, progress: &Progress) -> Result<Evaluation, String> {
    let pool = pool(jobs)?;
    let verdicts = pool.install(|| verdicts(world.policy, world.instances, world.as_of));
    decide_with(world, &verdicts, &pool, progress)
}

/// The evaluation's threads: `jobs` of them (0: one per core).
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| format!("cannot start {jobs} evaluation threads: {e}"))
}

/// `decide`, with the per-instance rules' verdicts already made (`verdicts`), on `pool`.
pub fn decide_with(
    world: &World<'_>,
    verdicts: &Verdicts,
    pool: &rayon::ThreadPool,
    progress: &Progress,
) -> Result<Evaluation, String> {
    let waived = Waiving {
        counts: world
            .waivers
            .list
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect(),
        exemptions: Default::default(),
    };
    let mut decisions: Vec<Decision> = pool.install(|| {
        // Filled on every thread rather than by `vec!` on one: the first write to each page of
        // new memory is a page fault (on a virtual machine, the host's too), a quarter of a
        // gigabyte at 10M requests.
        let mut decisions = Vec::new();
        let blank = Decision::new(Outcome::Invalid, Why::Nothing);
        decisions.par_extend((0..world.requests.len()).into_par_iter().map(|_| blank));
        decisions
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let first = c * CHUNK;
                // The chunk's inventory keys first, looked up as one batch, whose cache misses
                // overlap where one decision at a time would wait for each; the decisions then
                // find those inventory rows in cache.
                let mut ids = [""; CHUNK];
                for (i, id) in ids.iter_mut().enumerate().take(chunk.len()) {
                    *id = world.requests.text(col::REQUEST_INSTANCE, first + i);
                }
                let mut keys = [None; CHUNK];
                world.by_instance.keys(&ids[..chunk.len()], &mut keys);
                // Then each found row's verdict, prefetched together for the same reason.
                for k in keys[..chunk.len()].iter().flatten() {
                    verdicts.prefetch(*k as usize);
                }
                for (i, d) in chunk.iter_mut().enumerate() {
                    *d = decide_one(world, verdicts, &waived, first + i, keys[i]);
                }
                progress.add(chunk.len() as u64);
            });
        decisions
    });
    pool.install(|| quota::share(world, &mut decisions))?;
    Ok(Evaluation {
        decisions,
        waived: waived
            .counts
            .into_iter()
            .map(AtomicU64::into_inner)
            .collect(),
        exemptions: {
            let mut all = waived
                .exemptions
                .into_inner()
                .unwrap_or_else(|e| e.into_inner());
            all.sort_unstable();
            all
        },
    })
}

/// For each inventory row, the verdict of the rules that read only the instance: decided once
/// per row, in file order, instead of once per request. They read neither the requests nor the
/// ledger, so a run decides them while the ledger is read (on the current rayon pool).
pub fn verdicts(policy: &Policy, instances: &Table, as_of: Time) -> Verdicts {
    let (places, requires): (Vec<usize>, Vec<Cond>) = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.per_instance)
        .map(|(i, r)| (i, cond::with_as_of(&r.require, as_of)))
        .unzip();
    Verdicts::decide(&places, instances.len(), |first, out| {
        let block = block::Block {
            instances,
            as_of,
            first,
            len: out.len(),
        };
        out.fill((0, false));
        for (j, require) in requires.iter().enumerate() {
            let m = block::eval(require, &block);
            // Only a true condition passes; an unknown one refuses, and says so.
            for (i, (refused, unknown)) in out.iter_mut().enumerate() {
                *refused |= u64::from(m.truth >> i & 1 == 0) << j;
                *unknown |= m.unknown >> i & 1 == 1;
            }
        }
    })
}

/// Whether a condition's truth lets the request pass: only `True` does; an unknown one refuses
/// and sets `unknown`.
fn passes(truth: Truth, unknown: &mut bool) -> bool {
    if let Truth::Unknown(_) = truth {
        *unknown = true;
    }
    truth == Truth::True
}

/// SPEC §3 for one row: the first step that applies decides.
fn decide_one(
    w: &World<'_>,
    verdicts: &Verdicts,
    waived: &Waiving,
    row: usize,
    key: Option<u32>,
) -> Decision {
    let req = w.requests;
    if req.fault(row).is_some() {
        return Decision::invalid(Builtin::MalformedRequest);
    }
    if w.repeats.of(row).is_some() {
        return Decision::invalid(Builtin::DuplicateRequest);
    }
    if let Some(hit) = w.ledger.hits.get(&(row as u32)) {
        // The instance as the ledger's limit reads it: a row written `I-1` holds a code of
        // `i-1` (`input::loose`), so it answers a request for `i-1` too.
        let instance = req.text(col::REQUEST_INSTANCE, row);
        let same = (hit.instance_id == instance
            || crate::input::loose(&hit.instance_id) == crate::input::loose(instance))
            && hit.account_id == req.text(col::REQUEST_ACCOUNT, row);
        return if same {
            Decision::new(Outcome::AlreadyIssued, Why::Nothing)
        } else {
            Decision::invalid(Builtin::RequestIdConflict)
        };
    }
    let mut decided = 0;
    if let Some(key) = key {
        decided = match confidential_gates(w, row, key) {
            Ok(decided) => decided,
            Err(d) => return d,
        };
        // The instance's rows: those of this very id, and those of its other spellings (which
        // hold its codes, and may name another owner), the rare time the inventory has any.
        let spelt = w.by_instance.spelt_otherwise(key);
        let malformed = match spelt {
            false => w
                .by_instance
                .rows(key)
                .any(|r| w.instances.fault(r).is_some()),
            true => (w.by_instance.loose_rows(w.instances, key).into_iter())
                .any(|r| w.instances.fault(r).is_some()),
        };
        if malformed {
            return Decision::invalid(Builtin::MalformedInstance);
        }
        if spelt || w.by_instance.row_count(key) > 1 {
            return Decision::invalid(Builtin::AmbiguousInstance);
        }
    }
    let instance = key.and_then(|k| w.by_instance.rows(k).next());
    let known = instance.map(|i| verdicts.of(i));
    apply_policy(w, row, instance, known, decided, waived).on(instance)
}

/// Step 4: a confidential gate that refuses on every row of the instance decides alone, before
/// anything about those rows (damage, duplicates) can leak. Otherwise gives the confidential
/// rules found true on the instance's first row (bit `i` for `policy.rules[i]`), which step 6
/// then need not decide again.
fn confidential_gates(w: &World<'_>, row: usize, key: u32) -> Result<u64, Decision> {
    let mut first_true = 0;
    for (i, rule) in w.policy.rules.iter().enumerate() {
        if !rule.confidential {
            continue;
        }
        let mut refused_everywhere = true;
        for (n, inst) in w.by_instance.rows(key).enumerate() {
            let truth = cond::eval(&rule.require, &Env::new(w, row, Some(inst)));
            if n == 0 && truth == Truth::True {
                first_true |= 1 << i;
            }
            if truth != Truth::False {
                refused_everywhere = false;
                break;
            }
        }
        if refused_everywhere {
            // The decision records the instance's first row, for the report's per-region
            // counts; the words of a confidential rule are filled without it all the same.
            let first = w.by_instance.rows(key).next();
            return Err(Decision::new(outcome_of(rule), Why::Rules(1 << i)).on(first));
        }
    }
    Ok(first_true)
}

/// Step 6: gates in order (the first refusal ends it), then every failing check. `known` holds
/// the per-instance rules' verdict for the instance's row, when it has one; `decided`, the
/// rules already found true on that row (bit `i` for `policy.rules[i]`).
fn apply_policy(
    w: &World<'_>,
    row: usize,
    instance: Option<usize>,
    known: Option<Verdict>,
    decided: u64,
    waived: &Waiving,
) -> Decision {
    let env = Env::new(w, row, instance);
    let mut failed = 0u64;
    let mut unknown = known.is_some_and(|v| v.unknown);
    for (i, rule) in w.policy.rules.iter().enumerate() {
        let passes = match known {
            _ if decided & (1 << i) != 0 => true,
            Some(v) if rule.per_instance => v.refused & (1 << i) == 0,
            _ => passes(cond::eval(&rule.require, &env), &mut unknown),
        };
        if passes {
            continue;
        }
        if rule.kind == Kind::Gate {
            return Decision {
                unknown,
                ..Decision::new(outcome_of(rule), Why::Rules(failed | 1 << i))
            };
        }
        if w.waivers.waived_rules & (1 << i) != 0 && waive(w, row, i, waived) {
            continue;
        }
        failed |= 1 << i;
    }
    if failed == 0 {
        Decision::new(Outcome::Eligible, Why::Nothing)
    } else {
        Decision {
            unknown,
            ..Decision::new(Outcome::Denied, Why::Rules(failed))
        }
    }
}

/// Whether a waiver in force exempts request `row` from check `rule`; counts every waiver in
/// force that does (each would exempt it alone: none is `unused` while it matches).
fn waive(w: &World<'_>, row: usize, rule: usize, waived: &Waiving) -> bool {
    let req = w.requests;
    let instance = req.text(col::REQUEST_INSTANCE, row);
    let account = req.text(col::REQUEST_ACCOUNT, row);
    let mut any = false;
    for i in w.waivers.matching(rule, instance, account) {
        if w.as_of < w.waivers.list[i].until {
            waived.counts[i].fetch_add(1, Ordering::Relaxed);
            waived
                .exemptions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Exemption {
                    row: row as u32,
                    rule: rule as u16,
                    waiver: i as u32,
                });
            any = true;
        }
    }
    any
}

fn outcome_of(rule: &Rule) -> Outcome {
    match rule.refusal {
        Refusal::Denied => Outcome::Denied,
        Refusal::NotRequired => Outcome::NotRequired,
    }
}

/// Fills a template from the row into `out` (cleared first).
fn render(t: &Template, env: &Env, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    for piece in &t.pieces {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Field(f) => match env.get(*f) {
                Some(Value::Str(s)) => out.push_str(s),
                Some(Value::Int(n)) => {
                    let _ = write!(out, "{n}");
                }
                Some(Value::Time(_)) if *f == Field::AsOf && !env.as_of_text.is_empty() => {
                    out.push_str(env.as_of_text)
                }
                Some(Value::Time(t)) => time::write(t, out),
                Some(Value::Missing) | None => out.push_str("(none)"),
            },
        }
    }
}

/// The values one request sees: its row, at most one inventory row, the run's as-of time and,
/// for quota messages, the counts.
struct Env<'a> {
    instances: &'a Table,
    /// The requests and the request's row; `None` while deciding per-instance rules, which
    /// read no request.
    request: Option<(&'a Table, usize)>,
    instance: Option<usize>,
    as_of: Time,
    /// `as_of` as text, or empty where nothing is rendered (the per-instance verdicts).
    as_of_text: &'a str,
    quota: (i64, i64),
}

impl<'a> Env<'a> {
    fn new(w: &World<'a>, request: usize, instance: Option<usize>) -> Self {
        Env {
            instances: w.instances,
            request: Some((w.requests, request)),
            instance,
            as_of: w.as_of,
            as_of_text: w.as_of_text,
            quota: (0, 0),
        }
    }

    fn for_instance(instances: &'a Table, as_of: Time, instance: usize) -> Self {
        Env {
            instances,
            request: None,
            instance: Some(instance),
            as_of,
            as_of_text: "",
            quota: (0, 0),
        }
    }
}

impl Lookup for Env<'_> {
    fn get(&self, field: Field) -> Option<Value<'_>> {
        match field {
            Field::Instance(c) => self.instance.map(|r| self.instances.value(c, r)),
            Field::Request(c) => self.request.map(|(t, r)| t.value(c, r)),
            Field::AsOf => Some(Value::Time(self.as_of)),
            Field::QuotaUsed => Some(Value::Int(self.quota.0)),
            Field::QuotaMax => Some(Value::Int(self.quota.1)),
        }
    }

    fn micros(&self, field: Field) -> Option<Option<i64>> {
        match field {
            Field::Instance(c) => self.instances.micros(c, self.instance?),
            Field::Request(c) => {
                let (t, r) = self.request?;
                t.micros(c, r)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of reason reads back from a decision as it went in, at the ends of its range.
    #[test]
    fn a_decision_gives_back_its_why() {
        let whys = [
            Why::Nothing,
            Why::Rules(0),
            Why::Rules(1),
            Why::Rules(u64::MAX),
        ]
        .into_iter()
        .chain(
            [
                (0, 0),
                (0, u32::MAX),
                (u16::MAX, 0),
                (u16::MAX, u32::MAX),
                (3, 5),
            ]
            .map(|(rule, used)| Why::Quota { rule, used }),
        )
        .chain(Builtin::ALL.map(Why::Builtin));
        for why in whys {
            for outcome in Outcome::ALL {
                let d = Decision::new(outcome, why).on(Some(7));
                assert_eq!(
                    (d.why(), d.outcome, d.instance_row()),
                    (why, outcome, Some(7))
                );
            }
        }
    }
}
