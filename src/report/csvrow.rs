//! CSV rows written straight into a byte buffer, the way the `csv` crate's writer writes them
//! (a cell is quoted only when it holds a comma, a quote, a carriage return or a line feed, and
//! its quotes are doubled; rows end in a line feed), without that writer's own buffer and state
//! machine: the large reports are millions of rows of short cells.

/// Appends one row of `cells` to `buf`.
pub fn row(buf: &mut Vec<u8>, cells: &[&str]) {
    record(buf, cells.iter().copied(), b"\n");
}

/// Appends one row of `cells` ending in `end` (a line feed, or the CRLF of a ledger written
/// that way) to `buf`.
pub fn record<'a>(buf: &mut Vec<u8>, cells: impl IntoIterator<Item = &'a str>, end: &[u8]) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_cell(buf, cell.as_bytes());
    }
    buf.extend_from_slice(end);
}

/// `record`, for cells known to need no quotes: copied as they are.
pub fn record_unquoted<'a>(
    buf: &mut Vec<u8>,
    cells: impl IntoIterator<Item = &'a str>,
    end: &[u8],
) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        cell_unquoted(buf, cell);
    }
    buf.extend_from_slice(end);
}

/// Appends `cells`, each followed by a comma: the first cells of rows that share them, to be
/// copied before each row's own cells (`row`) as they are.
pub fn prefix(buf: &mut Vec<u8>, cells: &[&str]) {
    for cell in cells {
        push_cell(buf, cell.as_bytes());
        buf.push(b',');
    }
}

/// `cell`, for a cell known to need no quotes: copied as it is.
pub fn cell_unquoted(buf: &mut Vec<u8>, cell: &str) {
    debug_assert!(!needs_quotes(cell.as_bytes()), "{cell:?} needs quotes");
    buf.extend_from_slice(cell.as_bytes());
}

/// `prefix`, for cells known to need no quotes (read from a table that is `plain`, or the
/// program's own words): copied as they are, each followed by a comma.
pub fn prefix_unquoted(buf: &mut Vec<u8>, cells: &[&str]) {
    for cell in cells {
        cell_unquoted(buf, cell);
        buf.push(b',');
    }
}

/// Appends one cell, quoted when it must be, and nothing else: a part of a row whose other
/// parts are written by `prefix` and `row`.
pub fn cell(buf: &mut Vec<u8>, cell: &str) {
    push_cell(buf, cell.as_bytes());
}

fn push_cell(buf: &mut Vec<u8>, cell: &[u8]) {
    if !needs_quotes(cell) {
        buf.extend_from_slice(cell);
        return;
    }
    buf.reserve(cell.len() + 2);
    buf.push(b'"');
    let mut rest = cell;
    while let Some(i) = memchr::memchr(b'"', rest) {
        buf.extend_from_slice(&rest[..=i]);
        buf.push(b'"');
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'"');
}

/// Whether a cell must be quoted. Written as a fold without an early exit so that the compiler
/// checks many bytes at a time: cells are short, and almost none needs quotes.
pub fn needs_quotes(cell: &[u8]) -> bool {
    cell.iter()
        .fold(false, |q, &b| q | matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `csv` crate writes for the same cells, with the reports' line feed ending.
    fn by_csv_crate(cells: &[&str]) -> Vec<u8> {
        by_csv_crate_ending(cells, csv::Terminator::Any(b'\n'))
    }

    fn by_csv_crate_ending(cells: &[&str], end: csv::Terminator) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .terminator(end)
            .from_writer(Vec::new());
        w.write_record(cells).unwrap();
        w.into_inner().unwrap()
    }

    /// A row of `cells` random cells, each of up to 11 pieces drawn from `alphabet`.
    fn random_cells(
        rng: &mut fastrand::Rng,
        alphabet: &[&str],
        cells: std::ops::Range<usize>,
    ) -> Vec<String> {
        (0..rng.usize(cells))
            .map(|_| {
                (0..rng.usize(0..12))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rows_are_byte_for_byte_what_the_csv_crate_writes() {
        let alphabet = [
            "a", "Z", "9", ",", "\"", "\r", "\n", " ", "'", "=", "é", "\t", ";", "",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let cells = random_cells(&mut rng, &alphabet, 2..8);
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            let mut mine = Vec::new();
            row(&mut mine, &cells);
            assert_eq!(
                String::from_utf8_lossy(&mine),
                String::from_utf8_lossy(&by_csv_crate(&cells)),
                "cells {cells:?}"
            );
            // The ledger's rows, which may end in CRLF.
            let mut crlf = Vec::new();
            record(&mut crlf, cells.iter().copied(), b"\r\n");
            assert_eq!(
                String::from_utf8_lossy(&crlf),
                String::from_utf8_lossy(&by_csv_crate_ending(&cells, csv::Terminator::CRLF)),
                "cells {cells:?}, CRLF"
            );
        }
    }

    #[test]
    fn a_prefix_and_a_row_are_the_row_of_all_their_cells() {
        let cells = ["R-1", "a,b", "", "say \"hi\"", "x", "two\nlines"];
        for split in 0..cells.len() {
            let mut joined = Vec::new();
            prefix(&mut joined, &cells[..split]);
            row(&mut joined, &cells[split..]);
            let mut whole = Vec::new();
            row(&mut whole, &cells);
            assert_eq!(joined, whole, "split at {split}");
        }
    }

    #[test]
    fn a_prefix_a_cell_and_a_row_are_the_row_of_all_their_cells() {
        let cells = ["R-1", "a,b", "say \"hi\"", "two\nlines", "", "x"];
        for (i, middle) in cells.iter().enumerate() {
            let mut joined = Vec::new();
            prefix(&mut joined, &cells[..i]);
            cell(&mut joined, middle);
            if i + 1 < cells.len() {
                joined.push(b',');
                row(&mut joined, &cells[i + 1..]);
            } else {
                joined.push(b'\n');
            }
            let mut whole = Vec::new();
            row(&mut whole, &cells);
            assert_eq!(joined, whole, "cell {i}");
        }
    }

    #[test]
    fn unquoted_cells_are_written_as_checked_ones_that_need_no_quotes() {
        let alphabet = ["a", "Z", "9", " ", "'", "=", "é", "\t", ";", "-", ""];
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2_000 {
            let cells = random_cells(&mut rng, &alphabet, 0..6);
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            let (mut quick, mut checked) = (Vec::new(), Vec::new());
            prefix_unquoted(&mut quick, &cells);
            prefix(&mut checked, &cells);
            assert_eq!(quick, checked, "cells {cells:?}");
            let (mut quick, mut checked) = (Vec::new(), Vec::new());
            record_unquoted(&mut quick, cells.iter().copied(), b"\r\n");
            record(&mut checked, cells.iter().copied(), b"\r\n");
            assert_eq!(quick, checked, "cells {cells:?}, a record");
        }
    }

    #[test]
    fn quotes_only_what_needs_quoting() {
        let mut buf = Vec::new();
        row(&mut buf, &["plain", "a,b", "say \"hi\"", "two\nlines", ""]);
        assert_eq!(buf, b"plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\n");
    }
}
