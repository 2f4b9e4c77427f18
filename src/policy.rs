//! The policy: YAML text → `RawPolicy` (serde) → a compiled `Policy` whose field references are
//! column indices, whose sets are sorted and whose templates are parsed. Loading collects every
//! problem with its `file:line:column`. The policy knows the input schemas but never the input
//! data: evaluation is where the two meet.

mod compile;
pub(crate) mod locate;
mod raw;
pub mod schema;
mod template;
pub mod waivers;

use crate::code;
use crate::error::{Error, Result};
use crate::schema::{Schema, Status};
use crate::time::Time;
use sha2::{Digest, Sha256};
use std::path::Path;

pub use template::{Piece, Template};

/// The default policy, compiled into the binary.
pub const DEFAULT_TEXT: &str = include_str!("../policies/icp-service-code.yaml");
pub const DEFAULT_NAME: &str = "policies/icp-service-code.yaml";

/// A compiled policy, ready to evaluate.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub description: String,
    /// SHA-256 of the policy text, hex.
    pub sha256: String,
    /// Where the policy came from (a path, or the built-in default).
    pub source: String,
    pub instances: Schema,
    pub requests: Schema,
    /// Gates, then checks, each in policy order.
    pub rules: Vec<Rule>,
    pub quotas: Vec<Quota>,
    pub code: code::Format,
    pub max_issue: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gate,
    Check,
}

/// What a refusing rule makes of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotRequired,
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub kind: Kind,
    pub refusal: Refusal,
    /// Checked on every inventory row of the instance first; reveals nothing when it refuses.
    pub confidential: bool,
    /// What must hold for the request to pass.
    pub require: Cond,
    /// The condition reads only the instance and the as-of time, so it can be decided once
    /// per inventory row instead of once per request.
    pub per_instance: bool,
    pub message: Template,
    pub remedy: Template,
}

/// At most `max` codes per instance, counting ledger rows whose status is listed.
#[derive(Debug)]
pub struct Quota {
    pub id: String,
    pub description: String,
    pub max: u32,
    pub counts: [bool; 3],
    pub message: Template,
    pub remedy: Template,
}

impl Quota {
    pub fn counts_status(&self, s: Status) -> bool {
        self.counts[s as usize]
    }
}

/// A value a condition or template reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Instance(usize),
    Request(usize),
    AsOf,
    /// Codes the instance holds (ledger rows counted by the quota, plus this batch's).
    QuotaUsed,
    QuotaMax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Every comparison, in the order of the declaration.
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Str(String),
    Int(i64),
    Time(Time),
    /// Another field, for times optionally shifted by calendar months.
    Field {
        field: Field,
        months: i32,
    },
}

#[derive(Debug, Clone)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Exists(Field),
    Empty(Field),
    Compare {
        field: Field,
        op: CmpOp,
        right: Operand,
    },
    /// `in` (or `not_in` when `negate`): `values` is sorted.
    In {
        field: Field,
        values: Vec<String>,
        negate: bool,
    },
    Matches {
        field: Field,
        pattern: glob::Pattern,
    },
    /// A list field holds this value. With `empty_list` (the inventory's `operation_locks`, for
    /// which SPEC says so), an empty cell is an empty list; otherwise, like an absent column, it
    /// is an unknown value.
    Contains {
        field: Field,
        value: String,
        empty_list: bool,
    },
}

impl Cond {
    /// Calls `f` on every field the condition reads.
    pub fn visit(&self, f: &mut impl FnMut(Field)) {
        match self {
            Cond::All(parts) | Cond::Any(parts) => parts.iter().for_each(|c| c.visit(f)),
            Cond::Not(inner) => inner.visit(f),
            Cond::Exists(x) | Cond::Empty(x) => f(*x),
            Cond::Compare { field, right, .. } => {
                f(*field);
                if let Operand::Field { field, .. } = right {
                    f(*field);
                }
            }
            Cond::In { field, .. } | Cond::Matches { field, .. } | Cond::Contains { field, .. } => {
                f(*field)
            }
        }
    }

    /// Whether any field the condition reads satisfies `pred`.
    pub fn reads(&self, pred: impl Fn(Field) -> bool) -> bool {
        let mut any = false;
        self.visit(&mut |f| any |= pred(f));
        any
    }
}

impl Template {
    /// Calls `f` on every field the template reads.
    pub fn visit(&self, f: &mut impl FnMut(Field)) {
        for piece in &self.pieces {
            if let Piece::Field(x) = piece {
                f(*x);
            }
        }
    }
}

impl Policy {
    /// The declared type and dotted name of a field.
    pub fn field_name(&self, f: Field) -> String {
        match f {
            Field::Instance(i) => format!("instance.{}", self.instances.columns[i].name),
            Field::Request(i) => format!("request.{}", self.requests.columns[i].name),
            Field::AsOf => "as_of".to_string(),
            Field::QuotaUsed => "quota.used".to_string(),
            Field::QuotaMax => "quota.max".to_string(),
        }
    }
}

/// A message on one line: a line break from the input (a key with one in it) would otherwise
/// start a line without its `file:line:column`.
pub fn one_line(msg: &str) -> String {
    msg.replace('\r', "\\r").replace('\n', "\\n")
}

/// Loads and compiles a policy file; every problem is listed as `file:line:column: message`.
pub fn load(path: &Path) -> Result<Policy> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::refused(format!("{shown}: cannot read the policy: {e}")))?;
    compile_text(&text, &shown)
}

/// The built-in default policy.
pub fn default_policy() -> Policy {
    compile_text(DEFAULT_TEXT, DEFAULT_NAME).expect("the built-in policy compiles")
}

/// Compiles policy text; `shown` names it in messages.
pub fn compile_text(text: &str, shown: &str) -> Result<Policy> {
    let raw = raw::parse(text).map_err(|(place, msg)| {
        // serde names the mapping that holds a repeated key; the repeat itself is placed.
        if let Some(((line, col), said)) = locate::repeated_key(text, &msg) {
            return Error::refused(format!("{shown}:{line}:{col}: {said}"));
        }
        // serde stops at the first unknown key; list every one when the text is YAML at all.
        if let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            let unknown = schema::unknown_keys(&doc);
            if unknown.len() > 1 {
                return placed(text, shown, &unknown);
            }
        }
        let (line, col) = place.unwrap_or((1, 1));
        Error::refused(format!("{shown}:{line}:{col}: {}", one_line(&msg)))
    })?;
    let written = locate::Locations::of(text);
    let mut policy =
        compile::compile(raw, &written).map_err(|problems| placed(text, shown, &problems))?;
    policy.sha256 = crate::digest::hex(&Sha256::digest(text.as_bytes()));
    policy.source = shown.to_string();
    Ok(policy)
}

/// Problems found at YAML paths, as `file:line:column: message` lines.
pub(crate) fn placed(text: &str, shown: &str, problems: &[(String, String)]) -> Error {
    let places = locate::Locations::of(text);
    let lines: Vec<String> = problems
        .iter()
        .map(|(path, msg)| {
            let (line, col) = places.find(path);
            format!("{shown}:{line}:{col}: {}", one_line(msg))
        })
        .collect();
    Error::refused(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_policy_compiles_and_rule_ids_are_unique() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let p = load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let mut ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
                ids.extend(p.quotas.iter().map(|q| q.id.as_str()));
                let n = ids.len();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), n, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn default_policy_has_the_spec_rules_in_order() {
        let p = default_policy();
        let ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "instance-exists",
                "owner-account",
                "mainland-region",
                "subscription-billing",
                "not-expired",
                "three-months-left",
                "internet-bandwidth",
                "public-ip"
            ]
        );
        assert_eq!(p.quotas.len(), 1);
        assert_eq!(p.quotas[0].id, "max-codes-per-instance");
        assert_eq!(p.quotas[0].max, 5);
    }
}
