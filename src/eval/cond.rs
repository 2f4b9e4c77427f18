//! Three-valued evaluation of compiled conditions. A comparison that needs a value the row does
//! not have is `Unknown`, never false; unknown stays unknown through all / any / not (Kleene
//! logic), and the caller treats it as a refusal. `exists` and `empty` are never unknown.

use crate::policy::{CmpOp, Cond, Field, Operand};
use crate::schema::Value;
use crate::time::{self, Time};
use std::cmp::Ordering;

/// The outcome of a condition; `Unknown` names the first value that was missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown(Field),
}

/// Where a condition reads its values from.
pub trait Lookup {
    /// `None` when there is no row to read at all (no inventory row); `Some(Missing)` for an
    /// empty cell.
    fn get(&self, field: Field) -> Option<Value<'_>>;

    /// A time field as the microseconds since 1970 it is kept as (`Some(None)`: missing), so
    /// that comparing it with an instant needs no calendar; `None` (the default) where the
    /// lookup would rather be asked with `get`.
    fn micros(&self, _field: Field) -> Option<Option<i64>> {
        None
    }
}

pub fn eval(cond: &Cond, env: &impl Lookup) -> Truth {
    match cond {
        Cond::All(parts) => all(parts.iter().map(|c| eval(c, env))),
        Cond::Any(parts) => any(parts.iter().map(|c| eval(c, env))),
        Cond::Not(inner) => match eval(inner, env) {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            unknown => unknown,
        },
        Cond::Exists(f) => truth(present(env, *f)),
        Cond::Empty(f) => truth(!present(env, *f)),
        Cond::Compare { field, op, right } => compare(env, *field, *op, right),
        Cond::In {
            field,
            values,
            negate,
        } => match env.get(*field) {
            Some(Value::Str(s)) => truth(values.contains(s) != *negate),
            _ => Truth::Unknown(*field),
        },
        Cond::Matches { field, pattern } => match env.get(*field) {
            Some(Value::Str(s)) => truth(pattern.matches(s)),
            _ => Truth::Unknown(*field),
        },
        Cond::Contains {
            field,
            value,
            empty_list,
        } => match env.get(*field) {
            // An empty `operation_locks` cell is an empty list (SPEC; an absent column too, as
            // its every cell is empty); any other empty list cell is an unknown value.
            Some(Value::Missing) if *empty_list => Truth::False,
            Some(Value::Str(list)) => truth(list_contains(list, value)),
            _ => Truth::Unknown(*field),
        },
    }
}

/// Whether a `;`-separated list holds `value`: items are trimmed, and matched whatever their
/// case (the API's lock reasons are words: an export that writes `Financial` still carries the
/// `financial` lock, and a check that missed it would let the request through).
pub fn list_contains(list: &str, value: &str) -> bool {
    list.split(';')
        .any(|item| item.trim().eq_ignore_ascii_case(value))
}

/// `cond` with each comparison against `as_of` plus some months turned into a comparison with
/// that instant, computed once for the run instead of once per row. It evaluates exactly as
/// `cond` does (a shift past the calendar's end is left as it was, to be unknown as before).
pub fn with_as_of(cond: &Cond, as_of: Time) -> Cond {
    let each = |parts: &[Cond]| parts.iter().map(|c| with_as_of(c, as_of)).collect();
    match cond {
        Cond::All(parts) => Cond::All(each(parts)),
        Cond::Any(parts) => Cond::Any(each(parts)),
        Cond::Not(inner) => Cond::Not(Box::new(with_as_of(inner, as_of))),
        Cond::Compare {
            field,
            op,
            right:
                Operand::Field {
                    field: Field::AsOf,
                    months,
                },
        } => match time::add_months(as_of, *months) {
            Some(t) => Cond::Compare {
                field: *field,
                op: *op,
                right: Operand::Time(t),
            },
            None => cond.clone(),
        },
        other => other.clone(),
    }
}

pub(super) fn truth(b: bool) -> Truth {
    if b { Truth::True } else { Truth::False }
}

fn present(env: &impl Lookup, f: Field) -> bool {
    matches!(env.get(f), Some(v) if v != Value::Missing)
}

/// False wins; otherwise the first unknown; otherwise true.
fn all(parts: impl Iterator<Item = Truth>) -> Truth {
    let mut unknown = None;
    for t in parts {
        match t {
            Truth::False => return Truth::False,
            Truth::Unknown(_) if unknown.is_none() => unknown = Some(t),
            _ => {}
        }
    }
    unknown.unwrap_or(Truth::True)
}

/// True wins; otherwise the first unknown; otherwise false.
fn any(parts: impl Iterator<Item = Truth>) -> Truth {
    let mut unknown = None;
    for t in parts {
        match t {
            Truth::True => return Truth::True,
            Truth::Unknown(_) if unknown.is_none() => unknown = Some(t),
            _ => {}
        }
    }
    unknown.unwrap_or(Truth::False)
}

fn compare(env: &impl Lookup, field: Field, op: CmpOp, right: &Operand) -> Truth {
    if let Operand::Time(t) = right
        && let Some(left) = env.micros(field)
    {
        // Exactly as the instants compare: in nanoseconds, which an instant may carry.
        let Some(us) = left else {
            return Truth::Unknown(field);
        };
        let nanos = |t: &Time| {
            i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
        };
        return ordered(op, (i128::from(us) * 1000).cmp(&nanos(t)));
    }
    let left = match env.get(field) {
        Some(v) if v != Value::Missing => v,
        _ => return Truth::Unknown(field),
    };
    let right = match right {
        Operand::Str(s) => Value::Str(s),
        Operand::Int(n) => Value::Int(*n),
        Operand::Time(t) => Value::Time(*t),
        Operand::Field { field: f, months } => match env.get(*f) {
            Some(Value::Time(t)) if *months != 0 => match time::add_months(t, *months) {
                Some(shifted) => Value::Time(shifted),
                None => return Truth::Unknown(*f),
            },
            Some(v) if v != Value::Missing => v,
            _ => return Truth::Unknown(*f),
        },
    };
    let ord = match (left, right) {
        (Value::Str(a), Value::Str(b)) => a.cmp(b),
        (Value::Int(a), Value::Int(b)) => a.cmp(&b),
        (Value::Time(a), Value::Time(b)) => a.cmp(&b),
        // INVARIANT: the compiler checked that both sides have one type.
        _ => return Truth::Unknown(field),
    };
    ordered(op, ord)
}

pub(super) fn ordered(op: CmpOp, ord: Ordering) -> Truth {
    truth(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse;

    /// Instance columns 0..: a fixed row; column 9 is missing; `None` for a missing row.
    struct Row(Option<Vec<Value<'static>>>);

    impl Lookup for Row {
        fn get(&self, field: Field) -> Option<Value<'_>> {
            match field {
                Field::Instance(i) => self.0.as_ref().map(|r| r[i]),
                Field::AsOf => Some(Value::Time(parse("2026-11-30").unwrap())),
                _ => Some(Value::Missing),
            }
        }
    }

    fn row() -> Row {
        Row(Some(vec![
            Value::Str("cn-hangzhou"),
            Value::Int(0),
            Value::Time(parse("2027-02-28").unwrap()),
            Value::Str("financial; security"),
            Value::Missing,
        ]))
    }

    const OPS: [CmpOp; 6] = CmpOp::ALL;

    const T: Cond = Cond::Exists(Field::AsOf);
    const F: Cond = Cond::Empty(Field::AsOf);
    const U: Cond = Cond::Compare {
        field: Field::Instance(4),
        op: CmpOp::Eq,
        right: Operand::Int(1),
    };

    fn name(c: &Cond) -> char {
        match c {
            Cond::Exists(_) => 'T',
            Cond::Empty(_) => 'F',
            _ => 'U',
        }
    }

    fn copy(c: &Cond) -> Cond {
        match name(c) {
            'T' => T,
            'F' => F,
            _ => U,
        }
    }

    fn short(t: Truth) -> char {
        match t {
            Truth::True => 'T',
            Truth::False => 'F',
            Truth::Unknown(_) => 'U',
        }
    }

    /// Kleene's truth tables for all, any and not, over every pair of T, F and U.
    #[test]
    fn truth_tables() {
        let all_want = ["TFU", "FFF", "UFU"];
        let any_want = ["TTT", "TFU", "TUU"];
        let vals = [T, F, U];
        for (i, a) in vals.iter().enumerate() {
            for (j, b) in vals.iter().enumerate() {
                let got_all = short(eval(&Cond::All(vec![copy(a), copy(b)]), &row()));
                let got_any = short(eval(&Cond::Any(vec![copy(a), copy(b)]), &row()));
                let ctx = format!("{} {}", name(a), name(b));
                assert_eq!(got_all, all_want[i].as_bytes()[j] as char, "all {ctx}");
                assert_eq!(got_any, any_want[i].as_bytes()[j] as char, "any {ctx}");
            }
            let not = short(eval(&Cond::Not(Box::new(copy(a))), &row()));
            assert_eq!(not, ['F', 'T', 'U'][i]);
        }
    }

    #[test]
    fn unknown_names_the_missing_field() {
        assert_eq!(eval(&U, &row()), Truth::Unknown(Field::Instance(4)));
        let not_u = Cond::Not(Box::new(U));
        assert_eq!(eval(&not_u, &row()), Truth::Unknown(Field::Instance(4)));
    }

    #[test]
    fn exists_and_empty_are_never_unknown() {
        let none = Row(None);
        assert_eq!(eval(&Cond::Exists(Field::Instance(0)), &none), Truth::False);
        assert_eq!(eval(&Cond::Empty(Field::Instance(0)), &none), Truth::True);
        assert_eq!(
            eval(&Cond::Exists(Field::Instance(4)), &row()),
            Truth::False
        );
        assert_eq!(eval(&Cond::Empty(Field::Instance(4)), &row()), Truth::True);
    }

    #[test]
    fn comparisons_by_type() {
        let cmp = |field, op, right| eval(&Cond::Compare { field, op, right }, &row());
        let expiry = Field::Instance(2);
        let shifted = Operand::Field {
            field: Field::AsOf,
            months: 3,
        };
        // Nov 30 + 3 months = Feb 28: equality passes `ge`, fails `gt`.
        assert_eq!(cmp(expiry, CmpOp::Ge, shifted.clone()), Truth::True);
        assert_eq!(cmp(expiry, CmpOp::Gt, shifted), Truth::False);
        assert_eq!(
            cmp(Field::Instance(1), CmpOp::Gt, Operand::Int(0)),
            Truth::False
        );
        assert_eq!(
            cmp(Field::Instance(1), CmpOp::Le, Operand::Int(0)),
            Truth::True
        );
        let region = Operand::Str("cn-hangzhou".into());
        assert_eq!(
            cmp(Field::Instance(0), CmpOp::Eq, region.clone()),
            Truth::True
        );
        assert_eq!(cmp(Field::Instance(0), CmpOp::Ne, region), Truth::False);
        assert_eq!(
            cmp(
                Field::Instance(0),
                CmpOp::Eq,
                Operand::Field {
                    field: Field::Instance(4),
                    months: 0
                }
            ),
            Truth::Unknown(Field::Instance(4))
        );
    }

    /// Binding `as_of` changes no outcome: every comparison against `as_of` shifted by some
    /// months (none, back, forward, past the calendar's end), under `not` and `all`, on rows
    /// around the shifted instants and on a row without the value.
    #[test]
    fn binding_as_of_evaluates_as_the_condition_did() {
        let as_of = parse("2026-11-30").unwrap();
        let expiries = [
            "2026-10-30",
            "2026-11-30",
            "2027-02-28",
            "2027-03-01",
            "9999-12-31",
        ];
        let mut rows: Vec<Row> = expiries
            .iter()
            .map(|e| {
                let mut r = row();
                r.0.as_mut().unwrap()[2] = Value::Time(parse(e).unwrap());
                r
            })
            .collect();
        rows.push(Row(Some(vec![Value::Missing; 5])));
        rows.push(Row(None));
        let mut bound = 0;
        for months in [0, -1, 3, 12 * 300_000] {
            for op in OPS {
                let compare = Cond::Compare {
                    field: Field::Instance(2),
                    op,
                    right: Operand::Field {
                        field: Field::AsOf,
                        months,
                    },
                };
                let nested = Cond::Not(Box::new(Cond::All(vec![compare.clone(), T])));
                for cond in [compare, nested] {
                    let with = with_as_of(&cond, as_of);
                    bound += usize::from(format!("{with:?}").contains("Time("));
                    for r in &rows {
                        assert_eq!(eval(&with, r), eval(&cond, r), "{cond:?} months {months}");
                    }
                }
            }
        }
        // Every shift but the one past the calendar's end was bound to an instant.
        assert_eq!(bound, 3 * OPS.len() * 2);
    }

    /// `Row` that also answers `micros`, from the same values.
    struct InMicros(Row);

    impl Lookup for InMicros {
        fn get(&self, field: Field) -> Option<Value<'_>> {
            self.0.get(field)
        }

        fn micros(&self, field: Field) -> Option<Option<i64>> {
            match self.0.get(field)? {
                Value::Time(t) => Some(Some(t.timestamp_micros())),
                Value::Missing => Some(None),
                _ => None,
            }
        }
    }

    /// Comparing a time kept in microseconds with an instant decides as comparing the two
    /// instants: at the instant, a nanosecond and a microsecond either side, for a missing
    /// value and a missing row.
    #[test]
    fn times_compared_in_microseconds_decide_as_instants() {
        let expiry = parse("2027-02-28").unwrap();
        let steps = [0, 1, 999, 1000, 1001].into_iter().flat_map(|n| [n, -n]);
        let rights: Vec<Time> = steps
            .map(|n| expiry + chrono::TimeDelta::nanoseconds(n))
            .collect();
        let mut answered = 0;
        for field in [Field::Instance(2), Field::Instance(4)] {
            for op in OPS {
                for right in &rights {
                    let cond = Cond::Compare {
                        field,
                        op,
                        right: Operand::Time(*right),
                    };
                    for r in [row(), Row(None)] {
                        let want = eval(&cond, &r);
                        let micros = InMicros(r);
                        answered += usize::from(micros.micros(field).is_some());
                        assert_eq!(eval(&cond, &micros), want, "{cond:?}");
                    }
                }
            }
        }
        // The present and the missing value went through `micros` (the missing row did not).
        assert_eq!(answered, 2 * OPS.len() * rights.len());
    }

    #[test]
    fn sets_globs_and_lists() {
        let set = |values: &[&str], negate| Cond::In {
            field: Field::Instance(0),
            values: crate::policy::Values::new(values.iter().map(|s| s.to_string()).collect()),
            negate,
        };
        assert_eq!(
            eval(&set(&["cn-beijing", "cn-hangzhou"], false), &row()),
            Truth::True
        );
        assert_eq!(
            eval(&set(&["cn-beijing", "cn-hangzhou"], true), &row()),
            Truth::False
        );
        assert_eq!(eval(&set(&["cn-hongkong"], false), &row()), Truth::False);
        let glob = |p| Cond::Matches {
            field: Field::Instance(0),
            pattern: glob::Pattern::new(p).unwrap(),
        };
        assert_eq!(eval(&glob("cn-*"), &row()), Truth::True);
        assert_eq!(eval(&glob("us-*"), &row()), Truth::False);
        let has = |f, v: &str| Cond::Contains {
            field: Field::Instance(f),
            value: v.into(),
            empty_list: true,
        };
        assert_eq!(eval(&has(3, "security"), &row()), Truth::True);
        assert_eq!(eval(&has(3, "fin"), &row()), Truth::False);
        assert_eq!(eval(&has(3, "SECURITY"), &row()), Truth::True, "any case");
        assert!(list_contains(" Financial ; security", "financial"));
        assert!(!list_contains("financial-review", "financial"));
        // An empty `operation_locks` cell is an empty list; a missing row is unknown.
        assert_eq!(eval(&has(4, "financial"), &row()), Truth::False);
        // Any other empty list cell is an unknown value.
        let other = Cond::Contains {
            field: Field::Instance(4),
            value: "financial".into(),
            empty_list: false,
        };
        assert_eq!(eval(&other, &row()), Truth::Unknown(Field::Instance(4)));
        assert_eq!(
            eval(&has(3, "financial"), &Row(None)),
            Truth::Unknown(Field::Instance(3))
        );
    }
}
