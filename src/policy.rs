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

/// The values of an `in` test: sorted and without repeats (as a slice), and hashed, so that a
/// test run on every row of a large inventory costs one lookup, not a binary search's several
/// comparisons of text.
#[derive(Debug, Clone)]
pub struct Values {
    sorted: Vec<String>,
    set: std::collections::HashSet<String, foldhash::fast::FixedState>,
}

impl Values {
    pub fn new(mut values: Vec<String>) -> Values {
        values.sort();
        values.dedup();
        let set = values.iter().cloned().collect();
        Values {
            sorted: values,
            set,
        }
    }

    pub fn contains(&self, value: &str) -> bool {
        self.set.contains(value)
    }
}

impl std::ops::Deref for Values {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.sorted
    }
}

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
    /// `in` (or `not_in` when `negate`).
    In {
        field: Field,
        values: Values,
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
/// start a line without its `file:line:column`. A long value that serde quotes as the wrong
/// type (`string "…"`: the whole text of a file that is one string, a CSV file say) is cut to
/// its first 60 characters; other quotes, such as one inside an unknown key, are left alone.
pub fn one_line(msg: &str) -> String {
    const KEEP: usize = 60;
    const VALUE: &str = "string \"";
    let mut out = String::with_capacity(msg.len().min(4096));
    let mut rest = msg;
    while let Some(at) = rest.find(VALUE) {
        let (before, after) = rest.split_at(at + VALUE.len());
        out.push_str(before);
        // The value ends at the first quote that serde did not escape (`\"`).
        let mut escaped = false;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(after.len(), |(i, _)| i);
        let value = &after[..end];
        if value.chars().count() > KEEP {
            out.extend(value.chars().take(KEEP));
            out.push('…');
        } else {
            out.push_str(value);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.replace('\r', "\\r").replace('\n', "\\n")
}

/// A YAML file's text (`what` names it in messages). Bytes that are not UTF-8 are placed by
/// line and column, as every other problem of the file is.
pub fn read_text(path: &Path, shown: &str, what: &str) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::refused(format!("{shown}: cannot read {what}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let line = 1 + good.iter().filter(|b| **b == b'\n').count();
        let col = 1 + String::from_utf8_lossy(&good[line_start..]).chars().count();
        Error::refused(format!(
            "{shown}:{line}:{col}: this byte is not UTF-8 text: {what} is a YAML text file"
        ))
    })
}

/// Loads and compiles a policy file; every problem is listed as `file:line:column: message`.
pub fn load(path: &Path) -> Result<Policy> {
    let shown = path.display().to_string();
    let text = read_text(path, &shown, "the policy")?;
    compile_text(&text, &shown)
}

/// The built-in default policy.
pub fn default_policy() -> Policy {
    let mut policy =
        compile_text(DEFAULT_TEXT, DEFAULT_NAME).expect("the built-in policy compiles");
    // Not a file the run read: the text compiled into the binary, which that file holds in
    // the repository (a file of that name where the run is may hold another text).
    policy.source = format!("built-in ({DEFAULT_NAME})");
    policy
}

/// serde's words for a value that is not the whole number expected, in plain words: serde
/// names the Rust type it wanted (`invalid type: integer `-1`, expected u32`), and a number past
/// 64 bits by the type the YAML reader kept it in (`integer `N` as u128`). Here the range is
/// said instead (`` `-1` is not a whole number from 0 to 4294967295 ``), and a number past 64
/// bits where any value may stand is said to be out of range. Other messages are left as they
/// are.
pub fn plain_numbers(msg: &str) -> String {
    let Some((head, expected)) = msg.rsplit_once(", expected ") else {
        return msg.to_string();
    };
    let Some((at, said)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|h| head.find(h).map(|at| (at, &head[at + h.len()..])))
    else {
        return msg.to_string();
    };
    let wide = [" as u128", " as i128"]
        .iter()
        .find_map(|w| said.strip_suffix(w));
    let range = match (expected, wide) {
        ("any YAML value", Some(number)) => {
            let number = number.strip_prefix("integer ").unwrap_or(number);
            return format!(
                "{}the number {number} is out of range (a number here fits in 64 bits)",
                &msg[..at]
            );
        }
        (e, _) => match whole_numbers(e) {
            Some(range) => range,
            None => return msg.to_string(),
        },
    };
    let value = wide.unwrap_or(said);
    // A text as the user wrote it, in backticks, where serde quotes and escapes it.
    let text = value
        .strip_prefix("string \"")
        .and_then(|t| t.strip_suffix('"'))
        .map(|t| format!("`{}`", t.replace("\\\"", "\"").replace("\\\\", "\\")));
    let value = text.unwrap_or_else(|| {
        ["integer ", "floating point ", "boolean "]
            .iter()
            .find_map(|kind| value.strip_prefix(kind))
            .unwrap_or(match value {
                "sequence" => "a list",
                "map" => "a mapping",
                "unit value" => "an empty value",
                other => other,
            })
            .to_string()
    });
    format!("{}{value} is not {range}", &msg[..at])
}

/// The whole numbers one of serde's integer types holds, in words; `None` for any other type.
fn whole_numbers(rust_type: &str) -> Option<String> {
    let (low, high): (i128, u128) = match rust_type {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "usize" => (0, usize::MAX as u128),
        "i8" => (i8::MIN.into(), i8::MAX as u128),
        "i16" => (i16::MIN.into(), i16::MAX as u128),
        "i32" => (i32::MIN.into(), i32::MAX as u128),
        "i64" => (i64::MIN.into(), i64::MAX as u128),
        "isize" => (isize::MIN as i128, isize::MAX as u128),
        _ => return None,
    };
    Some(format!("a whole number from {low} to {high}"))
}

/// The YAML text of a policy, waivers or test file as serde is to read it: without the
/// byte-order mark an editor may have put before it (a YAML reader would take it for part of the
/// first key). Refused, before serde reads it: a second mark (a file saved twice with one, whose
/// first key serde would misread), and a document whose aliases are unsafe to read
/// (`locate::alias_trouble`): an anchor name given twice, which serde would read as another
/// node (and whose misreading would be the message), or aliases that would expand it too far.
pub fn yaml_text<'t>(whole: &'t str, shown: &str) -> Result<&'t str> {
    let text = whole.strip_prefix('\u{feff}').unwrap_or(whole);
    if text.starts_with('\u{feff}') {
        return Err(Error::refused(format!(
            "{shown}:1:1: the file starts with two byte-order marks (U+FEFF): save it with one, \
             or none"
        )));
    }
    refuse_at(shown, locate::alias_trouble(text).as_ref())?;
    Ok(text)
}

/// Refuses a document that serde read but the locator could not read exactly to its end
/// (`Locations::stopped`): its problems could not be placed, nor its numbers kept as written,
/// and an anchor given twice may have been read as another node.
pub fn refuse_unread(places: &locate::Locations, shown: &str) -> Result<()> {
    refuse_at(shown, places.stopped())
}

/// A refusal at a place of `shown`, when there is a problem to tell.
fn refuse_at(shown: &str, problem: Option<&((usize, usize), String)>) -> Result<()> {
    match problem {
        Some(((line, col), why)) => Err(Error::refused(format!("{shown}:{line}:{col}: {why}"))),
        None => Ok(()),
    }
}

/// Compiles policy text; `shown` names it in messages. Its SHA-256 is the whole text's (a
/// byte-order mark included), as the file's bytes.
pub fn compile_text(whole: &str, shown: &str) -> Result<Policy> {
    let text = yaml_text(whole, shown)?;
    let raw = raw::parse(text).map_err(|(place, msg)| {
        // serde names the mapping that holds a repeated key; the repeat itself is placed.
        if let Some(((line, col), said)) = locate::repeated_key(text, &msg) {
            return Error::refused(format!("{shown}:{line}:{col}: {said}"));
        }
        let (line, col) = place.unwrap_or((1, 1));
        let serde_said = ((line, col), plain_numbers(&one_line(&msg)));
        // serde stops at the first problem; every unknown key and word is listed too (serde's
        // own problem is one of them, or is listed beside them). A document serde cannot read
        // as YAML values (a syntax error, a key given twice), or that the locator cannot walk
        // to its end (a tab after a colon), gets serde's problem alone: the others could not
        // be listed, or not placed.
        let places = locate::Locations::of(text);
        let doc = match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(doc) if places.complete() => doc,
            _ => return Error::refused(format!("{shown}:{line}:{col}: {}", serde_said.1)),
        };
        let shape = schema::ShapeProblems::of(&doc);
        let mut lines: Vec<((usize, usize), String)> = (shape.keys.iter())
            .map(|(path, msg)| (places.find_key(path), one_line(msg)))
            .chain((shape.values.iter()).map(|(path, msg)| (places.find(path), one_line(msg))))
            .collect();
        // serde's problem is listed unless it is one of these (the same unknown key or word
        // at the same path, which serde may place elsewhere: at an anchor or a tag).
        let what = |m: &str| m.split(", expected").next().unwrap_or(m).to_string();
        if !lines.iter().any(|(_, m)| what(m) == what(&serde_said.1)) {
            lines.push(serde_said);
        }
        lines.sort();
        let lines: Vec<String> = lines
            .into_iter()
            .map(|((line, col), msg)| format!("{shown}:{line}:{col}: {msg}"))
            .collect();
        Error::refused(lines.join("\n"))
    })?;
    let written = locate::Locations::of(text);
    refuse_unread(&written, shown)?;
    let mut policy =
        compile::compile(raw, &written).map_err(|problems| placed(text, shown, &problems))?;
    policy.sha256 = crate::digest::hex(&Sha256::digest(whole.as_bytes()));
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

    /// Messages stay on one line, and a long value serde quotes as the wrong type is cut to its
    /// first 60 characters (a quote it escaped inside the value does not end it); a quote
    /// elsewhere (in an unknown key) cuts nothing.
    #[test]
    fn messages_are_one_line_and_cut_long_quoted_values() {
        assert_eq!(one_line("a\nb\rc"), "a\\nb\\rc");
        assert_eq!(one_line("string \"short\", x"), "string \"short\", x");
        let long = "x".repeat(100);
        let sixty = "x".repeat(60);
        assert_eq!(
            one_line(&format!("invalid type: string \"{long}\", expected y")),
            format!("invalid type: string \"{sixty}…\", expected y")
        );
        let got = one_line(&format!("string \"ab\\\"{long}\" end"));
        assert_eq!(got, format!("string \"ab\\\"{}…\" end", "x".repeat(56)));
        // A value never closed is cut too.
        assert_eq!(
            one_line(&format!("string \"{long}")),
            format!("string \"{sixty}…")
        );
        let keys = format!("unknown field `mesage\"`, expected one of `id`, `{long}`, `remedy`");
        assert_eq!(one_line(&keys), keys);
        assert_eq!(one_line("string \"ü\\"), "string \"ü\\");
    }

    /// A value that is not the whole number expected is said with the range, in place of
    /// serde's words and the Rust type it names.
    #[test]
    fn a_wrong_number_is_said_with_its_range() {
        let said = [
            (
                "a.gt: invalid type: integer `99999999999999999999` as u128, expected any YAML value",
                "a.gt: the number `99999999999999999999` is out of range (a number here fits in 64 bits)",
            ),
            (
                "x: invalid type: integer `-99999999999999999999` as i128, expected usize",
                "x: `-99999999999999999999` is not a whole number from 0 to 18446744073709551615",
            ),
            (
                "q.max: invalid type: integer `99999999999999999999` as u128, expected u32",
                "q.max: `99999999999999999999` is not a whole number from 0 to 4294967295",
            ),
            (
                "rules[8].quota.max: invalid type: integer `-1`, expected u32",
                "rules[8].quota.max: `-1` is not a whole number from 0 to 4294967295",
            ),
            (
                "q.max: invalid value: integer `99999999999`, expected u32",
                "q.max: `99999999999` is not a whole number from 0 to 4294967295",
            ),
            (
                "code.group: invalid type: string \"four\", expected usize",
                "code.group: `four` is not a whole number from 0 to 18446744073709551615",
            ),
            (
                "q.max: invalid type: string \"a\\\"b\\\\c\", expected u32",
                "q.max: `a\"b\\c` is not a whole number from 0 to 4294967295",
            ),
            (
                "code.group: invalid type: floating point `4.5`, expected usize",
                "code.group: `4.5` is not a whole number from 0 to 18446744073709551615",
            ),
            (
                "max_issue: invalid type: boolean `true`, expected u64",
                "max_issue: `true` is not a whole number from 0 to 18446744073709551615",
            ),
            (
                "n: invalid type: sequence, expected i64",
                "n: a list is not a whole number from -9223372036854775808 to 9223372036854775807",
            ),
        ];
        for (serde, plain) in said {
            assert_eq!(plain_numbers(serde), plain);
        }
        // Where no whole number is expected, serde's words stand.
        for other in [
            "x: invalid type: integer `5`, expected a string",
            "c: invalid type: integer `99999999999999999999` as u128, expected a boolean",
            "rules[3].kind: unknown variant `chek`, expected one of `gate`, `check`",
        ] {
            assert_eq!(plain_numbers(other), other);
        }
    }

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

    /// An `in` set reads as its values sorted, each once, and holds exactly them: no prefix, no
    /// other case, no empty text.
    #[test]
    fn an_in_set_is_sorted_once_and_holds_only_its_values() {
        let words = ["cn-shanghai", "cn-beijing", "cn-shanghai", "cn-hangzhou"];
        let values = Values::new(words.iter().map(|w| w.to_string()).collect());
        assert_eq!(&values[..], ["cn-beijing", "cn-hangzhou", "cn-shanghai"]);
        for w in words {
            assert!(values.contains(w), "{w}");
        }
        for w in ["cn-shangha", "CN-BEIJING", "", "cn-beijing ", "cn-hongkong"] {
            assert!(!values.contains(w), "{w:?}");
        }
    }
}
