//! Waivers: time-limited exemptions of one instance or one account from one named check, each
//! with a ticket and a justification. Only checks can be waived: a gate or a quota named in a
//! waiver is a load error, reported with its YAML line and column like any policy problem.
//! Loading knows the policy's rule ids; which waiver applies to which request is evaluation's
//! business.

use super::{Kind, Policy, one_line};
use crate::error::{Error, Result};
use crate::time::{self, Time};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a waivers file: a mapping with the key waivers"
)]
struct RawWaivers {
    waivers: Vec<RawWaiver>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a waiver: a mapping with ticket, check, instance or account, until and justification"
)]
struct RawWaiver {
    check: String,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    account: Option<String>,
    until: String,
    ticket: String,
    justification: String,
}

/// Whom a waiver exempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Instance(String),
    Account(String),
}

#[derive(Debug, Clone)]
pub struct Waiver {
    /// Index of the waived check in `Policy::rules`.
    pub rule: usize,
    pub check: String,
    pub subject: Subject,
    /// The waiver applies while the as-of time is before this.
    pub until: Time,
    pub ticket: String,
    pub justification: String,
}

impl Waiver {
    /// `OPS-1: three-months-left for instance i-1 until 2027-01-31T00:00:00Z`
    pub fn describe(&self) -> String {
        let (what, who) = match &self.subject {
            Subject::Instance(i) => ("instance", i),
            Subject::Account(a) => ("account", a),
        };
        format!(
            "{}: {} for {what} {who} until {}",
            self.ticket,
            self.check,
            time::format(self.until)
        )
    }
}

/// The waivers of a run, indexed for lookup by (check, instance) and (check, account).
#[derive(Debug, Default)]
pub struct Waivers {
    pub list: Vec<Waiver>,
    /// Where the waivers came from, for the summary.
    pub source: String,
    by_instance: HashMap<(usize, String), Vec<usize>>,
    by_account: HashMap<(usize, String), Vec<usize>>,
    /// Bit `i` set when some waiver names `policy.rules[i]`.
    pub waived_rules: u64,
}

impl Waivers {
    /// The waivers that name `rule` for this instance or account, whether or not in force.
    pub fn matching(
        &self,
        rule: usize,
        instance: &str,
        account: &str,
    ) -> impl Iterator<Item = usize> + '_ {
        lookup(&self.by_instance, rule, instance)
            .iter()
            .chain(lookup(&self.by_account, rule, account))
            .copied()
    }
}

fn lookup<'m>(
    map: &'m HashMap<(usize, String), Vec<usize>>,
    rule: usize,
    who: &str,
) -> &'m [usize] {
    if map.is_empty() {
        return &[];
    }
    map.get(&(rule, who.to_string()))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Loads a waivers file against the policy; every problem is listed as `file:line:column: message`.
pub fn load(path: &Path, policy: &Policy) -> Result<Waivers> {
    let shown = path.display().to_string();
    let whole = super::read_text(path, &shown, "the waivers")?;
    let text = super::yaml_text(&whole, &shown)?;
    let raw: RawWaivers = serde_yaml::from_str(text).map_err(|e| {
        let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        // A repeated key is placed at the repeat, not at the mapping that holds it.
        let ((line, col), msg) =
            super::locate::repeated_key(text, &msg).unwrap_or(((line, col), msg));
        Error::refused(format!("{shown}:{line}:{col}: {}", one_line(&msg)))
    })?;
    // Every value placed and read as written, as in a policy (see `Locations::stopped`).
    super::refuse_unread(&super::locate::Locations::of(text), &shown)?;
    let mut problems = Vec::new();
    let mut waivers = Waivers {
        source: shown.clone(),
        ..Waivers::default()
    };
    for (i, w) in raw.waivers.into_iter().enumerate() {
        match compile(w, policy) {
            Ok(w) => waivers.add(w),
            Err((key, msg)) => problems.push((format!("waivers[{i}].{key}"), msg)),
        }
    }
    if problems.is_empty() {
        return Ok(waivers);
    }
    Err(super::placed(text, &shown, &problems))
}

impl Waivers {
    fn add(&mut self, w: Waiver) {
        let i = self.list.len();
        self.waived_rules |= 1 << w.rule;
        let key = |who: &String| (w.rule, who.clone());
        match &w.subject {
            Subject::Instance(id) => self.by_instance.entry(key(id)).or_default().push(i),
            Subject::Account(id) => self.by_account.entry(key(id)).or_default().push(i),
        }
        self.list.push(w);
    }
}

fn compile(w: RawWaiver, policy: &Policy) -> std::result::Result<Waiver, (&'static str, String)> {
    let rule = policy
        .rules
        .iter()
        .position(|r| r.id == w.check)
        .ok_or_else(|| {
            let quota = policy.quotas.iter().any(|q| q.id == w.check);
            let msg = if quota {
                format!("`{}` is a quota: quotas cannot be waived", w.check)
            } else {
                format!("unknown check `{}`", w.check)
            };
            ("check", msg)
        })?;
    if policy.rules[rule].kind == Kind::Gate {
        return Err((
            "check",
            format!("`{}` is a gate: gates cannot be waived", w.check),
        ));
    }
    let subject = match (w.instance, w.account) {
        (Some(i), None) if !i.is_empty() => Subject::Instance(i),
        (None, Some(a)) if !a.is_empty() => Subject::Account(a),
        _ => {
            return Err((
                "check",
                "a waiver names exactly one of `instance` or `account`".to_string(),
            ));
        }
    };
    // To the microsecond, as every input time is kept (and written).
    let until = time::whole_micros(time::parse(&w.until).map_err(|e| ("until", e))?);
    if w.ticket.trim().is_empty() {
        return Err(("ticket", "a waiver needs a ticket id".to_string()));
    }
    if w.justification.trim().is_empty() {
        return Err((
            "justification",
            "a waiver needs a justification".to_string(),
        ));
    }
    Ok(Waiver {
        rule,
        check: w.check,
        subject,
        until,
        ticket: w.ticket,
        justification: w.justification,
    })
}
