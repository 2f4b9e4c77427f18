//! The policy file as written: serde structures with `deny_unknown_fields`, so an unknown key is
//! an error with its YAML line and column. Nothing here checks meaning; `compile` does.

use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy: a mapping with name, code and rules (and description, columns, sets, max_issue)"
)]
pub struct RawPolicy {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Extra inventory or request columns the rules use, with their types.
    #[serde(default)]
    pub columns: Vec<RawColumn>,
    /// Named sets of strings, for `in` and `not_in`.
    #[serde(default)]
    pub sets: serde_yaml::Mapping,
    pub code: RawCode,
    /// Refuse a run that would issue more than this many codes.
    #[serde(default)]
    pub max_issue: Option<u64>,
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a column: a mapping with field and type"
)]
pub struct RawColumn {
    pub field: String,
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a code format: a mapping with random_symbols and group (and prefix)"
)]
pub struct RawCode {
    #[serde(default)]
    pub prefix: String,
    pub random_symbols: usize,
    pub group: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "snake_case",
    expecting = "a rule kind: gate, check or quota"
)]
pub enum RawKind {
    Gate,
    Check,
    Quota,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "snake_case",
    expecting = "an outcome: denied or not_required"
)]
pub enum RawOutcome {
    Denied,
    NotRequired,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a mapping with id, kind, message and remedy, and require or quota"
)]
pub struct RawRule {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub kind: RawKind,
    #[serde(default)]
    pub when_fails: Option<RawOutcome>,
    /// A confidential gate is checked against every inventory row of the instance before any
    /// other step, and its refusal reveals nothing about the instance.
    #[serde(default)]
    pub confidential: bool,
    /// What must hold for the request to pass this rule (gates and checks).
    #[serde(default)]
    pub require: Option<RawCond>,
    /// The limit (quota rules).
    #[serde(default)]
    pub quota: Option<RawQuota>,
    pub message: String,
    pub remedy: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a quota: a mapping with per, max and statuses"
)]
pub struct RawQuota {
    pub per: String,
    pub max: u32,
    pub statuses: Vec<String>,
}

/// One condition: exactly one of the combinators, `exists`/`empty`, or `field` with exactly one
/// operator.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a condition: a mapping with one of all, any, not, exists, empty, or field with an operator"
)]
pub struct RawCond {
    pub all: Option<Vec<RawCond>>,
    pub any: Option<Vec<RawCond>>,
    pub not: Option<Box<RawCond>>,
    pub exists: Option<String>,
    pub empty: Option<String>,
    pub field: Option<String>,
    pub eq: Option<Value>,
    pub ne: Option<Value>,
    pub lt: Option<Value>,
    pub le: Option<Value>,
    pub gt: Option<Value>,
    pub ge: Option<Value>,
    #[serde(rename = "in")]
    pub in_: Option<Value>,
    pub not_in: Option<Value>,
    pub matches: Option<Value>,
    pub contains: Option<Value>,
}

impl RawCond {
    /// The operators present, with their names, in a fixed order.
    pub fn operators(&self) -> Vec<(&'static str, &Value)> {
        [
            ("eq", &self.eq),
            ("ne", &self.ne),
            ("lt", &self.lt),
            ("le", &self.le),
            ("gt", &self.gt),
            ("ge", &self.ge),
            ("in", &self.in_),
            ("not_in", &self.not_in),
            ("matches", &self.matches),
            ("contains", &self.contains),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
        .collect()
    }
}

/// Parses the text; a syntax error or unknown key comes back with its line and column.
pub fn parse(text: &str) -> Result<RawPolicy, (Option<(usize, usize)>, String)> {
    serde_yaml::from_str(text).map_err(|e| {
        let place = e.location().map(|l| (l.line(), l.column()));
        (place, strip_location(&e.to_string()))
    })
}

/// serde_yaml appends " at line L column C" to its messages; we print the place up front.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => format!("{}{}", &msg[..i], tail_after_location(&msg[i..])),
        None => msg.to_string(),
    }
}

fn tail_after_location(s: &str) -> &str {
    // " at line 3 column 5, while parsing ..." keeps what follows the comma.
    s.find(", ").map_or("", |i| &s[i..])
}
