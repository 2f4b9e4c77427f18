//! The per-instance rules' conditions decided for 64 inventory rows at a time: each leaf
//! (a comparison, a set, an `exists`) runs down its column for the block, and `all`, `any` and
//! `not` combine the blocks' truths as bit masks, so the tree is walked once a block instead of
//! once a row. It decides exactly what `cond::eval` decides for each row (only whether the truth
//! was unknown, not which field made it so: the verdicts keep no more).

use super::Env;
use super::cond::{self, Truth, ordered, truth};
use crate::input::Table;
use crate::policy::{Cond, Field, Operand};
use crate::schema::Value;
use crate::time::Time;

/// The most rows a block holds: one bit each in a `u64`.
pub const BLOCK: usize = 64;

/// The truth of a condition for each row of a block: bit `i` for row `first + i`. A row that
/// is neither true nor unknown is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masks {
    pub truth: u64,
    pub unknown: u64,
}

/// The inventory rows a block is decided for.
#[derive(Clone, Copy)]
pub struct Block<'a> {
    pub instances: &'a Table,
    pub as_of: Time,
    pub first: usize,
    /// How many rows, 1 to `BLOCK`.
    pub len: usize,
}

impl Block<'_> {
    /// Every row of the block.
    fn all(&self) -> u64 {
        // No row at all for an empty block (a shift by 64 would overflow).
        u64::MAX.checked_shr((BLOCK - self.len) as u32).unwrap_or(0)
    }

    fn falses(&self, m: Masks) -> u64 {
        self.all() & !m.truth & !m.unknown
    }

    /// `truth(row)` for each row, as masks.
    fn each(&self, truth: impl Fn(usize) -> Truth) -> Masks {
        let mut m = Masks {
            truth: 0,
            unknown: 0,
        };
        for i in 0..self.len {
            match truth(self.first + i) {
                Truth::True => m.truth |= 1 << i,
                Truth::Unknown(_) => m.unknown |= 1 << i,
                Truth::False => {}
            }
        }
        m
    }

    /// For a word column, the truth of `decide(word)` for each word of its list, then each
    /// row's from its word's place; a missing word is `missing`.
    fn by_word(
        &self,
        col: usize,
        list: &[&str],
        missing: Truth,
        decide: impl Fn(&str) -> Truth,
    ) -> Masks {
        let truths: Vec<Truth> = list.iter().map(|w| decide(w)).collect();
        self.each(|row| match self.instances.word_place(col, row) {
            Some(i) => truths[i],
            None => missing,
        })
    }
}

/// The truth of `cond` for every row of `block`.
pub fn eval(cond: &Cond, block: &Block<'_>) -> Masks {
    match cond {
        Cond::All(parts) => {
            let (mut truth, mut falses) = (block.all(), 0);
            for part in parts {
                let m = eval(part, block);
                truth &= m.truth;
                falses |= block.falses(m);
            }
            Masks {
                truth,
                unknown: block.all() & !truth & !falses,
            }
        }
        Cond::Any(parts) => {
            let (mut truth, mut falses) = (0, block.all());
            for part in parts {
                let m = eval(part, block);
                truth |= m.truth;
                falses &= block.falses(m);
            }
            Masks {
                truth,
                unknown: block.all() & !truth & !falses,
            }
        }
        Cond::Not(inner) => {
            let m = eval(inner, block);
            Masks {
                truth: block.falses(m),
                unknown: m.unknown,
            }
        }
        leaf => eval_leaf(leaf, block),
    }
}

fn eval_leaf(leaf: &Cond, b: &Block<'_>) -> Masks {
    let inst = b.instances;
    let unknown = |c| Truth::Unknown(Field::Instance(c));
    match *leaf {
        Cond::Exists(Field::Instance(c)) => b.each(|row| truth(inst.has_value(c, row))),
        Cond::Empty(Field::Instance(c)) => b.each(|row| truth(!inst.has_value(c, row))),
        Cond::Compare {
            field: Field::Instance(c),
            op,
            right: Operand::Time(t),
        } if inst.is_time(c) => {
            // As `cond::eval` compares them: in nanoseconds, which an instant may carry.
            let nanos =
                i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
            b.each(|row| match inst.micros(c, row) {
                Some(Some(us)) => ordered(op, (i128::from(us) * 1000).cmp(&nanos)),
                _ => unknown(c),
            })
        }
        Cond::Compare {
            field: Field::Instance(c),
            op,
            right: Operand::Str(ref s),
        } => match inst.vocabulary(c) {
            Some(list) => b.by_word(c, list, unknown(c), |w| ordered(op, w.cmp(s))),
            None => b.each(|row| match inst.value(c, row) {
                Value::Str(v) => ordered(op, v.cmp(s)),
                _ => unknown(c),
            }),
        },
        Cond::Compare {
            field: Field::Instance(c),
            op,
            right: Operand::Int(n),
        } => b.each(|row| match inst.value(c, row) {
            Value::Int(v) => ordered(op, v.cmp(&n)),
            _ => unknown(c),
        }),
        Cond::In {
            field: Field::Instance(c),
            ref values,
            negate,
        } => {
            let found = |v: &str| truth(values.contains(v) != negate);
            match inst.vocabulary(c) {
                Some(list) => b.by_word(c, list, unknown(c), found),
                None => b.each(|row| match inst.value(c, row) {
                    Value::Str(v) => found(v),
                    _ => unknown(c),
                }),
            }
        }
        Cond::Contains {
            field: Field::Instance(c),
            ref value,
            empty_list,
        } => {
            // An empty `operation_locks` cell is an empty list (SPEC); any other empty list
            // cell is an unknown value (as `cond::eval` decides).
            let empty = if empty_list { Truth::False } else { unknown(c) };
            let has = |list: &str| truth(cond::list_contains(list, value));
            match inst.vocabulary(c) {
                Some(list) => b.by_word(c, list, empty, has),
                None => b.each(|row| match inst.value(c, row) {
                    Value::Missing => empty,
                    Value::Str(v) => has(v),
                    _ => unknown(c),
                }),
            }
        }
        // Anything else (a glob, a comparison with another field, a value that is not the
        // instance's) row by row, as `cond::eval` decides it.
        _ => b.each(|row| cond::eval(leaf, &Env::for_instance(inst, b.as_of, row))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::table;
    use crate::policy::CmpOp;
    use crate::schema::Schema;
    use crate::time::parse;

    /// An inventory of `n` rows whose every column is kept, its cells drawn from a few values
    /// each (an empty or malformed cell is missing).
    fn inventory(rng: &mut fastrand::Rng, n: usize) -> (Schema, Table) {
        let mut schema = Schema::instances();
        for c in &mut schema.columns {
            c.keep = true;
        }
        let pick = |rng: &mut fastrand::Rng, values: &[&str]| {
            values[rng.usize(..values.len())].to_string()
        };
        let mut text = schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        for i in 0..n {
            let times = [
                "2026-11-27T00:00Z",
                "2027-02-27T00:00Z",
                "2027-02-27T00:00:01Z",
                "2025-01-01T00:00Z",
                "",
                "2099-12-31T15:59Z",
            ];
            let row = [
                format!("i-{i:06}"),
                format!("1{:03}", rng.usize(..5)),
                pick(
                    rng,
                    &[
                        "cn-beijing",
                        "cn-hongkong",
                        "us-west-1",
                        "cn-hangzhou",
                        "",
                        "CN-Beijing",
                    ],
                ),
                pick(rng, &["PrePaid", "PostPaid", "", "Subscription"]),
                pick(rng, &times),
                pick(rng, &times),
                pick(rng, &["Running", "Stopped", "", "Pending"]),
                pick(rng, &["0", "1", "5", "", "100"]),
                pick(rng, &["47.1.2.3", "", "10.0.0.1"]),
                pick(rng, &["", "8.8.8.8"]),
                pick(
                    rng,
                    &[
                        "",
                        "financial",
                        "security",
                        "security;financial",
                        " financial ;x",
                    ],
                ),
            ];
            text.push_str(&row.join(","));
            text.push('\n');
        }
        let table = table::parse(text.as_bytes(), "i.csv", &schema).unwrap();
        (schema, table)
    }

    /// A random condition over the inventory's columns, `depth` levels deep at most.
    fn condition(rng: &mut fastrand::Rng, columns: usize, depth: u32) -> Cond {
        let field = Field::Instance(rng.usize(..columns));
        let op = CmpOp::ALL[rng.usize(..CmpOp::ALL.len())];
        let word = |rng: &mut fastrand::Rng| {
            [
                "PrePaid",
                "PostPaid",
                "cn-beijing",
                "Running",
                "financial",
                "5",
                "",
                "security",
            ][rng.usize(..8)]
            .to_string()
        };
        let instant = |rng: &mut fastrand::Rng| {
            let t =
                parse(["2026-11-27T00:00Z", "2027-02-27T00:00:00Z", "2025-06-01"][rng.usize(..3)])
                    .unwrap();
            t + chrono::TimeDelta::nanoseconds([0, 1, -1, 1000, -1000][rng.usize(..5)])
        };
        if depth > 0 && rng.u8(..3) == 0 {
            let parts = (0..rng.usize(1..4))
                .map(|_| condition(rng, columns, depth - 1))
                .collect();
            return match rng.u8(..3) {
                0 => Cond::All(parts),
                1 => Cond::Any(parts),
                _ => Cond::Not(Box::new(condition(rng, columns, depth - 1))),
            };
        }
        match rng.u8(..10) {
            0 => Cond::Exists(field),
            1 => Cond::Empty(field),
            2 => Cond::Compare {
                field,
                op,
                right: Operand::Time(instant(rng)),
            },
            3 => Cond::Compare {
                field,
                op,
                right: Operand::Int(rng.i64(-1..7)),
            },
            4 => Cond::Compare {
                field,
                op,
                right: Operand::Str(word(rng)),
            },
            5 => {
                let values = (0..rng.usize(..4)).map(|_| word(rng)).collect();
                Cond::In {
                    field,
                    values: crate::policy::Values::new(values),
                    negate: rng.bool(),
                }
            }
            6 => Cond::Contains {
                field,
                value: word(rng),
                empty_list: rng.bool(),
            },
            7 => Cond::Matches {
                field,
                pattern: glob::Pattern::new("cn-*").unwrap(),
            },
            8 => Cond::Compare {
                field,
                op,
                right: Operand::Field {
                    field: Field::Instance(rng.usize(..columns)),
                    months: rng.i32(-3..4),
                },
            },
            _ => Cond::Exists(Field::AsOf),
        }
    }

    /// Any condition, on any run of rows: each row's truth is `cond::eval`'s for that row.
    #[test]
    fn a_block_decides_each_row_as_cond_eval_does() {
        let mut rng = fastrand::Rng::with_seed(5);
        let (schema, instances) = inventory(&mut rng, 300);
        let as_of = parse("2026-11-27T00:00:00Z").unwrap();
        let mut seen = [0usize; 3];
        for _ in 0..3000 {
            let cond = condition(&mut rng, schema.columns.len(), 3);
            let first = rng.usize(..instances.len());
            let len = rng.usize(1..=BLOCK.min(instances.len() - first));
            let block = Block {
                instances: &instances,
                as_of,
                first,
                len,
            };
            let m = eval(&cond, &block);
            assert_eq!(m.truth & m.unknown, 0, "{cond:?}");
            assert_eq!(
                (m.truth | m.unknown).checked_shr(len as u32).unwrap_or(0),
                0,
                "{cond:?}: bits past the block"
            );
            for i in 0..len {
                let want = cond::eval(&cond, &Env::for_instance(&instances, as_of, first + i));
                let got = match (m.truth >> i & 1, m.unknown >> i & 1) {
                    (1, _) => Truth::True,
                    (_, 1) => Truth::Unknown(Field::AsOf),
                    _ => Truth::False,
                };
                let short = |t: Truth| match t {
                    Truth::True => 0,
                    Truth::False => 1,
                    Truth::Unknown(_) => 2,
                };
                assert_eq!(short(got), short(want), "{cond:?}, row {}", first + i);
                seen[short(want)] += 1;
            }
        }
        // The conditions were true, false and unknown on many rows each.
        assert!(seen.iter().all(|n| *n > 5000), "{seen:?}");
    }
}
