//! One CSV input (the inventory or the requests) parsed by a schema into typed columns. Columns
//! are found by header name in any order; a missing required column or a column named twice
//! refuses the file; a bad cell makes its row malformed and is recorded as a `Problem`.

use super::chunks;
use super::{FileInfo, Problem};
use crate::error::{Error, Result};
use crate::schema::{Column, Domain, Schema, Type, Value, looks_like_formula};
use crate::time::{self, Time};
use std::path::Path;

/// The number standing for an empty or unparsable integer or time cell.
const MISSING: i64 = i64::MIN;
/// The longest cell: a longer one makes its row malformed (identifiers included, so a
/// runaway quote cannot smuggle a megabyte into every report).
pub const MAX_CELL: usize = 64 << 10;
/// The most text one column may hold (its offsets are 32-bit).
pub const MAX_COLUMN_BYTES: usize = u32::MAX as usize;

/// Typed storage for one column.
enum Store {
    /// A column the run does not keep: its cells are checked, then dropped.
    Dropped,
    /// All cells back to back; `ends[row]` is where the row's cell ends.
    Str {
        buf: String,
        ends: Vec<u32>,
    },
    Int(Vec<i64>),
    /// Microseconds since 1970 (UTC).
    Time(Vec<i64>),
}

impl Store {
    fn new(col: &Column) -> Store {
        match (col.keep, col.ty) {
            (false, _) => Store::Dropped,
            (true, Type::String | Type::List) => Store::Str {
                buf: String::new(),
                ends: Vec::new(),
            },
            (true, Type::Integer) => Store::Int(Vec::new()),
            (true, Type::Time) => Store::Time(Vec::new()),
        }
    }

    fn push_missing(&mut self) {
        match self {
            Store::Dropped => {}
            Store::Str { buf, ends } => ends.push(buf.len() as u32),
            Store::Int(v) | Store::Time(v) => v.push(MISSING),
        }
    }

    /// Appends a later piece's cells, consuming them.
    fn append(&mut self, other: Store) {
        match (self, other) {
            (Store::Str { buf, ends }, Store::Str { buf: b, ends: e }) => {
                let base = buf.len() as u32;
                buf.push_str(&b);
                ends.extend(e.into_iter().map(|x| x + base));
            }
            (Store::Int(a), Store::Int(b)) | (Store::Time(a), Store::Time(b)) => a.extend(b),
            _ => {}
        }
    }

    fn text_len(&self) -> usize {
        match self {
            Store::Str { buf, .. } => buf.len(),
            _ => 0,
        }
    }
}

/// A parsed input table.
pub struct Table {
    pub info: FileInfo,
    stores: Vec<Store>,
    lines: Vec<u32>,
    /// The malformed rows, ascending, each with the index in `problems` of its first problem.
    faults: Vec<(u32, u32)>,
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
        u64::from(self.lines[row])
    }

    /// The row's first problem, when it is malformed.
    pub fn fault(&self, row: usize) -> Option<&Problem> {
        let row = row as u32;
        let i = self.faults.binary_search_by_key(&row, |f| f.0).ok()?;
        Some(&self.problems[self.faults[i].1 as usize])
    }

    /// A cell as text, exactly as read (empty when missing); for string and list columns.
    pub fn text(&self, col: usize, row: usize) -> &str {
        match &self.stores[col] {
            Store::Str { buf, ends } => {
                let start = if row == 0 { 0 } else { ends[row - 1] as usize };
                &buf[start..ends[row] as usize]
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
                MISSING => Value::Missing,
                n => Value::Int(n),
            },
            Store::Time(v) => match v[row] {
                MISSING => Value::Missing,
                us => Time::from_timestamp_micros(us).map_or(Value::Missing, Value::Time),
            },
            Store::Dropped => Value::Missing,
        }
    }
}

/// Reads `path` (shown as `shown` in messages) by `schema`.
pub fn load(path: &Path, shown: &str, schema: &Schema) -> Result<Table> {
    parse(chunks::open(path, shown)?, shown, schema)
}

/// Parses CSV by `schema`, a block at a time, the pieces of each block in parallel.
pub fn parse(input: impl std::io::Read, shown: &str, schema: &Schema) -> Result<Table> {
    let empty = || Table {
        info: FileInfo {
            path: shown.to_string(),
            ..FileInfo::default()
        },
        stores: schema.columns.iter().map(Store::new).collect(),
        lines: Vec::new(),
        faults: Vec::new(),
        problems: Vec::new(),
    };
    let prepare = |record: &csv::ByteRecord| {
        let header = header_names(record, shown)?;
        Ok((header.len(), locate_columns(&header, schema, shown)?))
    };
    let streamed = chunks::stream(input, shown, prepare, |(width, positions), piece| {
        let mut part = empty();
        let mut rdr = chunks::reader(piece.bytes);
        let mut record = csv::ByteRecord::new();
        let mut lines = chunks::Lines::new(piece);
        let mut last = (0, 0);
        while rdr
            .read_byte_record(&mut record)
            .map_err(|e| Error::refused(format!("{shown}: cannot read: {e}")))?
        {
            let at = record.position().map_or(0, |p| p.byte());
            let line = lines.at(at);
            last = (at as usize, line);
            part.push_row(&record, line, *width, positions, schema);
        }
        if chunks::unclosed_quote(piece.bytes, last.0) {
            return Err(unclosed(shown, last.1));
        }
        Ok(part)
    })?;
    let parts = streamed.parts.into_iter().collect::<Result<Vec<Table>>>()?;
    let mut table = merge(empty(), parts, shown)?;
    table.info.rows = table.lines.len() as u64;
    table.info.sha256 = streamed.sha256;
    Ok(table)
}

/// The refusal for a quoted field that is never closed.
pub fn unclosed(shown: &str, line: u64) -> Error {
    Error::refused(format!(
        "{shown}:{line}: a quoted field that starts on this line is never closed, so it would swallow every line after it"
    ))
}

/// Joins the pieces column by column, dropping each piece's column as soon as it is copied, so
/// the peak is one table plus one column rather than two tables.
fn merge(mut table: Table, mut parts: Vec<Table>, shown: &str) -> Result<Table> {
    for (c, store) in table.stores.iter_mut().enumerate() {
        let total: usize = parts.iter().map(|p| p.stores[c].text_len()).sum();
        if total > MAX_COLUMN_BYTES {
            return Err(Error::refused(format!(
                "{shown}: a column holds more than {MAX_COLUMN_BYTES} bytes, more than one run can take"
            )));
        }
        for part in &mut parts {
            store.append(std::mem::replace(&mut part.stores[c], Store::Dropped));
        }
    }
    for part in parts {
        let (rows, problems) = (table.lines.len() as u32, table.problems.len() as u32);
        table.lines.extend(part.lines);
        table.faults.extend(
            part.faults
                .into_iter()
                .map(|(r, p)| (r + rows, p + problems)),
        );
        table.problems.extend(part.problems);
    }
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
        if self.problems.len() > first_problem {
            self.faults
                .push((self.lines.len() as u32, first_problem as u32));
        }
        self.lines.push(line.min(u64::from(u32::MAX)) as u32);
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
        if raw.len() > MAX_CELL {
            store.push_missing();
            return Err(format!(
                "the value is {} bytes long, more than the {MAX_CELL} a cell may have",
                raw.len()
            ));
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            if col.identifier {
                push_text(store, &String::from_utf8_lossy(raw));
            } else {
                store.push_missing();
            }
            return Err("the value is not valid UTF-8".to_string());
        };
        // A cell of spaces is as empty as an empty one: it must not pass an `exists` test.
        if text.trim().is_empty() {
            store.push_missing();
            return if col.required {
                Err("a required value is missing".to_string())
            } else {
                Ok(())
            };
        }
        match parse_cell(col, text) {
            Ok(Parsed::Text(s)) => push_text(store, s),
            Ok(Parsed::Owned(s)) => push_text(store, &s),
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
    Owned(String),
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
        (_, Some(Domain::RegionId)) => Ok(Parsed::Owned(text.trim().to_ascii_lowercase())),
        (Type::Integer, domain) => {
            let n: i64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a whole number"))?;
            if domain == Some(Domain::NonNegative) && n < 0 {
                return Err(format!("`{text}` is negative"));
            }
            if n == MISSING {
                return Err(format!("`{text}` is out of range"));
            }
            Ok(Parsed::Int(n))
        }
        (Type::Time, _) => time::parse(text.trim()).map(Parsed::Time),
        // Identifiers are kept exactly as read; other text loses surrounding spaces.
        (Type::String | Type::List, _) if col.identifier => Ok(Parsed::Text(text)),
        (Type::String | Type::List, _) => Ok(Parsed::Text(text.trim())),
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
        // INVARIANT: `merge` refuses a column over `MAX_COLUMN_BYTES`; until then a wrapped
        // offset is never read.
        ends.push(buf.len() as u32);
    }
}

fn push_int(store: &mut Store, n: i64) {
    if let Store::Int(v) = store {
        v.push(n);
    }
}

fn push_time(store: &mut Store, t: Time) {
    if let Store::Time(v) = store {
        v.push(t.timestamp_micros());
    }
}
