//! Reading an input file in parallel, a block at a time. Each block is hashed, cut at its last
//! record end and split into pieces at record ends, which rayon parses side by side; what
//! follows the cut is carried into the next block, so memory holds about one block, not the
//! file. In a block without any quote character every line end ends a record; in a block with
//! quotes (where a line end may sit inside a field), the records' ends are found from the
//! quotes' parity (`quoted::record_ends`). Where that cannot tell (a quote inside unquoted text,
//! which the csv reader takes as a byte of the value), the rest of the file is parsed as one
//! piece, exactly as a sequential reader would.

mod records;

use super::quoted;
use crate::digest::hex;
use crate::error::{Error, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub use records::{Cell, read_records, reader};

/// The smallest piece worth a thread of its own.
const MIN_PIECE: usize = 1 << 20;
/// How much of a file is read before its records are parsed.
const BLOCK: usize = 8 << 20;
/// The longest line a file may have; a longer one refuses the file rather than fill memory.
pub const MAX_LINE: usize = 64 << 20;
/// The most a file with quotes may hold: from its first quote on it is read whole.
pub const MAX_QUOTED: usize = 1 << 30;

/// What streaming a file gave, besides the pieces: the header's context and the file's SHA-256.
pub struct Streamed<C> {
    pub context: C,
    pub sha256: String,
}

/// Opens an input file, refusing folders with a clear message.
pub fn open(path: &Path, shown: &str) -> Result<std::fs::File> {
    if path.is_dir() {
        return Err(Error::refused(format!("{shown}: is a folder, not a file")));
    }
    std::fs::File::open(path).map_err(|e| Error::refused(format!("{shown}: cannot open: {e}")))
}

/// Streams CSV from `input`: `prepare` reads the header record and returns what every piece
/// needs; `parse` reads one piece of the body; `keep` is handed each parsed piece, in file
/// order, a block at a time: what it keeps of a piece is merged while the file is read, so the
/// pieces of the whole file are never held at once beside their merged form.
pub fn stream<C: Sync, T: Send>(
    input: impl Read + Send,
    shown: &str,
    prepare: impl FnOnce(&csv::ByteRecord) -> Result<C>,
    parse: impl Fn(&C, &Piece) -> T + Sync,
    keep: impl FnMut(T),
) -> Result<Streamed<C>> {
    stream_in_blocks(input, shown, prepare, parse, keep, BLOCK)
}

/// `stream` with blocks of `block` bytes (tests use small ones, to cross many blocks).
fn stream_in_blocks<C: Sync, T: Send>(
    mut input: impl Read + Send,
    shown: &str,
    prepare: impl FnOnce(&csv::ByteRecord) -> Result<C>,
    parse: impl Fn(&C, &Piece) -> T + Sync,
    mut keep: impl FnMut(T),
    block: usize,
) -> Result<Streamed<C>> {
    let mut hasher = Sha256::new();
    // `carry[..hashed]` has gone into the hash; the rest is hashed while its records are parsed.
    let mut hashed = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut fill = |carry: &mut Vec<u8>, upto: usize| -> Result<bool> {
        let before = carry.len();
        // Room for a block made at once, so that reading does not grow the buffer past it by
        // doubling (a larger read, of a quoted file, grows as it goes).
        carry.reserve_exact(upto.saturating_sub(before).min(block));
        let got = (&mut input)
            .take((upto.saturating_sub(before)) as u64)
            .read_to_end(carry)
            .map_err(|e| Error::refused(format!("{shown}: cannot read: {e}")))?;
        // `read_to_end` stops short of what was asked only at the end of the file.
        Ok(before + got < upto)
    };
    // Reads the rest of the file into `carry`, to be parsed as one piece.
    let read_whole =
        |carry: &mut Vec<u8>, fill: &mut dyn FnMut(&mut Vec<u8>, usize) -> Result<bool>| {
            let eof = fill(carry, MAX_QUOTED + 1)?;
            if !eof || carry.len() > MAX_QUOTED {
                return Err(Error::refused(format!(
                    "{shown}: from a quote that only a reader going record by record can \
                     follow (inside unquoted text, or left open), a file may hold at most {} MiB",
                    MAX_QUOTED >> 20
                )));
            }
            Ok(())
        };
    // The header: read until its line is whole.
    let mut eof = false;
    let mut want = block;
    while !eof && !carry.contains(&b'\n') && want <= MAX_LINE {
        eof = fill(&mut carry, want)?;
        want *= 2;
    }
    // Where the records of a quoted block end (`quoted::record_ends`), a block at a time.
    let mut ends: Vec<usize> = Vec::new();
    // Whether the rest of the file is read whole and parsed as one piece.
    let mut whole = false;
    // A quoted header ends at the first line end outside quotes: with none in sight, or quotes
    // only the reader can follow, the file is read whole (with its header).
    if first_line(&carry).contains(&b'"')
        && (!quoted::record_ends(&carry, &mut ends) || ends.is_empty())
    {
        whole = true;
        read_whole(&mut carry, &mut fill)?;
        eof = true;
    }
    if !eof && !carry.contains(&b'\n') {
        return Err(Error::refused(format!(
            "{shown}:1: the header line is longer than {} MiB",
            want >> 21
        )));
    }
    let (record, start, mut line) = header(&carry, shown)?;
    let context = prepare(&record)?;
    hasher.update(&carry[..start]);
    carry.drain(..start);
    let mut want = block;
    // The next block is read into `next` while this one is parsed, then the two are swapped.
    let mut next: Vec<u8> = Vec::new();
    // How many pieces the blocks before this one were cut into.
    let mut numbered: u32 = 0;
    loop {
        while !eof && carry.len() < want {
            eof = fill(&mut carry, want)?;
        }
        // A block with quotes is cut where its records end. One whose quotes only the reader
        // can follow, or in which no record ends within the longest line (a quote left open,
        // told at the end of the file, or a record too long), is read whole from here, as the
        // reader would read it.
        ends.clear();
        let by_quotes = !whole && memchr::memchr(b'"', &carry).is_some();
        if by_quotes
            && (!quoted::record_ends(&carry, &mut ends)
                || (ends.is_empty() && !eof && carry.len() >= MAX_LINE))
        {
            whole = true;
            read_whole(&mut carry, &mut fill)?;
            eof = true;
            continue;
        }
        let cut = if eof {
            carry.len()
        } else if by_quotes {
            match ends.last() {
                Some(i) => i + 1,
                None => {
                    // A record longer than a block: read on until it ends.
                    want = carry.len() * 2;
                    continue;
                }
            }
        } else {
            match memchr::memrchr(b'\n', &carry) {
                Some(i) => i + 1,
                None if carry.len() >= MAX_LINE => {
                    return Err(Error::refused(format!(
                        "{shown}:{line}: a line is longer than {} MiB, more than an input may have",
                        MAX_LINE >> 20
                    )));
                }
                None => {
                    // A line longer than a block: read on until it ends.
                    want = carry.len() * 2;
                    continue;
                }
            }
        };
        let body = &carry[..cut];
        let mut pieces = match whole {
            true => vec![one_piece(body, line)],
            false => split(
                body,
                line,
                rayon::current_num_threads() * 4,
                by_quotes.then_some(&ends[..]),
            ),
        };
        line += pieces.iter().map(|p| p.lines).sum::<u64>();
        for p in &mut pieces {
            p.number = numbered;
            numbered += 1;
        }
        let (ahead, parsed) = rayon::join(
            || -> Result<bool> {
                hasher.update(&carry[hashed..]);
                if eof {
                    return Ok(true);
                }
                // What follows the cut starts the next block.
                next.clear();
                next.extend_from_slice(&carry[cut..]);
                fill(&mut next, block)
            },
            || {
                pieces
                    .par_iter()
                    .map(|p| parse(&context, p))
                    .collect::<Vec<T>>()
            },
        );
        parsed.into_iter().for_each(&mut keep);
        if eof {
            break;
        }
        eof = ahead?;
        // What followed the cut has gone into the hash already.
        hashed = carry.len() - cut;
        std::mem::swap(&mut carry, &mut next);
        want = block;
    }
    Ok(Streamed {
        context,
        sha256: hex(&hasher.finalize()),
    })
}

fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    &bytes[..end]
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
    let start = rdr.position().byte() as usize;
    // A quote left open in the header took the whole file for it: said so, rather than the
    // columns that then seem to be missing. (A quoted header field may hold a line break.)
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if start >= bytes.len()
        && let Some(field) = unclosed_quote(body, 0)
    {
        return Err(super::table::unclosed_in(shown, 1, field, "the header"));
    }
    Ok((record, start, 1 + line_ends(bytes, 0, start)))
}

/// A piece of the body: its bytes, the line its first byte is on, how many line ends it holds
/// (counted once, when the block is split) and its place among the file's pieces (from 0, in
/// file order: `stream` numbers them).
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    pub first_line: u64,
    pub lines: u64,
    pub number: u32,
}

/// The whole of `body` as one piece, read by the csv reader as a sequential reader would.
fn one_piece(body: &[u8], first_line: u64) -> Piece<'_> {
    Piece {
        bytes: body,
        first_line,
        lines: line_ends(body, 0, body.len()),
        number: 0,
    }
}

/// Splits `body`, which starts where a record does, into about `want` pieces that each end
/// where a record does: at line ends when `ends` is `None` (a body without quotes), else at
/// the line ends of `ends` (`quoted::record_ends` of the body, or of more text that it starts).
fn split<'b>(
    body: &'b [u8],
    first_line: u64,
    want: usize,
    ends: Option<&[usize]>,
) -> Vec<Piece<'b>> {
    match ends {
        None => split_at(body, first_line, want, |target| {
            memchr::memchr(b'\n', &body[target..]).map(|i| target + i + 1)
        }),
        Some(ends) => split_at(body, first_line, want, |target| {
            let k = ends.partition_point(|end| *end < target);
            ends.get(k).map(|end| end + 1)
        }),
    }
}

/// Splits `body` into about `want` pieces, each ending where a record does: `after(target)` is
/// where the first record end at or after `target` is followed by the next record (`None`: no
/// record ends after it). The pieces' line ends are counted side by side, not one piece after
/// another.
fn split_at(
    body: &[u8],
    first_line: u64,
    want: usize,
    after: impl Fn(usize) -> Option<usize>,
) -> Vec<Piece<'_>> {
    let want = want.min(body.len() / MIN_PIECE).max(1);
    let mut ranges = Vec::with_capacity(want);
    let mut start = 0;
    for k in 1..=want {
        let end = if k == want {
            body.len()
        } else {
            let target = (body.len() * k / want).max(start);
            after(target).map_or(body.len(), |end| end.min(body.len()))
        };
        if end > start {
            ranges.push(start..end);
            start = end;
        }
    }
    let counts: Vec<u64> = ranges
        .par_iter()
        .map(|r| line_ends(&body[r.clone()], 0, r.len()))
        .collect();
    let mut line = first_line;
    ranges
        .into_iter()
        .zip(counts)
        .map(|(r, lines)| {
            let piece = Piece {
                bytes: &body[r],
                first_line: line,
                lines,
                number: 0,
            };
            line += lines;
            piece
        })
        .collect()
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
            self.line += line_ends(self.bytes, self.pos, start);
            self.pos = start;
        }
        self.line
    }
}

/// The line ends in `bytes[from..to]`: LF, CRLF (once) and a lone CR, as the CSV reader counts
/// records.
fn line_ends(bytes: &[u8], from: usize, to: usize) -> u64 {
    let span = &bytes[from..to];
    if memchr::memchr(b'\r', span).is_none() {
        return memchr::memchr_iter(b'\n', span).count() as u64;
    }
    (from..to)
        .filter(|&i| match bytes[i] {
            b'\n' => true,
            b'\r' => bytes.get(i + 1) != Some(&b'\n'),
            _ => false,
        })
        .count() as u64
}

/// Whether the record starting at `start` runs to the end of `bytes` inside a quoted field that
/// is never closed, as the csv reader reads it (RFC 4180): a quote opens a field only as its
/// first byte, `""` inside a quoted field is a quote, and any other quote closes it; a quote
/// inside an unquoted field (`ab"c`) is a byte of its value. Such a record swallowed the lines
/// after its quote, or, on the last line, would swallow whatever is appended to the file.
/// `Some` with the field the open quote starts (1 for the record's first), `None` when none is
/// left open.
pub fn unclosed_quote(bytes: &[u8], start: usize) -> Option<usize> {
    let (mut quoted, mut field_start) = (false, true);
    let (mut field, mut opened) = (1, 1);
    let mut i = start.min(bytes.len());
    while i < bytes.len() {
        match (quoted, bytes[i]) {
            (true, b'"') if bytes.get(i + 1) == Some(&b'"') => i += 1,
            (true, b'"') => quoted = false,
            (false, b'"') if field_start => {
                quoted = true;
                opened = field;
            }
            (false, sep @ (b',' | b'\n' | b'\r')) => {
                field = if sep == b',' { field + 1 } else { 1 };
                field_start = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        field_start = false;
        i += 1;
    }
    quoted.then_some(opened)
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

    /// A quote left open in the header is refused as such; a quoted header field may hold a
    /// line break (RFC 4180), and a quote closed on a later line leaves the header to be judged
    /// by its columns.
    #[test]
    fn a_quote_left_open_in_the_header_is_refused() {
        let refused = |text: &[u8]| header(text, "f.csv").map(|_| ()).unwrap_err().message;
        assert_eq!(
            refused(b"a,\"b,c\nx,y,z\n"),
            "f.csv:1:2: field 2 of the header opens a quote that is never closed: it runs to the \
             end of the file"
        );
        let (record, start, line) = header(b"a,\"b\",c\nx,y,z\n", "f.csv").unwrap();
        assert_eq!((record.len(), start, line), (3, 8, 2));
        let (record, start, line) = header(b"a,\"b\nnotes\",c\nx,y,z\n", "f.csv").unwrap();
        assert_eq!(&record[1], b"b\nnotes");
        assert_eq!((record.len(), start, line), (3, 14, 3));
        let (record, _, line) = header(b"a,\"b,c\nx,y\",z\nu,v,w\n", "f.csv").unwrap();
        assert_eq!((record.len(), line), (3, 3));
        // After a byte-order mark too (the csv reader drops it).
        assert!(refused(b"\xEF\xBB\xBF\"a,b\nx,y\n").contains("is never closed"));
    }

    /// An unclosed quote is one the csv reader leaves open at the end: a quote inside an
    /// unquoted field is a byte of it, `""` is a quote inside a quoted field.
    #[test]
    fn an_unclosed_quote_is_one_left_open_at_the_end() {
        for (text, open) in [
            (&b"a,\"b\n"[..], Some(2)),
            (b"a,\"b", Some(2)),
            (b"a,\"b\nc,d\n", Some(2)),
            (b"a,\"b\"\n", None),
            (b"a,ab\"c\n", None),
            (b"a,ab\"c", None),
            (b"a,\"b\"\"c\"\n", None),
            (b"a,\"b\"\"\n", Some(2)),
            (b"\"a\"x,\"\n", Some(2)),
            (b"\"a,b\n", Some(1)),
            (b"a,\"b,c\",d,\"e\n", Some(4)),
            (b"a,b\n", None),
        ] {
            assert_eq!(
                unclosed_quote(text, 0),
                open,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(unclosed_quote(b"\"a\nb\"\nc\n", 6), None);
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
        let whole = records(&split_as_streamed(body, line, 1)[0]);
        let pieces = split_as_streamed(body, line, 4);
        assert!(pieces.len() > 1);
        let parts: Vec<_> = pieces.iter().flat_map(records).collect();
        assert_eq!(parts, whole);
        assert_eq!(whole[0].0, 2);
        assert_eq!(whole[1].0, 4, "a blank line is a line too");
        assert_eq!(whole.last().unwrap().0, 200_000 + 200 + 1);
        let lines: u64 = pieces.iter().map(|p| p.lines).sum();
        assert_eq!(
            lines,
            line_ends(body, 0, body.len()),
            "the body's line ends"
        );
    }

    /// A reader that hands out at most a few bytes a call, as a pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Streaming in blocks far smaller than the file (every line crossing some block's end, a
    /// line longer than a block, a quote arriving late or early, blank lines, no final line end) gives
    /// the records and lines a sequential reader gives, in order, and the file's SHA-256.
    #[test]
    fn streaming_across_many_blocks_reads_as_one_pass_would() {
        let mut plain = String::from("id,name,note\n");
        for i in 0..3_000 {
            plain.push_str(&format!("r{i},{},{}\n", "x".repeat(i % 37), i * 7));
            if i % 500 == 0 {
                plain.push('\n');
            }
        }
        plain.push_str(&format!("long,{},end\n", "y".repeat(5_000)));
        let mut quoted = plain.clone();
        quoted.push_str("q1,\"two\nlines\",after\nlast,row,no-end");
        // A quote on the first row, with many blocks of the file after it.
        let early = plain.replacen("\nr0,", "\n\"r0\",", 1);
        assert_ne!(early, plain);
        // Every field quoted, the header too; quoted line ends and commas in many rows, and a
        // quoted value longer than the smaller blocks.
        let all_quoted: String = plain
            .lines()
            .map(|l| match l {
                "" => "\r\n".to_string(),
                l => format!("\"{}\"\r\n", l.replace(',', "\",\"")),
            })
            .collect();
        let mut spanning = String::from("id,note,n\n");
        for i in 0..2_000 {
            spanning.push_str(&format!(
                "r{i},\"a,\n{}\n\"\"z\",{i}\n",
                "w".repeat(i % 300)
            ));
        }
        spanning.push_str(&format!("big,\"{}\",end\n", "v,\n".repeat(2_000)));
        // A quote inside unquoted text half-way: read whole from that block on.
        let odd = spanning.replacen("\nr1000,", "\nr1000x\"y,", 1);
        assert_ne!(odd, spanning);
        for text in [plain, quoted, early, all_quoted, spanning, odd] {
            let whole = Piece {
                bytes: text.as_bytes(),
                first_line: 1,
                lines: line_ends(text.as_bytes(), 0, text.len()),
                number: 0,
            };
            let want: Vec<(u64, Vec<u8>)> = records(&whole).into_iter().skip(1).collect();
            for block in [64, 1_000, 4_096] {
                let (mut got, mut pieces) = (Vec::new(), 0);
                let streamed = stream_in_blocks(
                    Trickle(text.as_bytes()),
                    "t.csv",
                    |header| Ok(header.len()),
                    |_, piece| records(piece),
                    |part| {
                        pieces += 1;
                        got.extend(part)
                    },
                    block,
                )
                .unwrap();
                assert_eq!(streamed.context, 3, "block {block}");
                assert!(got == want, "records differ, block {block}");
                // Quoted files are streamed too, not read whole.
                assert!(pieces > 20, "{pieces} pieces, block {block}");
                assert_eq!(streamed.sha256, crate::digest::sha256(text.as_bytes()));
            }
        }
    }

    /// A body split as the stream splits a block (`stream_in_blocks`).
    fn split_as_streamed(body: &[u8], first_line: u64, want: usize) -> Vec<Piece<'_>> {
        let mut ends = Vec::new();
        if memchr::memchr(b'"', body).is_none() {
            split(body, first_line, want, None)
        } else if quoted::record_ends(body, &mut ends) {
            split(body, first_line, want, Some(&ends))
        } else {
            vec![one_piece(body, first_line)]
        }
    }

    /// A quoted body is split where records end, never at a line end inside quotes, and its
    /// pieces hold the records the whole does; a body with a quote inside unquoted text, which
    /// only the reader can follow, is one piece.
    #[test]
    fn quoted_bodies_split_where_records_end() {
        let body = "\"a\nb\",c\n\"d\",\"e,\nf\"\r\n".repeat(150_000);
        let pieces = split_as_streamed(body.as_bytes(), 2, 4);
        assert!(pieces.len() > 1);
        let whole = records(&one_piece(body.as_bytes(), 2));
        let parts: Vec<_> = pieces.iter().flat_map(records).collect();
        assert_eq!(parts, whole);
        // Each piece starts with one of the two records, never inside a quoted field.
        assert!(
            pieces
                .iter()
                .all(|p| p.bytes.starts_with(b"\"a\n") || p.bytes.starts_with(b"\"d\","))
        );
        let odd = body.replacen("\"d\"", "d\"x", 1);
        assert_eq!(split_as_streamed(odd.as_bytes(), 2, 4).len(), 1);
    }
}
