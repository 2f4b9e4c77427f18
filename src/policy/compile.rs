//! `RawPolicy` → `Policy`: resolves field names to column indices, checks operator and operand
//! types, parses templates and the code format. Every problem is collected with the path of the
//! YAML node at fault; the caller turns paths into line and column.

mod cond;

use super::locate::Locations;
use super::raw::{RawKind, RawOutcome, RawPolicy, RawRule};
use super::{Field, Kind, Policy, Quota, Refusal, Rule, Template, template};
use crate::code;
use crate::schema::{Schema, Status, Type};
use serde_yaml::Value;
use std::collections::{BTreeMap, HashSet};

/// Reasons the engine itself gives; a policy rule may not take these ids.
pub const BUILT_IN_REASONS: [&str; 5] = [
    "malformed-request",
    "duplicate-request",
    "request-id-conflict",
    "malformed-instance",
    "ambiguous-instance",
];

type Problems = Vec<(String, String)>;

struct Compiler<'t> {
    instances: Schema,
    requests: Schema,
    sets: BTreeMap<String, Vec<String>>,
    problems: Problems,
    /// Where the text's nodes are, and its plain scalars as written (`Compiler::text_of`).
    source: &'t Locations,
}

/// Compiles `raw`; `source` is where the policy text's nodes are (see `locate`).
pub fn compile(raw: RawPolicy, source: &Locations) -> Result<Policy, Problems> {
    let mut c = Compiler {
        instances: Schema::instances(),
        requests: Schema::requests(),
        sets: BTreeMap::new(),
        problems: Vec::new(),
        source,
    };
    c.declare_columns(&raw);
    c.declare_sets(&raw.sets);
    let code = code::Format::new(&raw.code.prefix, raw.code.random_symbols, raw.code.group)
        .map_err(|e| {
            let key = ["prefix", "group"]
                .into_iter()
                .find(|k| e.starts_with(k))
                .unwrap_or("random_symbols");
            c.problem(format!("code.{key}"), e)
        })
        .ok();
    let (rules, quotas) = c.rules(&raw.rules);
    if c.problems.is_empty() {
        keep_read_columns(&mut c, &rules, &quotas);
        Ok(Policy {
            name: raw.name,
            description: raw.description,
            sha256: String::new(),
            source: String::new(),
            instances: c.instances,
            requests: c.requests,
            rules,
            quotas,
            code: code.expect("no problems means a code format"),
            max_issue: raw.max_issue,
        })
    } else {
        Err(c.problems)
    }
}

/// Marks the columns the rules read as kept in memory; the others are only checked.
fn keep_read_columns(c: &mut Compiler, rules: &[Rule], quotas: &[Quota]) {
    let mut mark = |f: Field| match f {
        Field::Instance(i) => c.instances.columns[i].keep = true,
        Field::Request(i) => c.requests.columns[i].keep = true,
        _ => {}
    };
    for r in rules {
        r.require.visit(&mut mark);
        r.message.visit(&mut mark);
        r.remedy.visit(&mut mark);
    }
    for q in quotas {
        q.message.visit(&mut mark);
        q.remedy.visit(&mut mark);
    }
}

impl Compiler<'_> {
    fn problem(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.problems.push((path.into(), msg.into()));
    }

    fn declare_columns(&mut self, raw: &RawPolicy) {
        for (i, col) in raw.columns.iter().enumerate() {
            let path = format!("columns[{i}]");
            let Some(ty) = Type::from_name(&col.ty) else {
                self.problem(
                    format!("{path}.type"),
                    format!(
                        "unknown type `{}` (expected string, integer, time or list)",
                        col.ty
                    ),
                );
                continue;
            };
            let (schema, name) = match col.field.split_once('.') {
                Some(("instance", n)) => (&mut self.instances, n),
                Some(("request", n)) => (&mut self.requests, n),
                _ => {
                    self.problem(
                        format!("{path}.field"),
                        format!(
                            "`{}` must name `instance.COLUMN` or `request.COLUMN`",
                            col.field
                        ),
                    );
                    continue;
                }
            };
            match schema.index(name) {
                Some(j) if schema.columns[j].ty != ty => {
                    let have = schema.columns[j].ty.name();
                    let what = match schema.columns[j].extra {
                        true => "declared above as a",
                        false => "a built-in",
                    };
                    self.problem(
                        format!("{path}.type"),
                        format!("`{}` is {what} {have} column", col.field),
                    );
                }
                // A built-in column declared (by any of its spellings) is one the policy says it
                // needs: its file must have it, as for any declared column, even where SPEC lets
                // the column be absent.
                Some(j) => schema.columns[j].declared = true,
                // A name of no letter or digit (one of `_`, `-` and spaces only would be matched
                // by every empty header cell) is refused, as the README says.
                None if !name.chars().any(char::is_alphanumeric) => {
                    self.problem(
                        format!("{path}.field"),
                        format!(
                            "`{}`: a declared column's name needs a letter or a digit",
                            col.field
                        ),
                    );
                }
                None => {
                    schema.add_extra(name, ty);
                }
            }
        }
    }

    fn declare_sets(&mut self, sets: &serde_yaml::Mapping) {
        for (k, v) in sets {
            let Some(name) = k.as_str() else {
                self.problem("sets", "set names must be strings");
                continue;
            };
            let path = format!("sets.{name}");
            let Some(items) = v.as_sequence() else {
                self.problem(path, "a set is a list of strings");
                continue;
            };
            let mut values = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match self.text_of(&format!("{path}[{i}]"), item) {
                    Some(s) => values.push(s),
                    None => self.problem(format!("{path}[{i}]"), "set members are strings"),
                }
            }
            values.sort();
            values.dedup();
            self.sets.insert(name.to_string(), values);
        }
    }

    fn rules(&mut self, raw: &[RawRule]) -> (Vec<Rule>, Vec<Quota>) {
        let mut seen = HashSet::new();
        let (mut gates, mut checks, mut quotas) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in raw.iter().enumerate() {
            let path = format!("rules[{i}]");
            self.rule_id(&path, &r.id, &mut seen);
            match r.kind {
                RawKind::Quota => {
                    if let Some(q) = self.quota(&path, r) {
                        quotas.push(q);
                    }
                }
                RawKind::Gate | RawKind::Check => {
                    if let Some(rule) = self.rule(&path, r) {
                        if rule.kind == Kind::Gate {
                            gates.push(rule)
                        } else {
                            checks.push(rule)
                        }
                    }
                }
            }
        }
        // A rule that did not compile has its own problem: the list is empty only as written.
        if raw.is_empty() {
            self.problem("rules", "a policy needs at least one rule");
        }
        if gates.len() + checks.len() > 64 {
            self.problem("rules", "a policy has at most 64 gates and checks");
        }
        gates.append(&mut checks);
        (gates, quotas)
    }

    fn rule_id(&mut self, path: &str, id: &str, seen: &mut HashSet<String>) {
        let path = format!("{path}.id");
        // Not `-` first: the reports write rule ids as cells, and a spreadsheet runs a cell that
        // starts with `-` as a formula.
        let well_formed = id.bytes().next().is_some_and(|b| b != b'-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            self.problem(
                &path,
                format!(
                    "rule id `{id}` must be lower-case letters, digits and `-`, \
                     starting with a letter or a digit"
                ),
            );
        } else if BUILT_IN_REASONS.contains(&id) {
            self.problem(&path, format!("rule id `{id}` is reserved for the engine"));
        } else if !seen.insert(id.to_string()) {
            self.problem(&path, format!("duplicate rule id `{id}`"));
        }
    }

    fn rule(&mut self, path: &str, r: &RawRule) -> Option<Rule> {
        let kind = if r.kind == RawKind::Gate {
            Kind::Gate
        } else {
            Kind::Check
        };
        let refusal = match (r.when_fails, kind) {
            (None | Some(RawOutcome::Denied), _) => Refusal::Denied,
            (Some(RawOutcome::NotRequired), Kind::Gate) => Refusal::NotRequired,
            (Some(RawOutcome::NotRequired), Kind::Check) => {
                self.problem(
                    format!("{path}.when_fails"),
                    "only a gate can make a request `not_required`",
                );
                Refusal::Denied
            }
        };
        if r.confidential && kind != Kind::Gate {
            self.problem(
                format!("{path}.confidential"),
                "only a gate can be confidential",
            );
        }
        if r.quota.is_some() {
            self.problem(
                format!("{path}.quota"),
                "`quota` belongs to `kind: quota` rules",
            );
        }
        let require = match &r.require {
            Some(c) => self.cond(&format!("{path}.require"), c),
            None => {
                self.problem(path, format!("rule `{}` needs a `require` condition", r.id));
                None
            }
        };
        let message = self.template(&format!("{path}.message"), &r.message, false);
        let remedy = self.template(&format!("{path}.remedy"), &r.remedy, false);
        let require = require?;
        let per_instance = !require.reads(|f| matches!(f, Field::Request(_)));
        Some(Rule {
            id: r.id.clone(),
            description: r.description.clone(),
            kind,
            refusal,
            confidential: r.confidential,
            per_instance,
            require,
            message: message?,
            remedy: remedy?,
        })
    }

    fn quota(&mut self, path: &str, r: &RawRule) -> Option<Quota> {
        if r.require.is_some() || r.confidential || r.when_fails == Some(RawOutcome::NotRequired) {
            self.problem(
                path,
                "a quota rule takes `quota`, not `require`, `confidential` or `not_required`",
            );
        }
        let Some(q) = &r.quota else {
            self.problem(path, format!("rule `{}` needs a `quota` section", r.id));
            return None;
        };
        if q.per != "instance" {
            self.problem(
                format!("{path}.quota.per"),
                format!("quotas are counted per `instance`, not `{}`", q.per),
            );
        }
        let mut counts = [false; 3];
        for (i, s) in q.statuses.iter().enumerate() {
            match Status::parse(s) {
                Some(st) => counts[st as usize] = true,
                None => self.problem(
                    format!("{path}.quota.statuses[{i}]"),
                    format!("unknown ledger status `{s}` (expected issued, in_use or spent)"),
                ),
            }
        }
        let message = self.template(&format!("{path}.message"), &r.message, true);
        let remedy = self.template(&format!("{path}.remedy"), &r.remedy, true);
        Some(Quota {
            id: r.id.clone(),
            description: r.description.clone(),
            max: q.max,
            counts,
            message: message?,
            remedy: remedy?,
        })
    }

    fn template(&mut self, path: &str, text: &str, quota: bool) -> Option<Template> {
        let result = template::parse(text, |name| match name {
            "quota.used" | "quota.max" if !quota => {
                Err("quota placeholders belong to quota rules".to_string())
            }
            "quota.used" => Ok(Field::QuotaUsed),
            "quota.max" => Ok(Field::QuotaMax),
            _ => self.field(name),
        });
        match result {
            Ok(t) => Some(t),
            Err(errors) => {
                for e in errors {
                    self.problem(path, e);
                }
                None
            }
        }
    }

    /// Resolves `instance.X`, `request.X` or `as_of`.
    fn field(&self, name: &str) -> Result<Field, String> {
        if name == "as_of" {
            return Ok(Field::AsOf);
        }
        let (schema, col) = match name.split_once('.') {
            Some(("instance", c)) => (&self.instances, c),
            Some(("request", c)) => (&self.requests, c),
            _ => {
                return Err(format!(
                    "`{name}` is not a field (expected `instance.COLUMN`, `request.COLUMN` or `as_of`)"
                ));
            }
        };
        let i = schema.index(col).ok_or_else(|| {
            format!(
                "unknown column `{name}` (declare extra columns under `columns:`; known: {})",
                schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        Ok(if schema.table == "instance" {
            Field::Instance(i)
        } else {
            Field::Request(i)
        })
    }

    fn field_at(&mut self, path: &str, name: &str) -> Option<(Field, Type)> {
        match self.field(name) {
            Ok(f) => Some((f, self.type_of(f))),
            Err(e) => {
                self.problem(path, e);
                None
            }
        }
    }

    /// The schema column a field reads (`None` for the as-of time and the quota's counts).
    pub(super) fn column_of(&self, f: Field) -> Option<&crate::schema::Column> {
        match f {
            Field::Instance(i) => self.instances.columns.get(i),
            Field::Request(i) => self.requests.columns.get(i),
            Field::AsOf | Field::QuotaUsed | Field::QuotaMax => None,
        }
    }

    fn type_of(&self, f: Field) -> Type {
        match f {
            Field::Instance(i) => self.instances.columns[i].ty,
            Field::Request(i) => self.requests.columns[i].ty,
            Field::AsOf => Type::Time,
            Field::QuotaUsed | Field::QuotaMax => Type::Integer,
        }
    }
}

impl Compiler<'_> {
    /// The YAML scalar at `path` as text (strings; numbers as written, so that `0111` stays
    /// `0111` and `1.50` stays `1.50`); `None` for anything else.
    pub(super) fn text_of(&self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(
                self.source
                    .written(path)
                    .map_or_else(|| n.to_string(), str::to_string),
            ),
            _ => None,
        }
    }
}
