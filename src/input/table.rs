//! One CSV input (the inventory or the requests) parsed by a schema into typed columns. Columns
//! are found by header name in any order; a missing required column or a column named twice
//! refuses the file; a bad cell makes its row malformed and is recorded as a `Problem`.

use super::chunks;
use super::{FileInfo, Problem};
use crate::error::{Error, Result};
use crate::schema::{Column, Domain, Schema, Type, Value, looks_like_formula};
use crate::time::{self, Time};
use rayon::prelude::*;
use std::path::Path;

const NO_FAULT: u32 = u32::MAX;
/// The integer standing for an empty or unparsable integer cell.
const MISSING_INT: i64 = i64::MIN;

/// Typed storage for one column.
enum Store {
    /// All cells back to back; `ends[row]` is where the row's cell ends.
    Str {
        buf: String,
        ends: Vec<usize>,
    },
    Int(Vec<i64>),
    Time(Vec<Option<Time>>),
}

impl Store {
    fn new(ty: Type) -> Store {
        match ty {
            Type::String | Type::List => Store::Str {
                buf: String::new(),
                ends: Vec::new(),
            },
            Type::Integer => Store::Int(Vec::new()),
            Type::Time => Store::Time(Vec::new()),
        }
    }

    fn push_missing(&mut self) {
        match self {
            Store::Str { buf, ends } => ends.push(buf.len()),
            Store::Int(v) => v.push(MISSING_INT),
            Store::Time(v) => v.push(None),
        }
    }
}

/// A parsed input table.
pub struct Table {
    pub info: FileInfo,
    stores: Vec<Store>,
    lines: Vec<u64>,
    /// Per row, the index in `problems` of its first problem, or `NO_FAULT`.
    faults: Vec<u32>,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The line the row starts on (the header is line 1).
    pub fn line(&self, row: usize) -> u64 {
        self.lines[row]
    }

    /// The row's first problem, when it is malformed.
    pub fn fault(&self, row: usize) -> Option<&Problem> {
        let f = self.faults[row];
        (f != NO_FAULT).then(|| &self.problems[f as usize])
    }

    /// A cell as text, exactly as read (empty when missing); for string and list columns.
    pub fn text(&self, col: usize, row: usize) -> &str {
        match &self.stores[col] {
            Store::Str { buf, ends } => {
                let start = if row == 0 { 0 } else { ends[row - 1] };
                &buf[start..ends[row]]
            }
            _ => "",
        }
    }

    pub fn value(&self, col: usize, row: usize) -> Value<'_> {
        match &self.stores[col] {
            Store::Str { .. } => match self.text(col, row) {
                "" => Value::Missing,
                s => Value::Str(s),
            },
            Store::Int(v) => match v[row] {
                MISSING_INT => Value::Missing,
                n => Value::Int(n),
            },
            Store::Time(v) => v[row].map_or(Value::Missing, Value::Time),
        }
    }
}

/// Reads `path` (shown as `shown` in messages) by `schema`.
pub fn load(path: &Path, shown: &str, schema: &Schema) -> Result<Table> {
    let bytes = chunks::read(path, shown)?;
    parse(&bytes, shown, schema)
}

/// Parses CSV bytes by `schema`: the pieces in parallel, the SHA-256 alongside.
pub fn parse(bytes: &[u8], shown: &str, schema: &Schema) -> Result<Table> {
    let (record, start, first_line) = chunks::header(bytes, shown)?;
    let header = header_names(&record, shown)?;
    let positions = locate_columns(&header, schema, shown)?;
    let empty = || Table {
        info: FileInfo {
            path: shown.to_string(),
            ..FileInfo::default()
        },
        stores: schema.columns.iter().map(|c| Store::new(c.ty)).collect(),
        lines: Vec::new(),
        faults: Vec::new(),
        problems: Vec::new(),
    };
    let pieces = chunks::split(
        &bytes[start..],
        first_line,
        rayon::current_num_threads() * 4,
    );
    let (sha256, parts) = rayon::join(
        || chunks::sha256(bytes),
        || {
            pieces
                .par_iter()
                .map(|piece| {
                    let mut part = empty();
                    let mut rdr = chunks::reader(piece.bytes);
                    let mut record = csv::ByteRecord::new();
                    let mut lines = chunks::Lines::new(piece);
                    while rdr
                        .read_byte_record(&mut record)
                        .map_err(|e| Error::refused(format!("{shown}: cannot read: {e}")))?
                    {
                        let line = lines.at(record.position().map_or(0, |p| p.byte()));
                        part.push_row(&record, line, header.len(), &positions, schema);
                    }
                    Ok(part)
                })
                .collect::<Result<Vec<Table>>>()
        },
    );
    let mut table = empty();
    for part in parts? {
        table.append(part);
    }
    table.info.rows = table.lines.len() as u64;
    table.info.sha256 = sha256;
    Ok(table)
}

/// The header cells as text, without a leading byte-order mark.
pub fn header_names(record: &csv::ByteRecord, shown: &str) -> Result<Vec<String>> {
    record
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let cell = if i == 0 {
                cell.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(cell)
            } else {
                cell
            };
            std::str::from_utf8(cell)
                .map(|s| s.trim().to_string())
                .map_err(|_| {
                    Error::refused(format!(
                        "{shown}:1:{}: the header is not valid UTF-8",
                        i + 1
                    ))
                })
        })
        .collect()
}

/// For each schema column, its position in the header; refuses missing required columns and
/// columns named twice, listing every such problem.
fn locate_columns(header: &[String], schema: &Schema, shown: &str) -> Result<Vec<Option<usize>>> {
    let mut problems = Vec::new();
    let positions = schema
        .columns
        .iter()
        .map(|col| {
            let found: Vec<usize> = (0..header.len())
                .filter(|i| col.matches_header(&header[*i]))
                .collect();
            match found.as_slice() {
                [] if col.required => {
                    problems.push(format!("{shown}:1: missing required column `{}`", col.name));
                    None
                }
                [] => None,
                [one] => Some(*one),
                [a, b, ..] => {
                    problems.push(format!(
                        "{shown}:1:{}: headers `{}` and `{}` both name column `{}`",
                        b + 1,
                        header[*a],
                        header[*b],
                        col.name
                    ));
                    None
                }
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(positions)
    } else {
        Err(Error::refused(problems.join("\n")))
    }
}

impl Table {
    /// Adds the rows of a later piece of the same file.
    fn append(&mut self, other: Table) {
        let offset = self.problems.len() as u32;
        for (mine, theirs) in self.stores.iter_mut().zip(other.stores) {
            match (mine, theirs) {
                (Store::Str { buf, ends }, Store::Str { buf: b, ends: e }) => {
                    let base = buf.len();
                    buf.push_str(&b);
                    ends.extend(e.into_iter().map(|x| x + base));
                }
                (Store::Int(a), Store::Int(b)) => a.extend(b),
                (Store::Time(a), Store::Time(b)) => a.extend(b),
                _ => unreachable!("pieces of one file share a schema"),
            }
        }
        self.lines.extend(other.lines);
        self.faults.extend(
            other
                .faults
                .into_iter()
                .map(|f| if f == NO_FAULT { f } else { f + offset }),
        );
        self.problems.extend(other.problems);
    }

    fn push_row(
        &mut self,
        record: &csv::ByteRecord,
        line: u64,
        width: usize,
        positions: &[Option<usize>],
        schema: &Schema,
    ) {
        let first_problem = self.problems.len();
        if record.len() != width {
            self.problem(
                line,
                "",
                format!(
                    "the row has {} fields, the header has {width}",
                    record.len()
                ),
            );
        }
        for (c, col) in schema.columns.iter().enumerate() {
            let raw = positions[c].and_then(|p| record.get(p)).unwrap_or(b"");
            if let Err(msg) = self.push_cell(c, col, raw) {
                self.problem(line, &col.name, msg);
            }
        }
        self.lines.push(line);
        self.faults.push(if self.problems.len() > first_problem {
            first_problem as u32
        } else {
            NO_FAULT
        });
    }

    fn problem(&mut self, line: u64, column: &str, message: String) {
        self.problems.push(Problem {
            file: self.info.path.clone(),
            line,
            column: column.to_string(),
            message,
        });
    }

    /// Stores one cell; on a fault the cell is stored as missing (identifiers keep their text).
    fn push_cell(&mut self, c: usize, col: &Column, raw: &[u8]) -> std::result::Result<(), String> {
        let store = &mut self.stores[c];
        let Ok(text) = std::str::from_utf8(raw) else {
            if col.identifier {
                push_text(store, &String::from_utf8_lossy(raw));
            } else {
                store.push_missing();
            }
            return Err("the value is not valid UTF-8".to_string());
        };
        if text.is_empty() {
            store.push_missing();
            return if col.required {
                Err("a required value is missing".to_string())
            } else {
                Ok(())
            };
        }
        match parse_cell(col, text) {
            Ok(Parsed::Text(s)) => push_text(store, s),
            Ok(Parsed::Int(n)) => push_int(store, n),
            Ok(Parsed::Time(t)) => push_time(store, t),
            Err(msg) => {
                if col.identifier {
                    push_text(store, text);
                } else {
                    store.push_missing();
                }
                return Err(msg);
            }
        }
        Ok(())
    }
}

enum Parsed<'a> {
    Text(&'a str),
    Int(i64),
    Time(Time),
}

fn parse_cell<'a>(col: &Column, text: &'a str) -> std::result::Result<Parsed<'a>, String> {
    if col.identifier && looks_like_formula(text) {
        return Err(format!(
            "identifier begins with `{}`, which a spreadsheet would run as a formula",
            &text[..1]
        ));
    }
    match (col.ty, col.domain) {
        (_, Some(Domain::ChargeType)) => charge_type(text).map(Parsed::Text),
        (_, Some(Domain::InstanceStatus)) => instance_status(text).map(Parsed::Text),
        (Type::Integer, domain) => {
            let n: i64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a whole number"))?;
            if domain == Some(Domain::NonNegative) && n < 0 {
                return Err(format!("`{text}` is negative"));
            }
            if n == MISSING_INT {
                return Err(format!("`{text}` is out of range"));
            }
            Ok(Parsed::Int(n))
        }
        (Type::Time, _) => time::parse(text.trim()).map(Parsed::Time),
        (Type::String | Type::List, _) => Ok(Parsed::Text(text)),
    }
}

/// `PrePaid`/`Subscription` and `PostPaid`/`PayAsYouGo`, any case, normalised to the API's words.
fn charge_type(text: &str) -> std::result::Result<&'static str, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "prepaid" | "subscription" => Ok("PrePaid"),
        "postpaid" | "payasyougo" => Ok("PostPaid"),
        _ => Err(format!(
            "unknown charge type `{text}` (expected PrePaid, PostPaid, Subscription or PayAsYouGo)"
        )),
    }
}

fn instance_status(text: &str) -> std::result::Result<&'static str, String> {
    const STATUSES: [&str; 5] = ["Pending", "Running", "Starting", "Stopping", "Stopped"];
    STATUSES
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| format!("unknown instance status `{text}` (expected one of {STATUSES:?})"))
}

fn push_text(store: &mut Store, s: &str) {
    if let Store::Str { buf, ends } = store {
        buf.push_str(s);
        ends.push(buf.len());
    }
}

fn push_int(store: &mut Store, n: i64) {
    if let Store::Int(v) = store {
        v.push(n);
    }
}

fn push_time(store: &mut Store, t: Time) {
    if let Store::Time(v) = store {
        v.push(Some(t));
    }
}
