//! Compiling conditions: combinators, comparisons and their operands, with every type checked
//! against the columns' declared types. Part of `compile`; problems carry YAML paths.

use super::Compiler;
use crate::input::table::{literal_form, word_spellings};
use crate::policy::raw::RawCond;
use crate::policy::{CmpOp, Cond, Field, Operand, Values};
use crate::schema::{Domain, Type};
use crate::time;
use serde_yaml::Value;

/// The most months `plus_months` may add or take away: a thousand years, far past any
/// subscription, and within what a time can hold.
const MAX_MONTHS: i64 = 12_000;

impl Compiler<'_> {
    pub(super) fn cond(&mut self, path: &str, c: &RawCond) -> Option<Cond> {
        let shapes = [
            c.all.is_some(),
            c.any.is_some(),
            c.not.is_some(),
            c.exists.is_some(),
            c.empty.is_some(),
            c.field.is_some(),
        ];
        if shapes.iter().filter(|s| **s).count() != 1 {
            self.problem(
                path,
                "a condition is exactly one of `all`, `any`, `not`, `exists`, `empty` or `field` with an operator",
            );
            return None;
        }
        let ops = c.operators();
        if c.field.is_none() && !ops.is_empty() {
            self.problem(
                format!("{path}.{}", ops[0].0),
                format!("operator `{}` needs a `field`", ops[0].0),
            );
            return None;
        }
        if let Some(list) = c.all.as_ref().or(c.any.as_ref()) {
            let key = if c.all.is_some() { "all" } else { "any" };
            let parts: Vec<Option<Cond>> = list
                .iter()
                .enumerate()
                .map(|(i, sub)| self.cond(&format!("{path}.{key}[{i}]"), sub))
                .collect();
            if list.is_empty() {
                self.problem(format!("{path}.{key}"), format!("`{key}` needs conditions"));
            }
            let parts: Option<Vec<Cond>> = parts.into_iter().collect();
            return parts.map(if c.all.is_some() {
                Cond::All
            } else {
                Cond::Any
            });
        }
        if let Some(sub) = &c.not {
            return self
                .cond(&format!("{path}.not"), sub)
                .map(|s| Cond::Not(Box::new(s)));
        }
        if let Some(name) = &c.exists {
            return self
                .field_at(&format!("{path}.exists"), name)
                .map(|f| Cond::Exists(f.0));
        }
        if let Some(name) = &c.empty {
            return self
                .field_at(&format!("{path}.empty"), name)
                .map(|f| Cond::Empty(f.0));
        }
        let name = c.field.as_deref().unwrap_or_default();
        let field = self.field_at(&format!("{path}.field"), name);
        match ops.as_slice() {
            [(op, value)] => {
                let (field, ty) = field?;
                self.operator(&format!("{path}.{op}"), name, field, ty, op, value)
            }
            _ => {
                self.problem(
                    path,
                    format!(
                        "`field` takes exactly one operator (eq, ne, lt, le, gt, ge, in, not_in, matches, contains); found {}",
                        ops.len()
                    ),
                );
                None
            }
        }
    }

    fn operator(
        &mut self,
        path: &str,
        name: &str,
        field: Field,
        ty: Type,
        op: &str,
        value: &Value,
    ) -> Option<Cond> {
        let mismatch = |want: &str| {
            format!(
                "type mismatch: `{op}` needs {want}, but `{name}` is {}",
                ty.a_name()
            )
        };
        match op {
            "in" | "not_in" => {
                if ty != Type::String {
                    self.problem(path, mismatch("a string field"));
                    return None;
                }
                let values = self.set_operand(path, value)?;
                let values = self.literals(path, name, field, values)?;
                Some(Cond::In {
                    field,
                    values: Values::new(values),
                    negate: op == "not_in",
                })
            }
            "matches" => {
                if ty != Type::String {
                    self.problem(path, mismatch("a string field"));
                    return None;
                }
                let Some(text) = value.as_str() else {
                    self.problem(path, "`matches` takes a glob pattern string");
                    return None;
                };
                // Region ids are kept in lower case: so is a pattern for them.
                let text = match self.column_of(field).and_then(|c| c.domain) {
                    Some(Domain::RegionId) => text.to_ascii_lowercase(),
                    _ => text.to_string(),
                };
                let pattern = match glob::Pattern::new(&text) {
                    Ok(pattern) => pattern,
                    Err(e) => {
                        self.problem(path, format!("bad glob pattern `{text}`: {}", e.msg));
                        return None;
                    }
                };
                // A column kept as words (charge type, status) is matched by the words whose any
                // spelling the pattern matches, whatever the case: `PayAsYouGo` and `post*` are
                // `PostPaid`, `stop*` is `Stopping` and `Stopped`.
                let Some(words) = self.column_of(field).and_then(word_spellings) else {
                    return Some(Cond::Matches { field, pattern });
                };
                let blind = glob::MatchOptions {
                    case_sensitive: false,
                    ..Default::default()
                };
                let mut values: Vec<String> = words
                    .into_iter()
                    .filter(|(_, spellings)| {
                        spellings.iter().any(|s| pattern.matches_with(s, blind))
                    })
                    .map(|(word, _)| word.to_string())
                    .collect();
                values.sort();
                if values.is_empty() {
                    self.problem(
                        path,
                        format!("`{name}` can never hold a value that `{text}` matches"),
                    );
                    return None;
                }
                Some(Cond::In {
                    field,
                    values: Values::new(values),
                    negate: false,
                })
            }
            "contains" => {
                if ty != Type::List {
                    self.problem(path, mismatch("a list field"));
                    return None;
                }
                // SPEC makes an empty `operation_locks` cell an empty list; any other empty list
                // cell is an unknown value.
                let empty_list = matches!(field, Field::Instance(_))
                    && self
                        .column_of(field)
                        .is_some_and(|c| c.name == "operation_locks");
                match self.text_of(path, value) {
                    Some(v) => Some(Cond::Contains {
                        field,
                        value: v,
                        empty_list,
                    }),
                    None => {
                        self.problem(path, "`contains` takes one value");
                        None
                    }
                }
            }
            _ => {
                let op = match op {
                    "eq" => CmpOp::Eq,
                    "ne" => CmpOp::Ne,
                    "lt" => CmpOp::Lt,
                    "le" => CmpOp::Le,
                    "gt" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if ty == Type::List || (ordered && ty == Type::String) {
                    self.problem(
                        path,
                        mismatch(if ordered {
                            "an integer or time field"
                        } else {
                            "a string, integer or time field"
                        }),
                    );
                    return None;
                }
                let right = match self.operand(path, name, ty, value)? {
                    Operand::Str(text) => {
                        let [text] = self
                            .literals(path, name, field, vec![text])?
                            .try_into()
                            .ok()?;
                        Operand::Str(text)
                    }
                    other => other,
                };
                Some(Cond::Compare { field, op, right })
            }
        }
    }

    /// Text literals compared with `field`, in the form its cells are kept in (see
    /// `table::literal_form`); a word no cell can hold is a problem (`None`).
    fn literals(
        &mut self,
        path: &str,
        name: &str,
        field: Field,
        values: Vec<String>,
    ) -> Option<Vec<String>> {
        let Some(col) = self.column_of(field).cloned() else {
            return Some(values);
        };
        let mut out = Vec::with_capacity(values.len());
        let mut ok = true;
        for v in values {
            match literal_form(&col, &v) {
                Ok(form) => out.push(form),
                Err(e) => {
                    self.problem(path, format!("`{name}` can never hold this value: {e}"));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A literal of the field's type, or `{field: NAME, plus_months: N}`.
    fn operand(&mut self, path: &str, name: &str, ty: Type, value: &Value) -> Option<Operand> {
        if let Some(map) = value.as_mapping() {
            return self.field_operand(path, name, ty, map);
        }
        let literal = match (ty, value) {
            (Type::Integer, Value::Number(n)) => n.as_i64().map(Operand::Int),
            // To the microsecond, as every input time is kept.
            (Type::Time, Value::String(s)) => match time::parse(s) {
                Ok(t) => Some(Operand::Time(time::whole_micros(t))),
                Err(e) => {
                    self.problem(path, e);
                    return None;
                }
            },
            (Type::String, v) => self.text_of(path, v).map(Operand::Str),
            _ => None,
        };
        if literal.is_none() {
            self.problem(
                path,
                format!(
                    "type mismatch: `{name}` is {} and cannot be compared with {}",
                    ty.a_name(),
                    describe(value)
                ),
            );
        }
        literal
    }

    fn field_operand(
        &mut self,
        path: &str,
        name: &str,
        ty: Type,
        map: &serde_yaml::Mapping,
    ) -> Option<Operand> {
        let mut other = None;
        let mut months = 0i32;
        for (k, v) in map {
            match (k.as_str(), v) {
                (Some("field"), Value::String(s)) => other = Some(s.clone()),
                (Some("field"), _) => {
                    self.problem(
                        format!("{path}.field"),
                        "`field` names a field, such as `as_of` or `instance.expired_time`",
                    );
                    return None;
                }
                (Some("plus_months"), v) => match v.as_i64() {
                    Some(m) if (-MAX_MONTHS..=MAX_MONTHS).contains(&m) => months = m as i32,
                    _ => self.problem(
                        format!("{path}.plus_months"),
                        format!(
                            "`plus_months` is a whole number of months from -{MAX_MONTHS} to {MAX_MONTHS}"
                        ),
                    ),
                },
                (Some(key), _) => {
                    self.problem(
                        format!("{path}.{key}"),
                        format!(
                            "unknown key `{key}` in an operand (expected `field` and `plus_months`)"
                        ),
                    );
                    return None;
                }
                (None, _) => {
                    self.problem(path, "operand keys are strings");
                    return None;
                }
            }
        }
        let Some(other) = other else {
            self.problem(path, "an operand mapping needs `field`");
            return None;
        };
        let (field, other_ty) = self.field_at(&format!("{path}.field"), &other)?;
        if other_ty != ty {
            self.problem(
                format!("{path}.field"),
                format!(
                    "type mismatch: `{name}` is {} but `{other}` is {}",
                    ty.a_name(),
                    other_ty.a_name()
                ),
            );
            return None;
        }
        if months != 0 && ty != Type::Time {
            self.problem(
                format!("{path}.plus_months"),
                format!(
                    "`plus_months` needs a time, but `{other}` is {}",
                    ty.a_name()
                ),
            );
            return None;
        }
        Some(Operand::Field { field, months })
    }

    /// A list of strings, or `{set: NAME}`.
    fn set_operand(&mut self, path: &str, value: &Value) -> Option<Vec<String>> {
        if let Some(items) = value.as_sequence() {
            let mut values: Vec<String> = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.text_of(&format!("{path}[{i}]"), v))
                .collect();
            if values.len() != items.len() {
                self.problem(path, "list members are strings");
                return None;
            }
            values.sort();
            values.dedup();
            return Some(values);
        }
        let name = value
            .as_mapping()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.get("set"))
            .and_then(Value::as_str);
        match name {
            Some(n) => match self.sets.get(n) {
                Some(values) => Some(values.clone()),
                None => {
                    self.problem(format!("{path}.set"), format!("unknown set `{n}`"));
                    None
                }
            },
            None => {
                self.problem(path, "expected a list of strings or `{set: NAME}`");
                None
            }
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(_) => "a tagged value".to_string(),
    }
}
