//! Reading an input file in parallel. The file is read whole, hashed on one thread while its
//! body is split at record boundaries and the pieces parsed on the others. A file without any
//! quote character has a record per line, so it splits at line ends; a file with quotes (where
//! a line end may sit inside a field) is parsed as one piece, exactly as a sequential reader
//! would.

pub use crate::digest::sha256;
use crate::error::{Error, Result};
use std::path::Path;

/// The smallest piece worth a thread of its own.
const MIN_PIECE: usize = 1 << 20;

/// Reads a whole input file, refusing folders with a clear message.
pub fn read(path: &Path, shown: &str) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(Error::refused(format!("{shown}: is a folder, not a file")));
    }
    std::fs::read(path).map_err(|e| Error::refused(format!("{shown}: cannot read: {e}")))
}

/// A reader over CSV bytes, configured the one way every input is read.
pub fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(bytes)
}

/// The header record, and where the body starts: its byte offset and its line number.
pub fn header(bytes: &[u8], shown: &str) -> Result<(csv::ByteRecord, usize, u64)> {
    let mut rdr = reader(bytes);
    let mut record = csv::ByteRecord::new();
    let found = rdr
        .read_byte_record(&mut record)
        .map_err(|e| Error::refused(format!("{shown}:1: cannot read the header: {e}")))?;
    if !found {
        return Err(Error::refused(format!(
            "{shown}:1: the file is empty: expected a header row"
        )));
    }
    let pos = rdr.position();
    Ok((record, pos.byte() as usize, pos.line()))
}

/// A piece of the body: its bytes and the line its first byte is on.
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    pub first_line: u64,
}

/// Splits `body` (starting on line `first_line`) into about `want` pieces at record boundaries.
pub fn split(body: &[u8], first_line: u64, want: usize) -> Vec<Piece<'_>> {
    let want = want.min(body.len() / MIN_PIECE).max(1);
    if want == 1 || body.contains(&b'"') {
        return vec![Piece {
            bytes: body,
            first_line,
        }];
    }
    let mut pieces = Vec::with_capacity(want);
    let (mut start, mut line) = (0, first_line);
    for k in 1..=want {
        let end = if k == want {
            body.len()
        } else {
            let target = (body.len() * k / want).max(start);
            match body[target..].iter().position(|b| *b == b'\n') {
                Some(i) => target + i + 1,
                None => body.len(),
            }
        };
        if end > start {
            let bytes = &body[start..end];
            pieces.push(Piece {
                bytes,
                first_line: line,
            });
            line += bytes.iter().filter(|b| **b == b'\n').count() as u64;
            start = end;
        }
    }
    pieces
}

/// Line numbers of records, from their byte offsets (the csv reader's own line count drifts on
/// blank lines after CRLF line ends).
pub struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    pub fn new(piece: &Piece<'a>) -> Self {
        Lines {
            bytes: piece.bytes,
            pos: 0,
            line: piece.first_line,
        }
    }

    /// The line of the record that the reader says starts at `offset` (blank lines before it,
    /// which the reader skips, are stepped over). Offsets must not decrease.
    pub fn at(&mut self, offset: u64) -> u64 {
        let mut start = (offset as usize).min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.pos {
            let skipped = &self.bytes[self.pos..start];
            self.line += skipped.iter().filter(|b| **b == b'\n').count() as u64;
            self.pos = start;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(p: &Piece) -> Vec<(u64, Vec<u8>)> {
        let mut rdr = reader(p.bytes);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        let mut lines = Lines::new(p);
        while rdr.read_byte_record(&mut rec).unwrap() {
            let line = lines.at(rec.position().unwrap().byte());
            out.push((line, rec.as_slice().to_vec()));
        }
        out
    }

    #[test]
    fn pieces_hold_the_same_records_on_the_same_lines() {
        let mut text = String::from("a,b\n");
        for i in 0..200_000 {
            text.push_str(&format!("x{i},y{i}\r\n"));
            if i % 1000 == 0 {
                text.push('\n');
            }
        }
        let (_, start, line) = header(text.as_bytes(), "t").unwrap();
        let body = &text.as_bytes()[start..];
        let whole = records(&split(body, line, 1)[0]);
        let pieces = split(body, line, 4);
        assert!(pieces.len() > 1);
        let parts: Vec<_> = pieces.iter().flat_map(records).collect();
        assert_eq!(parts, whole);
        assert_eq!(whole[0].0, 2);
        assert_eq!(whole[1].0, 4, "a blank line is a line too");
        assert_eq!(whole.last().unwrap().0, 200_000 + 200 + 1);
    }

    #[test]
    fn quoted_files_are_one_piece() {
        let body = "\"a\nb\",c\n".repeat(300_000);
        assert_eq!(split(body.as_bytes(), 2, 4).len(), 1);
    }
}
