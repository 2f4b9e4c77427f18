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
/// The most text one piece of a file may hold (its offsets are 32-bit); pieces are at most a
/// block, or a quoted file's 1 GiB, so this is never reached by a file the reader accepts.
const MAX_PIECE_TEXT: usize = u32::MAX as usize;

/// Where one schema column's cells live.
#[derive(Clone, Copy)]
enum Slot {
    /// A column the run does not keep: its cells are checked, then dropped.
    Dropped,
    /// The k-th text cell of a row.
    Text(usize),
    /// The k-th word of a row: a cell whose every value is one of a fixed list of words (the
    /// API's charge types and statuses), kept as its place in the list, not as text.
    Word(usize, &'static [&'static str]),
    /// The k-th number of a row, an integer.
    Int(usize),
    /// The k-th number of a row, a time in microseconds since 1970 (UTC).
    Time(usize),
}

/// The cells a table keeps, grouped by row so that one row's cells sit side by side in memory:
/// a lookup that jumps to a random row (the inventory, probed by the requests) touches a few
/// cache lines, not one or two per column.
#[derive(Default)]
struct Cells {
    /// Text of the rows, in pieces as they were parsed (never copied into one buffer).
    texts: Vec<String>,
    /// Per row, `HEAD + text columns + word columns + 4 × number columns` 16-bit words: the
    /// piece its text is in and where its text starts (two words each, low first), then where
    /// each of its text cells ends, counted from the row's start, then its words (each its
    /// place in its list plus one, 0 when missing), then its numbers (four words each, low
    /// first; `MISSING` when empty or unparsable), so that a random row's cells other than its
    /// text sit in one place. A row whose text is longer than 16 bits can count is marked
    /// `WIDE` in its piece number and has its ends in `wide`.
    bounds: Vec<u16>,
    /// The ends (offsets into the piece's text) of the cells of the `WIDE` rows, by row.
    wide: Vec<(u32, Vec<u32>)>,
    /// The words of the row being read.
    row_words: Vec<u16>,
    /// The numbers of the row being read.
    row_numbers: Vec<i64>,
    /// The ends of the cells of the row being read.
    row_ends: Vec<u32>,
    /// The number of the piece being read (`chunks::Piece::number`): its rows' bounds name it
    /// as they are read, so that a piece's bounds join the table's as they are.
    piece: u32,
    /// How many bytes of the file the piece being read holds.
    bytes: usize,
}

/// A row's entry in `Cells::bounds`, decoded.
struct Bounds<'a> {
    /// Where each text cell ends, counted from `start` (zeros for a wide row).
    ends: &'a [u16],
    piece: usize,
    start: usize,
}

/// The 16-bit words before a row's cell ends: its piece and its start.
const HEAD: usize = 4;
/// The mark, in a row's piece number, of a row whose cell ends are in `Cells::wide`.
const WIDE: u32 = 1 << 31;

/// Two 16-bit words (low first) as one 32-bit number.
fn join16(lo: u16, hi: u16) -> u32 {
    u32::from(lo) | u32::from(hi) << 16
}

/// A 32-bit number as two 16-bit words, low first.
fn split16(n: u32) -> [u16; 2] {
    [n as u16, (n >> 16) as u16]
}

/// How many cells of each kind a table keeps per row.
#[derive(Clone, Copy)]
struct Widths {
    texts: usize,
    words: usize,
    numbers: usize,
    /// The 16-bit words of a row in `Cells::bounds`: `HEAD + texts + words + 4 × numbers`,
    /// kept rather than summed on every read of a cell.
    stride: usize,
}

/// A parsed input table.
pub struct Table {
    pub info: FileInfo,
    slots: Vec<Slot>,
    /// Text, word and number cells kept per row.
    widths: Widths,
    cells: Cells,
    /// How many rows the table holds.
    rows: usize,
    /// The lines rows start on, as runs of rows on consecutive lines: each run's first row and
    /// its line, rows ascending (a file without blank lines or line ends inside quotes is one
    /// run: each piece's runs continue the one before), so that no number is kept per row for
    /// the rare message that names one.
    lines: Vec<(u32, u64)>,
    /// The malformed rows, ascending, each with the index in `problems` of its first problem.
    faults: Vec<(u32, u32)>,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
    /// Whether every piece was plain (`PieceRead::plain`, input/chunks/records.rs): then no
    /// cell holds a comma, a quote or a line end, and none needs quoting when written out.
    plain: bool,
    /// The rows whose instance id (`Domain::InstanceId`) is not in its loose form
    /// (`index::loose`), ascending: noted as the rows are read, in parallel, where the data is
    /// at hand; almost always none.
    odd_ids: Vec<u32>,
}

impl Table {
    fn empty(shown: &str, schema: &Schema) -> Table {
        let (mut texts, mut words, mut numbers) = (0, 0, 0);
        let slots = schema
            .columns
            .iter()
            .map(|col| match (col.keep, col.ty, vocabulary(col)) {
                (false, ..) => Slot::Dropped,
                (true, Type::String, Some(list)) => {
                    words += 1;
                    Slot::Word(words - 1, list)
                }
                (true, Type::String | Type::List, _) => {
                    texts += 1;
                    Slot::Text(texts - 1)
                }
                (true, Type::Integer, _) => {
                    numbers += 1;
                    Slot::Int(numbers - 1)
                }
                (true, Type::Time, _) => {
                    numbers += 1;
                    Slot::Time(numbers - 1)
                }
            })
            .collect();
        Table {
            info: FileInfo {
                path: shown.to_string(),
                ..FileInfo::default()
            },
            slots,
            widths: Widths {
                texts,
                words,
                numbers,
                stride: HEAD + texts + words + 4 * numbers,
            },
            cells: Cells {
                texts: vec![String::new()],
                ..Cells::default()
            },
            rows: 0,
            lines: Vec::new(),
            faults: Vec::new(),
            problems: Vec::new(),
            plain: true,
            odd_ids: Vec::new(),
        }
    }

    /// Makes room for the rows of `piece` at once, so that no buffer is copied as it grows: a
    /// cell's text is never longer than its CSV form, and rows are at most as many as line ends
    /// plus one.
    fn reserve(&mut self, piece: &chunks::Piece) {
        let rows = piece.lines as usize + 1;
        self.cells.texts[0].reserve_exact(piece.bytes.len());
        self.cells.bounds.reserve_exact(rows * self.stride());
    }

    /// The 16-bit words of a row in `Cells::bounds`.
    fn stride(&self) -> usize {
        self.widths.stride
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no cell holds a comma, a quote or a line end (the file had no quote, no carriage
    /// return but in CRLF line ends, and was valid UTF-8), so that none needs quoting when
    /// written out.
    pub fn plain(&self) -> bool {
        self.plain
    }

    /// The line the row starts on (the header is line 1).
    pub fn line(&self, row: usize) -> u64 {
        let run = self
            .lines
            .partition_point(|(first, _)| *first as usize <= row);
        // INVARIANT: the first row starts a run, so any row has one at or before it.
        let (first, line) = self.lines[run - 1];
        line + (row - first as usize) as u64
    }

    /// The row's first problem, when it is malformed.
    pub fn fault(&self, row: usize) -> Option<&Problem> {
        let row = row as u32;
        let i = self.faults.binary_search_by_key(&row, |f| f.0).ok()?;
        Some(&self.problems[self.faults[i].1 as usize])
    }

    /// A cell as text, exactly as read (empty when missing); for string and list columns.
    #[inline]
    pub fn text(&self, col: usize, row: usize) -> &str {
        match self.slots[col] {
            Slot::Text(k) => self.text_cell(k, row),
            Slot::Word(k, list) => self.word(k, row).map_or("", |i| list[i]),
            _ => "",
        }
    }

    /// A row's k-th text cell. Only the row's words up to this cell's end are read, in place
    /// (`bounds` decodes them all): this runs for every cell a lookup, a rule or a report reads,
    /// so it is inlined into them, and its rare case (a `WIDE` row) is not.
    #[inline]
    fn text_cell(&self, k: usize, row: usize) -> &str {
        let at = row * self.stride();
        let b = &self.cells.bounds[at..=at + HEAD + k];
        let head: &[u16; HEAD] = b.first_chunk().expect("a row's bounds start with its head");
        let piece = join16(head[0], head[1]);
        let start = join16(head[2], head[3]) as usize;
        if piece & WIDE != 0 {
            return self.wide_text(row, k, start, piece);
        }
        // A cell starts where the one before it ends; the first, where the row does.
        let (from, to) = match b[HEAD - 1..] {
            [.., from, to] if k > 0 => (from, to),
            [.., to] => (0, to),
            [] => unreachable!("the slice holds the head"),
        };
        &self.cells.texts[piece as usize][start + usize::from(from)..start + usize::from(to)]
    }

    /// `text_cell` for a `WIDE` row.
    #[cold]
    #[inline(never)]
    fn wide_text(&self, row: usize, k: usize, start: usize, piece: u32) -> &str {
        let (from, to) = self.wide_cell(row, k, start);
        &self.cells.texts[(piece & !WIDE) as usize][from..to]
    }

    /// The place in its list of a row's k-th word, `None` when the cell is missing.
    fn word(&self, k: usize, row: usize) -> Option<usize> {
        let at = row * self.stride() + HEAD + self.widths.texts + k;
        usize::from(self.cells.bounds[at]).checked_sub(1)
    }

    /// A row's bounds, decoded.
    fn bounds(&self, row: usize) -> Bounds<'_> {
        let stride = self.stride();
        let b = &self.cells.bounds[row * stride..(row + 1) * stride];
        let piece = join16(b[0], b[1]);
        Bounds {
            ends: &b[HEAD..HEAD + self.widths.texts],
            piece: (piece & !WIDE) as usize,
            start: join16(b[2], b[3]) as usize,
        }
    }

    /// Where cell `k` of a `WIDE` row starts and ends in its piece's text.
    fn wide_cell(&self, row: usize, k: usize, start: usize) -> (usize, usize) {
        let row = row as u32;
        let i = self
            .cells
            .wide
            .binary_search_by_key(&row, |w| w.0)
            .expect("a wide row has its ends");
        let ends = &self.cells.wide[i].1;
        let from = if k == 0 { start } else { ends[k - 1] as usize };
        (from, ends[k] as usize)
    }

    /// Prefetches a little of each row's cells, so that the rows are in cache when they are read
    /// next: first every row's bounds, then every row's text (its first and last bytes: a row's
    /// text spans a cache line or two), so that the misses of each step overlap.
    pub fn warm(&self, rows: &[usize]) {
        let rows = || rows.iter().copied().filter(|r| *r < self.len());
        rows().for_each(|row| self.prefetch_row(row));
        for row in rows() {
            let Bounds {
                ends, piece, start, ..
            } = self.bounds(row);
            let text = self.cells.texts[piece].as_bytes();
            let last = start + ends.last().map_or(0, |e| usize::from(*e)).saturating_sub(1);
            for at in [start, last] {
                if let Some(byte) = text.get(at) {
                    super::prefetch(byte);
                }
            }
        }
    }

    /// The rows whose instance id is not in its loose form, ascending (see `odd_ids`).
    pub fn odd_id_rows(&self) -> &[u32] {
        &self.odd_ids
    }

    /// Prefetches the start of a row's bounds: a batch of lookups about to read many rows calls
    /// this for each first, so that their misses overlap.
    pub fn prefetch_row(&self, row: usize) {
        if let Some(word) = self.cells.bounds.get(row * self.stride()) {
            super::prefetch(word);
        }
    }

    /// Prefetches the start of a text cell, like `prefetch_row` (its bounds are read now).
    pub fn prefetch_text(&self, col: usize, row: usize) {
        if let Some(byte) = self.text(col, row).as_bytes().first() {
            super::prefetch(byte);
        }
    }

    fn number(&self, k: usize, row: usize) -> i64 {
        let at = row * self.stride() + HEAD + self.widths.texts + self.widths.words + 4 * k;
        let w = &self.cells.bounds[at..at + 4];
        let lo = u64::from(join16(w[0], w[1]));
        let hi = u64::from(join16(w[2], w[3]));
        (hi << 32 | lo) as i64
    }

    /// A time cell as the microseconds since 1970 it is kept as (`Some(None)` when missing);
    /// `None` for a column of another type. `value` gives the same instant.
    pub fn micros(&self, col: usize, row: usize) -> Option<Option<i64>> {
        match self.slots[col] {
            Slot::Time(k) => Some(match self.number(k, row) {
                MISSING => None,
                // INVARIANT: a time cell holds `MISSING` or an instant's microseconds
                // (`push_time`), which `value` turns back into that instant.
                us => Some(us),
            }),
            _ => None,
        }
    }

    /// Whether a cell has a value: `value(col, row) != Value::Missing`, without slicing a text
    /// cell (only its two ends are read).
    pub fn has_value(&self, col: usize, row: usize) -> bool {
        match self.slots[col] {
            Slot::Text(k) => {
                let at = row * self.stride();
                let b = &self.cells.bounds[at..at + HEAD + k + 1];
                if join16(b[0], b[1]) & WIDE != 0 {
                    return !self.text(col, row).is_empty();
                }
                let from = if k == 0 { 0 } else { b[HEAD + k - 1] };
                b[HEAD + k] > from
            }
            Slot::Word(k, _) => self.word(k, row).is_some(),
            Slot::Int(k) => self.number(k, row) != MISSING,
            Slot::Time(_) => self.value(col, row) != Value::Missing,
            Slot::Dropped => false,
        }
    }

    /// A word column's list of words; `None` for a column of another kind.
    pub fn vocabulary(&self, col: usize) -> Option<&'static [&'static str]> {
        match self.slots[col] {
            Slot::Word(_, list) => Some(list),
            _ => None,
        }
    }

    /// A word column's cell as its place in `vocabulary(col)`, `None` when missing (or for a
    /// column of another kind).
    pub fn word_place(&self, col: usize, row: usize) -> Option<usize> {
        match self.slots[col] {
            Slot::Word(k, _) => self.word(k, row),
            _ => None,
        }
    }

    /// Whether a column keeps times (so that `micros` answers for it).
    pub fn is_time(&self, col: usize) -> bool {
        matches!(self.slots[col], Slot::Time(_))
    }

    pub fn value(&self, col: usize, row: usize) -> Value<'_> {
        match self.slots[col] {
            Slot::Text(_) | Slot::Word(..) => match self.text(col, row) {
                "" => Value::Missing,
                s => Value::Str(s),
            },
            Slot::Int(k) => match self.number(k, row) {
                MISSING => Value::Missing,
                n => Value::Int(n),
            },
            Slot::Time(k) => match self.number(k, row) {
                MISSING => Value::Missing,
                us => Time::from_timestamp_micros(us).map_or(Value::Missing, Value::Time),
            },
            Slot::Dropped => Value::Missing,
        }
    }
}

/// Reads `path` (shown as `shown` in messages) by `schema`.
pub fn load(path: &Path, shown: &str, schema: &Schema) -> Result<Table> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    parse_sized(chunks::open(path, shown)?, size, shown, schema)
}

/// Parses CSV by `schema`, a block at a time, the pieces of each block in parallel.
#[cfg(test)]
pub fn parse(input: impl std::io::Read + Send, shown: &str, schema: &Schema) -> Result<Table> {
    parse_sized(input, 0, shown, schema)
}

/// `parse`, of an input of about `size` bytes (0: unknown). The table's bounds get room for the
/// rows that size holds at the first piece's bytes per row, and the pieces' own bounds are
/// recycled once appended: a buffer this large is a mapping of its own, whose every growth
/// or release waits for the other cores (a TLB flush), and whose new pages are faults.
fn parse_sized(
    input: impl std::io::Read + Send,
    size: u64,
    shown: &str,
    schema: &Schema,
) -> Result<Table> {
    let prepare = |record: &csv::ByteRecord| {
        let header = header_names(record, shown)?;
        Ok((header.len(), locate_columns(&header, schema, shown)?))
    };
    // The first piece that failed, in file order; pieces after it are not kept.
    let mut failed = None;
    let mut table = Table::empty(shown, schema);
    table.cells.texts.clear();
    let spare: std::sync::Mutex<Vec<Vec<u16>>> = Default::default();
    let parse = |(width, positions): &(usize, Vec<Option<usize>>), piece: &chunks::Piece| {
        let mut part = Table::empty(shown, schema);
        part.cells.piece = piece.number;
        part.cells.bytes = piece.bytes.len();
        if let Some(bounds) = spare.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            part.cells.bounds = bounds;
        }
        part.reserve(piece);
        let read = chunks::read_records(piece, |cells, line| {
            part.push_row(cells, line, *width, positions, schema);
        })
        .map_err(|(e, line)| Error::refused(format!("{shown}:{line}: cannot read: {e}")))?;
        let (start, line) = read.last;
        if let Some(field) = chunks::unclosed_quote(piece.bytes, start) {
            return Err(unclosed(shown, line, field));
        }
        part.plain = read.plain;
        // Not shrunk to fit: that moves or trims its mapping, a wait for the other cores (a TLB
        // flush), and the unused end of its room was never touched, so it costs no memory.
        if part.cells.texts[0].len() > MAX_PIECE_TEXT {
            return Err(Error::refused(format!(
                "{shown}: a piece of the file holds more than {MAX_PIECE_TEXT} bytes of text, more than one run can take"
            )));
        }
        Ok(part)
    };
    let keep = |part: Result<Table>| match part {
        Ok(part) if failed.is_none() => {
            if table.cells.texts.is_empty() {
                reserve_rows(&mut table, &part, size);
            }
            let spent = append(&mut table, part);
            spare.lock().unwrap_or_else(|e| e.into_inner()).push(spent);
        }
        Ok(_) => {}
        Err(e) => {
            failed.get_or_insert(e);
        }
    };
    let streamed = chunks::stream(input, shown, prepare, parse, keep)?;
    if let Some(e) = failed {
        return Err(e);
    }
    if table.cells.texts.is_empty() {
        table.cells.texts.push(String::new());
    }
    table.info.rows = table.rows as u64;
    table.info.sha256 = streamed.sha256;
    Ok(table)
}

/// `1 field`, `3 fields`.
pub fn fields(n: usize) -> String {
    match n {
        1 => "1 field".to_string(),
        n => format!("{n} fields"),
    }
}

/// The refusal for a quoted field that is never closed: the line its row starts on, and the
/// field (1 for the first) whose quote opens it.
pub fn unclosed(shown: &str, line: u64, field: usize) -> Error {
    unclosed_in(shown, line, field, "the row that starts on this line")
}

/// `unclosed`, for a field of `row` (the header, or the row that starts on `line`).
pub fn unclosed_in(shown: &str, line: u64, field: usize, row: &str) -> Error {
    Error::refused(format!(
        "{shown}:{line}:{field}: field {field} of {row} opens a quote that is never closed: it \
         runs to the end of the file"
    ))
}

/// Gives `table` room for the bounds of a file of `size` bytes (0: unknown, no room), at the
/// bytes per row of its first piece, `first`, and a little more; room never written to costs
/// no memory. A row takes two bytes at least (a cell and its line end), so never more rows than
/// half the size; a reservation the system refuses only leaves the table to grow as it goes.
fn reserve_rows(table: &mut Table, first: &Table, size: u64) {
    if size == 0 {
        return;
    }
    let (rows, bytes) = (first.rows as u64 + 1, first.cells.bytes.max(1) as u64);
    let estimate = (size / bytes * rows + size / bytes * rows / 8).min(size / 2 + 1);
    let words = (estimate as usize).saturating_mul(table.stride());
    let _ = table.cells.bounds.try_reserve_exact(words);
}

/// Appends a piece to the table: its text is moved, not copied; its per-row bounds, which
/// already name the piece, are appended as they are, and the piece is dropped. Gives back the
/// piece's bounds buffer, emptied, for another piece.
fn append(table: &mut Table, part: Table) -> Vec<u16> {
    let (rows, problems) = (table.rows as u32, table.problems.len() as u32);
    let Cells {
        texts,
        mut bounds,
        wide,
        piece,
        ..
    } = part.cells;
    // INVARIANT: the pieces are appended in file order, each once, and a piece holds one text:
    // so its number is where its text lands.
    assert_eq!(
        (piece as usize, texts.len()),
        (table.cells.texts.len(), 1),
        "pieces are appended in order"
    );
    table.cells.texts.extend(texts);
    table.cells.bounds.extend_from_slice(&bounds);
    let wide = wide.into_iter().map(|(r, ends)| (r + rows, ends));
    table.cells.wide.extend(wide);
    for (first, line) in part.lines {
        table.push_line(first + rows, line);
    }
    table.odd_ids.extend(part.odd_ids.iter().map(|r| r + rows));
    table.rows += part.rows;
    table.plain &= part.plain;
    table.faults.extend(
        part.faults
            .into_iter()
            .map(|(r, p)| (r + rows, p + problems)),
    );
    table.problems.extend(part.problems);
    bounds.clear();
    bounds
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
                [] if col.declared => {
                    problems.push(format!(
                        "{shown}:1: missing column `{}`, which the policy declares",
                        col.name
                    ));
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
    // Two cells naming one column that the run does not read refuse the file too (SPEC §2):
    // a policy that comes to read it later would not know which of them it means.
    for (a, b) in crate::schema::repeated_headers(header) {
        if !schema.columns.iter().any(|c| c.matches_header(&header[b])) {
            problems.push(format!(
                "{shown}:1:{}: headers `{}` and `{}` both name column `{}`",
                b + 1,
                header[a],
                header[b],
                header[a]
            ));
        }
    }
    if problems.is_empty() {
        return Ok(positions);
    }
    // A quote left open in the header and closed on a later line made those lines header.
    if let Some(i) = header.iter().position(|h| h.contains(['\n', '\r'])) {
        problems.push(format!(
            "{shown}:1:{}: this header field holds a line break: is a quote left open?",
            i + 1
        ));
    }
    Err(Error::refused(problems.join("\n")))
}

impl Table {
    fn push_row(
        &mut self,
        cells: &[chunks::Cell],
        line: u64,
        width: usize,
        positions: &[Option<usize>],
        schema: &Schema,
    ) {
        let first_problem = self.problems.len();
        let start = self.cells.texts[0].len() as u32;
        self.cells.row_ends.clear();
        if cells.len() != width {
            // A short row is named by the first column it lacks (when the run reads that
            // column); a long row's extra fields have no column to name.
            let lacking = positions
                .iter()
                .zip(&schema.columns)
                .find(|(p, _)| **p == Some(cells.len()))
                .map_or("", |(_, col)| col.name.as_str());
            let name = if cells.len() < width { lacking } else { "" };
            self.problem(
                line,
                name,
                format!(
                    "the row has {}, the header has {width}",
                    fields(cells.len())
                ),
            );
        }
        for (c, col) in schema.columns.iter().enumerate() {
            let raw = positions[c].and_then(|p| cells.get(p)).unwrap_or(&Ok(""));
            if let Err(msg) = self.push_cell(c, col, raw) {
                self.problem(line, &col.name, msg);
            }
        }
        // INVARIANT: every number column pushed one number (a missing one too).
        debug_assert_eq!(self.cells.row_numbers.len(), self.widths.numbers);
        debug_assert_eq!(self.cells.row_words.len(), self.widths.words);
        self.cells.end_row(start, self.rows as u32);
        if self.problems.len() > first_problem {
            self.faults.push((self.rows as u32, first_problem as u32));
        }
        self.push_line(self.rows as u32, line);
        self.rows += 1;
    }

    /// Records that `row` (the next row, or a run's first row being merged) starts on `line`:
    /// a new run unless it is the line after the previous row's.
    fn push_line(&mut self, row: u32, line: u64) {
        let follows =
            (self.lines.last()).is_some_and(|(first, at)| at + u64::from(row - first) == line);
        if !follows {
            self.lines.push((row, line));
        }
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
    fn push_cell(
        &mut self,
        c: usize,
        col: &Column,
        raw: &chunks::Cell,
    ) -> std::result::Result<(), String> {
        let store = &mut Store {
            slot: self.slots[c],
            cells: &mut self.cells,
        };
        let len = raw.map_or_else(|bad| bad.bytes().len(), str::len);
        if len > MAX_CELL {
            store.push_missing();
            return Err(format!(
                "the value is {len} bytes long, more than the {MAX_CELL} a cell may have"
            ));
        }
        let text = match *raw {
            Ok(text) => {
                if col.domain == Some(Domain::InstanceId)
                    && !text.is_empty()
                    && !super::index::is_loose(text)
                {
                    self.odd_ids.push(self.rows as u32);
                    // Nothing left once spelt loosely: no id at all, though the cell is not
                    // empty (one such id would hold the codes of every other).
                    if !trim(text).is_empty() && super::index::loose(text).is_empty() {
                        push_text(store, text);
                        return Err("the instance id is made only of characters that a text \
                                    shows as nothing (zero-width spaces or joiners, a \
                                    byte-order mark)"
                            .to_string());
                    }
                }
                text
            }
            Err(bad) => {
                if col.identifier {
                    push_text(store, &String::from_utf8_lossy(bad.bytes()));
                } else {
                    store.push_missing();
                }
                return Err(bad.message().to_string());
            }
        };
        // A cell of spaces is as empty as an empty one: it must not pass an `exists` test.
        if trim(text).is_empty() {
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
            Ok(Parsed::Time(us)) => push_time(store, us),
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
    /// A time, in the microseconds since 1970 it is kept as.
    Time(i64),
}

fn parse_cell<'a>(col: &Column, text: &'a str) -> std::result::Result<Parsed<'a>, String> {
    if col.identifier && looks_like_formula(text) {
        return Err(format!(
            "identifier begins with `{}`, which a spreadsheet would run as a formula",
            text[..1].escape_debug()
        ));
    }
    match (col.ty, col.domain) {
        (_, Some(Domain::ChargeType)) => charge_type(text).map(Parsed::Text),
        (_, Some(Domain::InstanceStatus)) => instance_status(text).map(Parsed::Text),
        (_, Some(Domain::IpAddress)) => address_cell(text),
        (_, Some(Domain::LockReasons)) => lock_cell(text),
        (_, Some(Domain::RegionId)) => {
            let region = trim(text);
            Ok(if region.bytes().any(|b| b.is_ascii_uppercase()) {
                Parsed::Owned(region.to_ascii_lowercase())
            } else {
                Parsed::Text(region)
            })
        }
        (Type::Integer, domain) => {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            let n: i64 = match trim(text).parse::<i64>() {
                Ok(n) => n,
                // Digits past what 64 bits hold: a whole number, but out of range. One below
                // the range is taken as the least, which the checks below refuse as negative
                // or as out of range.
                Err(e) if *e.kind() == NegOverflow => i64::MIN,
                Err(e) if *e.kind() == PosOverflow => {
                    return Err(format!("`{text}` is out of range"));
                }
                Err(_) => return Err(format!("`{text}` is not a whole number")),
            };
            if domain == Some(Domain::NonNegative) && n < 0 {
                return Err(format!("`{text}` is negative"));
            }
            if n == MISSING {
                return Err(format!("`{text}` is out of range"));
            }
            Ok(Parsed::Int(n))
        }
        (Type::Time, _) => time::parse_micros(trim(text)).map(Parsed::Time),
        // Identifiers are kept exactly as read; other text loses surrounding spaces.
        (Type::String | Type::List, _) if col.identifier => Ok(Parsed::Text(text)),
        (Type::String | Type::List, _) => Ok(Parsed::Text(trim(text))),
    }
}

/// An address cell (`Domain::IpAddress`), checked apart from `parse_cell`, which stays small
/// enough to be inlined where every cell is read.
#[inline(never)]
fn address_cell(text: &str) -> std::result::Result<Parsed<'_>, String> {
    let cell = trim(text);
    match addresses(cell.as_bytes()) {
        true => Ok(Parsed::Text(cell)),
        false => Err(format!(
            "`{text}` is not an IP address (nor a `;`-separated list of them)"
        )),
    }
}

/// A lock cell (`Domain::LockReasons`): `;`-separated words, spaces around them aside.
#[inline(never)]
fn lock_cell(text: &str) -> std::result::Result<Parsed<'_>, String> {
    let cell = trim(text);
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    // Words and `;` only (the usual cell, one pass), or words with spaces around them.
    let plain = cell.bytes().all(|b| b == b';' || word_byte(b));
    match plain || cell.split(';').map(trim).all(|w| w.bytes().all(word_byte)) {
        true => Ok(Parsed::Text(cell)),
        false => Err(format!(
            "`{text}` is not a `;`-separated list of lock reasons (such as `financial`)"
        )),
    }
}

/// The class of each byte in an address cell: `HEX` for a hex digit, `DOT` for a dot or a
/// colon, `OTHER` for anything else (a `;`, a space, and what no address holds).
const ADDRESS_BYTES: [u8; 256] = {
    let mut classes = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_hexdigit() {
            classes[b] = HEX;
        } else if c == b'.' || c == b':' {
            classes[b] = DOT;
        }
        b += 1;
    }
    classes
};
const DOT: u8 = 1;
const OTHER: u8 = 2;
const HEX: u8 = 4;

/// Whether a cell holds one or more `;`-separated items (spaces around them aside) of an IPv4
/// or IPv6 address's shape: hex digits, dots and colons, with at least one digit and one dot
/// or colon, and not the unspecified address (`0.0.0.0`, `::`). Not a full parse: what it
/// turns away is what exports write for "none" (`-`, `N/A`, `[]`, `null`, `;`, `0.0.0.0`),
/// which would otherwise pass an `exists` test. One pass over the bytes: this runs for most
/// inventory rows.
fn addresses(cell: &[u8]) -> bool {
    let unspecified = |item: &[u8]| item == b"0.0.0.0" || item == b"::";
    // The usual cell, one address: its bytes' classes gathered in one branch-free pass.
    let classes = cell
        .iter()
        .fold(0, |all, c| all | ADDRESS_BYTES[usize::from(*c)]);
    if classes & OTHER == 0 {
        return classes == HEX | DOT && !unspecified(cell);
    }
    // Item by item: where the current one starts, and the classes of its bytes.
    let (mut start, mut seen, mut items) = (None, 0, 0);
    for (at, &c) in cell.iter().chain([&b';']).enumerate() {
        match c {
            b' ' | b'\t' => {}
            b';' => {
                if let Some(from) = start.take() {
                    let item = cell[from..at].trim_ascii_end();
                    if seen != HEX | DOT || unspecified(item) {
                        return false;
                    }
                    (seen, items) = (0, items + 1);
                }
            }
            _ => match ADDRESS_BYTES[usize::from(c)] {
                OTHER => return false,
                class => {
                    start.get_or_insert(at);
                    seen |= class;
                }
            },
        }
    }
    items > 0
}

/// A policy's text literal for a comparison with column `col`, in the form the column's cells
/// are kept in (a charge type as the API's word, a status capitalised, a region in lower case),
/// so that `ne: PayAsYouGo` compares with what `PayAsYouGo` cells are kept as; `Err` for a word
/// no cell of the column can hold (a rule that could never match, or always would).
pub fn literal_form(col: &Column, text: &str) -> std::result::Result<String, String> {
    match col.domain {
        Some(Domain::ChargeType) => charge_type(text).map(str::to_string),
        Some(Domain::InstanceStatus) => instance_status(text).map(str::to_string),
        Some(Domain::RegionId) => Ok(trim(text).to_ascii_lowercase()),
        _ => Ok(text.to_string()),
    }
}

/// For a column kept as words (the charge type, the status): each word the column is kept as,
/// with every spelling the inputs may give it (any case); `None` for other columns.
pub fn word_spellings(col: &Column) -> Option<Vec<(&'static str, Vec<&'static str>)>> {
    match col.domain {
        Some(Domain::ChargeType) => Some(vec![
            (CHARGE_TYPES[0], vec!["PrePaid", "Subscription"]),
            (CHARGE_TYPES[1], vec!["PostPaid", "PayAsYouGo"]),
        ]),
        Some(Domain::InstanceStatus) => Some(STATUSES.iter().map(|s| (*s, vec![*s])).collect()),
        _ => None,
    }
}

/// The API's charge types, as the inventory keeps them.
const CHARGE_TYPES: [&str; 2] = ["PrePaid", "PostPaid"];
/// The API's instance statuses.
const STATUSES: [&str; 5] = ["Pending", "Running", "Starting", "Stopping", "Stopped"];

/// The words every cell of a column is normalised to, for a column kept as words.
fn vocabulary(col: &Column) -> Option<&'static [&'static str]> {
    match col.domain {
        Some(Domain::ChargeType) => Some(&CHARGE_TYPES),
        Some(Domain::InstanceStatus) => Some(&STATUSES),
        _ => None,
    }
}

/// `PrePaid`/`Subscription` and `PostPaid`/`PayAsYouGo`, any case, normalised to the API's words.
fn charge_type(text: &str) -> std::result::Result<&'static str, String> {
    // The API's own words, the common case, before any folding.
    let [prepaid, postpaid] = CHARGE_TYPES;
    match text {
        "PrePaid" => return Ok(prepaid),
        "PostPaid" => return Ok(postpaid),
        _ => {}
    }
    match trim(text).to_ascii_lowercase().as_str() {
        "prepaid" | "subscription" => Ok(prepaid),
        "postpaid" | "payasyougo" => Ok(postpaid),
        _ => Err(format!(
            "unknown charge type `{text}` (expected PrePaid, PostPaid, Subscription or PayAsYouGo)"
        )),
    }
}

fn instance_status(text: &str) -> std::result::Result<&'static str, String> {
    STATUSES
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(trim(text)))
        .ok_or_else(|| {
            let (last, others) = STATUSES.split_last().expect("the API's statuses");
            format!(
                "unknown instance status `{text}` (expected {} or {last})",
                others.join(", ")
            )
        })
}

impl Cells {
    /// Records the bounds of the row just read (row `row` of the piece), whose text starts at
    /// `start`.
    fn end_row(&mut self, start: u32, row: u32) {
        let longest = self.row_ends.last().map_or(0, |end| end - start);
        let piece = if longest > u32::from(u16::MAX) {
            self.wide.push((row, self.row_ends.clone()));
            self.piece | WIDE
        } else {
            self.piece
        };
        self.bounds.extend(split16(piece));
        self.bounds.extend(split16(start));
        let relative = self.row_ends.iter().map(|end| (end - start) as u16);
        if piece == WIDE {
            self.bounds.extend(relative.map(|_| 0));
        } else {
            self.bounds.extend(relative);
        }
        self.bounds.append(&mut self.row_words);
        for n in self.row_numbers.drain(..) {
            let n = n as u64;
            self.bounds.extend(split16(n as u32));
            self.bounds.extend(split16((n >> 32) as u32));
        }
    }
}

/// One row's cells being appended to a piece (whose text is `texts[0]`).
struct Store<'a> {
    slot: Slot,
    cells: &'a mut Cells,
}

impl Store<'_> {
    fn push_missing(&mut self) {
        match self.slot {
            Slot::Dropped => {}
            Slot::Text(_) => {
                let end = self.cells.texts[0].len() as u32;
                self.cells.row_ends.push(end);
            }
            Slot::Word(..) => self.cells.row_words.push(0),
            Slot::Int(_) | Slot::Time(_) => self.cells.row_numbers.push(MISSING),
        }
    }
}

/// `str::trim`, with a quick answer for the usual cell that has nothing to trim.
pub(super) fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(a), Some(z)) if is_plain_edge(*a) && is_plain_edge(*z) => text,
        _ => text.trim(),
    }
}

/// A byte that is neither ASCII white space nor part of a non-ASCII character (which might be
/// Unicode white space).
fn is_plain_edge(b: u8) -> bool {
    b > b' ' && b < 0x80
}

fn push_text(store: &mut Store, s: &str) {
    match store.slot {
        Slot::Text(_) => {
            let text = &mut store.cells.texts[0];
            text.push_str(s);
            // INVARIANT: `parse` refuses a piece over `MAX_PIECE_TEXT`; until then a wrapped
            // offset is never read.
            store.cells.row_ends.push(text.len() as u32);
        }
        Slot::Word(_, list) => {
            // INVARIANT: a word column's cells are parsed into one of its list's words
            // (`charge_type`, `instance_status`) or are stored as missing: a cell never
            // reaches here with another text.
            let place = list.iter().position(|w| *w == s);
            debug_assert!(place.is_some(), "{s:?} is not one of {list:?}");
            store
                .cells
                .row_words
                .push(place.map_or(0, |i| i + 1) as u16);
        }
        _ => {}
    }
}

fn push_int(store: &mut Store, n: i64) {
    if let Slot::Int(_) = store.slot {
        store.cells.row_numbers.push(n);
    }
}

fn push_time(store: &mut Store, micros: i64) {
    if let Slot::Time(_) = store.slot {
        store.cells.row_numbers.push(micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    /// A row of one field (a blank quoted line) is said to have `1 field`.
    #[test]
    fn a_row_of_one_field_is_counted_in_the_singular() {
        let t = parse(
            &b"request_id,account_id,instance_id,requested_at\n\"\"\nr,1,i,2026-11-29\n"[..],
            "r.csv",
            &Schema::requests(),
        )
        .unwrap();
        let said: Vec<&str> = t.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(said[0], "the row has 1 field, the header has 4");
        assert_eq!(fields(3), "3 fields");
    }

    /// A bandwidth too large for 64 bits is a whole number out of range, not "no whole
    /// number"; a bad one, a negative one and one past the range below each say what they are.
    #[test]
    fn an_integer_cell_says_why_it_is_refused() {
        let header = "instance_id,account_id,region_id,charge_type,expired_time,\
                      internet_max_bandwidth_out\n";
        for (bandwidth, said) in [
            (
                "99999999999999999999",
                "`99999999999999999999` is out of range",
            ),
            ("1e1", "`1e1` is not a whole number"),
            ("ten", "`ten` is not a whole number"),
            ("-3", "`-3` is negative"),
            (
                "-99999999999999999999",
                "`-99999999999999999999` is negative",
            ),
        ] {
            let text = format!("{header}i-1,1,cn-beijing,PrePaid,2027-01-01T00:00Z,{bandwidth}\n");
            let t = parse(text.as_bytes(), "i.csv", &Schema::instances()).unwrap();
            let messages: Vec<&str> = t.problems.iter().map(|p| p.message.as_str()).collect();
            assert!(
                messages.iter().any(|m| m.contains(said)),
                "{bandwidth}: {messages:?}"
            );
        }
    }

    fn instances_schema() -> Schema {
        let mut schema = Schema::instances();
        for c in &mut schema.columns {
            c.keep = c.name != "creation_time";
        }
        schema
    }

    /// A table is plain only when no cell of any piece could need quotes when written: CRLF
    /// line ends keep it plain (the CR is the line end's, not a cell's), a quote or a lone CR
    /// does not.
    #[test]
    fn a_table_is_plain_only_without_quotes_or_lone_carriage_returns() {
        let header = "request_id,account_id,instance_id,requested_at\n";
        let row = |i: usize| format!("R-{i},1111222233334444,i-{i},2026-11-29T10:00:00Z\n");
        // Enough rows for several pieces, so that one odd row late in the file must count.
        let rows: String = (0..200_000).map(row).collect();
        let parsed = |text: String| parse(text.as_bytes(), "r.csv", &Schema::requests()).unwrap();
        let plain = parsed(format!("{header}{rows}"));
        assert!(
            plain.cells.texts.len() > 2,
            "the rows came from several pieces"
        );
        assert!(plain.plain());
        let crlf = parsed(format!("{header}{rows}").replace('\n', "\r\n"));
        assert_eq!(crlf.len(), 200_000);
        assert!(crlf.plain());
        assert_eq!(
            crlf.text(2, 199_999),
            "i-199999",
            "no CR kept in the last cell"
        );
        // A lone CR ends a record (as the csv reader reads it): the last one makes two.
        for (odd, rows_after) in [
            ("\"R-x,1\",1111222233334444,i-1,2026-11-29T10:00:00Z\n", 1),
            ("R-y,1111222233334444,i-1,2026-11-29T10:00:00Z\r", 1),
            ("R-y,1111222233334444,i-1\r,2026-11-29T10:00:00Z\n", 2),
        ] {
            let t = parsed(format!("{header}{rows}{odd}"));
            assert_eq!(t.len(), 200_000 + rows_after, "{odd:?}");
            assert!(!t.plain(), "{odd:?}");
        }
    }

    #[test]
    fn quick_trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "\u{a0}a",
            "a\u{3000}",
            "\u{1f}a",
            "a\u{7f}",
            "é",
            "a b",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn every_row_knows_its_line() {
        // Blank lines here and there in a file long enough for several blocks and pieces, and at
        // its end quoted cells with line ends inside (from the first quote on, one piece).
        let n = 300_000;
        let mut text = String::from("request_id,account_id,instance_id,requested_at\n");
        let (mut want, mut line) = (Vec::new(), 2u64);
        for i in 0..n {
            let blank = match i {
                _ if i % 50_000 == 3 => 2,
                _ if i % 1000 == 7 => 1,
                _ => 0,
            };
            text.push_str(&"\n".repeat(blank));
            line += blank as u64;
            want.push(line);
            if i >= n - 10 {
                text.push_str(&format!("\"R-{i}\nx\",1,i-1,2026-11-01T00:00Z\n"));
                line += 2;
            } else {
                text.push_str(&format!("R-{i},1,i-1,2026-11-01T00:00Z\n"));
                line += 1;
            }
        }
        let t = parse(text.as_bytes(), "r.csv", &Schema::requests()).unwrap();
        assert_eq!(t.len(), n);
        assert!(t.cells.texts.len() > 4, "the rows came from several pieces");
        for (row, line) in want.iter().enumerate() {
            assert_eq!(t.line(row), *line, "row {row}");
        }
        // A run per break in the numbering, none per row or piece: the first, one after each
        // of the 306 runs of blank lines, one after each two-line row but the last.
        assert_eq!(t.lines.len(), 1 + 306 + 9, "{:?}", &t.lines[..8]);
    }

    #[test]
    fn address_cells_have_an_address_shape() {
        for ok in [
            "1.2.3.4",
            "2001:db8::1",
            "1.1.1.1;2001:db8::1",
            " 1.1.1.1 ; 2.2.2.2 ",
            "1.1.1.1;",
            "::1",
            "10.0.0.0",
        ] {
            assert!(addresses(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ";",
            " ; ",
            "-",
            "N/A",
            "[]",
            "null",
            "1",
            "1.1.1.1;x",
            "1.1.1.1,2.2.2.2",
            "1.2.3.4/24",
            "..",
            ":::",
            "0.0.0.0",
            "::",
            " :: ",
            "1.1.1.1;0.0.0.0",
            "1.1.1.1; ;..",
        ] {
            assert!(!addresses(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn cells_read_back_across_pieces() {
        // Enough rows for several blocks and pieces, so rows come from different pieces.
        let n = 400_000;
        let mut text = String::from(
            "instance_id,account_id,region_id,charge_type,expired_time,creation_time,status,internet_max_bandwidth_out,public_ip,operation_locks\n",
        );
        // One row in a later piece holds more text than 16-bit offsets can count.
        let wide = n / 2 + 1;
        let long = |c: char| c.to_string().repeat(40_000);
        // An address's shape (digits and dots), as long.
        let long_ip = || "1.".repeat(20_000);
        for i in 0..n {
            let ip = if i == wide {
                long_ip()
            } else if i % 3 == 0 {
                String::new()
            } else {
                format!("10.0.{}.{}", i % 250, i % 7)
            };
            let bw = if i % 5 == 0 {
                "x".to_string()
            } else {
                (i % 100).to_string()
            };
            text.push_str(&format!(
                "i-{i:08},1{i:015},CN-Beijing,{},2027-01-{:02}T00:00Z,2020-01-01T00:00Z,{},{bw},{ip},{}\n",
                if i % 2 == 0 { "PrePaid" } else { "payasyougo" },
                1 + i % 28,
                ["Running", " stopped", "", "Paused", "PENDING", "Starting", "Stopping"][i % 7],
                if i == wide {
                    long('f')
                } else if i % 11 == 0 {
                    "financial".to_string()
                } else {
                    String::new()
                },
            ));
        }
        let schema = instances_schema();
        // Read as `load` reads a file, its size known: the table's room is reserved from the
        // first piece, and the pieces' bounds buffers are recycled.
        let t = parse_sized(text.as_bytes(), text.len() as u64, "t.csv", &schema).unwrap();
        assert_eq!(t.len(), n);
        assert!(t.cells.texts.len() > 4, "the rows came from several pieces");
        let at = |name: &str| schema.index(name).unwrap();
        assert_eq!(t.text(at("public_ip"), wide), long_ip());
        assert_eq!(t.text(at("operation_locks"), wide), long('f'));
        assert_eq!(t.text(at("instance_id"), wide), format!("i-{wide:08}"));
        assert!(!t.cells.wide.is_empty());
        // Whether a cell has a value, read from its ends alone, wide rows too.
        for row in (0..n).step_by(7).chain([wide, n - 1]) {
            for col in 0..schema.columns.len() {
                let want = t.value(col, row) != Value::Missing;
                assert_eq!(t.has_value(col, row), want, "row {row}, column {col}");
            }
        }
        let late = [n / 3, n / 2, n / 2 + 2, n - 2, n - 1];
        for row in [0, 1, 2, 3, 5, 6, 11, 13].into_iter().chain(late) {
            assert_eq!(t.text(at("instance_id"), row), format!("i-{row:08}"));
            assert_eq!(t.text(at("account_id"), row), format!("1{row:015}"));
            assert_eq!(t.text(at("region_id"), row), "cn-beijing");
            let charge = if row % 2 == 0 { "PrePaid" } else { "PostPaid" };
            assert_eq!(t.text(at("charge_type"), row), charge);
            let ip = t.text(at("public_ip"), row);
            assert_eq!(ip.is_empty(), row % 3 == 0, "row {row}: {ip}");
            assert_eq!(t.text(at("operation_locks"), row).is_empty(), row % 11 != 0);
            // Kept as words: the API's own, whatever case the file used; none when missing
            // or not a status (`Paused`, a problem of its row).
            let status = [
                "Running", "Stopped", "", "", "Pending", "Starting", "Stopping",
            ][row % 7];
            assert_eq!(t.text(at("status"), row), status, "row {row}");
            let want = if status.is_empty() {
                Value::Missing
            } else {
                Value::Str(status)
            };
            assert_eq!(t.value(at("status"), row), want, "row {row}");
            let bw = t.value(at("internet_max_bandwidth_out"), row);
            if row % 5 == 0 {
                assert_eq!(bw, Value::Missing);
                assert!(
                    t.fault(row).is_some(),
                    "a bad number makes the row malformed"
                );
            } else {
                assert_eq!(bw, Value::Int((row % 100) as i64));
            }
            assert_eq!(
                t.fault(row).is_some(),
                row % 5 == 0 || row % 7 == 3,
                "row {row}"
            );
            let Value::Time(expires) = t.value(at("expired_time"), row) else {
                panic!("row {row}: no expiry");
            };
            assert_eq!(
                time::format(expires),
                format!("2027-01-{:02}T00:00:00Z", 1 + row % 28)
            );
            assert_eq!(
                t.value(at("creation_time"), row),
                Value::Missing,
                "not kept"
            );
            assert_eq!(t.line(row), row as u64 + 2);
        }
    }
}
