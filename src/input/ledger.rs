//! Reading the ledger, the system of record of every code ever issued. It is streamed, not kept:
//! what the run needs is how many codes each instance holds (by status), fingerprints of every
//! code and request id (uniqueness), and the rows whose request id the batch repeats
//! (idempotent re-runs). A structurally corrupt ledger refuses the run; other oddities are
//! findings.

mod fingerprints;
mod snapshot;

use super::chunks;
use super::table::{header_names, trim};
use super::{BATCH, FileInfo, InstanceIndex, Problem, RequestIndex};
use crate::code;
use crate::digest::Fingerprinter;
use crate::error::{Error, Result};
use crate::schema::{LEDGER_COLUMNS, Status, ledger_column};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

pub use fingerprints::{Codes, Fingerprints};
pub use snapshot::{ReadAt, Snapshot, present, unseekable};

/// How many corruption problems a refusal lists before it says how many more there are.
const MAX_LISTED: usize = 20;

/// A ledger row whose request id a batch request repeats.
#[derive(Debug, Clone)]
pub struct LedgerHit {
    /// Exactly as the ledger writes it.
    pub code: String,
    pub instance_id: String,
    pub account_id: String,
}

pub struct Ledger {
    pub info: FileInfo,
    /// False when the file did not exist: an empty ledger.
    pub exists: bool,
    /// The header as written, used to order the columns of appended rows.
    pub header: Vec<String>,
    /// Fingerprints of every code's identity key (`run` takes them out for issuing, and frees
    /// them after).
    pub codes: Codes,
    /// Codes held per instance key, by status (counted by the pieces of the file side by side).
    held: Held,
    /// The file the ledger was read from, to be read again in the rare run that needs the
    /// codes of instance ids the inventory lacks (`held_by_ids`).
    source: Snapshot,
    /// Those codes, by loose id and status, counted by the scan itself for a ledger that
    /// cannot be read again (a pipe, in a dry run); empty otherwise.
    unmatched: HashMap<String, [u32; 3]>,
    /// By request row: the ledger row that already answers it.
    pub hits: HashMap<u32, LedgerHit, foldhash::fast::RandomState>,
    /// Compliance findings (not reasons to stop).
    pub problems: Vec<Problem>,
}

/// What a ledger file about to be replaced (`--ledger-out`, one another run wrote) holds that
/// this run's ledger does not: codes it lacks, and the codes it records as `spent` that this
/// run's ledger holds too, to be checked there (`Ledger::unspent`).
#[derive(Debug, Default)]
pub struct Found {
    /// Codes this run's ledger lacks.
    pub missing: u64,
    /// The fingerprints of the codes recorded there as `spent` (any row of a code repeated)
    /// that this run's ledger holds, sorted.
    pub spent: Vec<u128>,
}

/// The position of the column `name` (one of `LEDGER_COLUMNS`) in a ledger `header`.
fn column_at(header: &[String], name: &str) -> Option<usize> {
    header
        .iter()
        .position(|h| ledger_column(h).is_some_and(|c| LEDGER_COLUMNS[c] == name))
}

/// Whether a ledger's status cell says `spent` (as statuses are read: any case, trimmed).
fn is_spent(cell: Option<&[u8]>) -> bool {
    cell.is_some_and(|c| Status::parse(&String::from_utf8_lossy(c)) == Some(Status::Spent))
}

/// What the file at `path` (a ledger another run wrote, about to be replaced) holds that
/// `codes` (this run's ledger) lacks (`Found`): nothing for a file that is not there or is
/// empty; `Err` with what is wrong when it cannot be read as a ledger (no `code` column, not
/// CSV).
pub fn codes_missing_from(
    path: &Path,
    codes: &Codes,
    fingerprints: &Fingerprinter,
) -> std::result::Result<Found, String> {
    // Opened without waiting, and read only if it is a file: a pipe there would hold the run,
    // and the lock, forever.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::default()),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("is not a regular file".to_string());
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(std::io::BufReader::new(file));
    let mut record = csv::ByteRecord::new();
    let read = |rdr: &mut csv::Reader<_>, record: &mut csv::ByteRecord| {
        rdr.read_byte_record(record)
            .map_err(|e| format!("is not a ledger: {e}"))
    };
    if !read(&mut rdr, &mut record)? {
        return Ok(Found::default());
    }
    let header = header_names(&record, "")
        .map_err(|_| "is not a ledger: its header is not UTF-8".to_string())?;
    let at = header
        .iter()
        .position(|h| ledger_column(h) == Some(0))
        .ok_or("is not a ledger: it has no `code` column")?;
    let status = column_at(&header, "status");
    let mut held = Found::default();
    let mut key = String::new();
    // Where the last record starts, for the quote check below.
    let mut last = record.position().map_or(0, |p| p.byte());
    while read(&mut rdr, &mut record)? {
        last = record.position().map_or(last, |p| p.byte());
        let cell = String::from_utf8_lossy(record.get(at).unwrap_or_default());
        if trim(&cell).is_empty() {
            continue;
        }
        key.clear();
        code::identity_key_into(&cell, &mut key);
        let fingerprint = fingerprints.of(&key);
        if !codes.contains(fingerprint) {
            held.missing += 1;
        } else if is_spent(status.and_then(|at| record.get(at))) {
            held.spent.push(fingerprint);
        }
    }
    // A quote left open takes every row after it into one field: codes there were not counted.
    use std::io::{Read, Seek};
    let mut file = rdr.into_inner().into_inner();
    let mut tail = Vec::new();
    file.seek(std::io::SeekFrom::Start(last))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(|e| format!("cannot be read: {e}"))?;
    if chunks::unclosed_quote(&tail, 0).is_some() {
        return Err(
            "ends inside a quote that is never closed, which hides the rows after it".to_string(),
        );
    }
    held.spent.sort_unstable();
    held.spent.dedup();
    Ok(held)
}

impl Ledger {
    /// How many of the codes `spent` (sorted fingerprints: those a ledger file about to be
    /// replaced records as `spent`, `codes_missing_from`) this ledger records as not spent on
    /// every row, so that replacing that file would make them usable again, where SPEC says a
    /// spent code is permanently invalid. The ledger is read a second time (the same open file,
    /// still under the lock), only when `spent` holds any; 0 for a ledger that cannot be read
    /// again (a pipe, in a dry run).
    pub fn unspent(
        &self,
        spent: &[u128],
        fingerprints: &Fingerprinter,
    ) -> std::result::Result<u64, String> {
        let Some(file) = self.source.seekable().filter(|_| !spent.is_empty()) else {
            return Ok(0);
        };
        let (Some(at), status) = (
            column_at(&self.header, "code"),
            column_at(&self.header, "status"),
        ) else {
            return Err(self.not_read_again("its header has changed"));
        };
        let mut key = String::new();
        // Per code of `spent`: whether a row of this ledger records it as spent.
        let mut here = vec![false; spent.len()];
        self.each_row_again(file, |record| {
            let cell = String::from_utf8_lossy(record.get(at).unwrap_or_default());
            if trim(&cell).is_empty() {
                return;
            }
            key.clear();
            code::identity_key_into(&cell, &mut key);
            if let Ok(i) = spent.binary_search(&fingerprints.of(&key))
                && is_spent(status.and_then(|at| record.get(at)))
            {
                here[i] = true;
            }
        })?;
        Ok(here.iter().filter(|spent| !**spent).count() as u64)
    }

    /// Reads the ledger a second time from `file` (the same open file, `Snapshot::seekable`),
    /// handing `each` every row after the header.
    fn each_row_again(
        &self,
        file: ReadAt,
        mut each: impl FnMut(&csv::ByteRecord),
    ) -> std::result::Result<(), String> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(std::io::BufReader::new(file));
        let mut record = csv::ByteRecord::new();
        while rdr
            .read_byte_record(&mut record)
            .map_err(|e| self.not_read_again(e))?
        {
            each(&record);
        }
        Ok(())
    }

    /// The message of a second read of the ledger that failed, and why.
    fn not_read_again(&self, why: impl std::fmt::Display) -> String {
        format!("{}: cannot read the ledger again: {why}", self.info.path)
    }

    /// How many codes each of `ids` (instance ids the inventory lacks, in their loose form,
    /// `index::loose`) holds, by status, for the rare run whose policy lets a request for such
    /// an id through: the ledger is read a second time (the same open file, still under the
    /// lock); a pipe, read once, was counted by the scan. `Err` when the second read fails.
    pub fn held_by_ids(
        &self,
        ids: &std::collections::HashSet<String>,
    ) -> std::result::Result<HashMap<String, [u32; 3]>, String> {
        let mut held: HashMap<String, [u32; 3]> = HashMap::new();
        let Some(file) = self
            .source
            .seekable()
            .filter(|_| self.exists && !ids.is_empty())
        else {
            held.extend(
                (self.unmatched.iter())
                    .filter(|(id, _)| ids.contains(*id))
                    .map(|(id, n)| (id.clone(), *n)),
            );
            return Ok(held);
        };
        let (Some(instance), Some(status)) = (
            column_at(&self.header, "instance_id"),
            column_at(&self.header, "status"),
        ) else {
            return Err(self.not_read_again("its header has changed"));
        };
        let cell = |record: &csv::ByteRecord, at: usize| {
            String::from_utf8_lossy(record.get(at).unwrap_or_default()).into_owned()
        };
        self.each_row_again(file, |record| {
            let id = super::index::loose(&cell(record, instance));
            if ids.contains(&id)
                && let Some(s) = Status::parse(&cell(record, status))
            {
                held.entry(id).or_default()[s as usize] += 1;
            }
        })?;
        Ok(held)
    }

    /// How many codes the instance of `key` holds, by status.
    pub fn held(&self, key: u32) -> [u32; 3] {
        self.held.get(key)
    }
}

/// How many codes each instance key holds, by status, counted by many threads at once. The
/// scan adds to the counters at random, so they are 16 bits (6 bytes a key, where 32-bit ones
/// took 12); a counter that passes 65,535 wraps to 0 and its wrap is kept aside, so the counts
/// stay exact.
struct Held {
    counts: Vec<[AtomicU16; 3]>,
    /// Per (key, status): how many times its counter wrapped.
    wraps: Mutex<HashMap<(u32, usize), u32>>,
    /// Whether `wraps` holds anything (so that reading a count need not lock it).
    wrapped: AtomicBool,
}

impl Held {
    /// Zero codes for each of `keys` keys, filled on every thread (the first write to each page
    /// of new memory is a page fault).
    fn new(keys: usize) -> Held {
        let mut counts = Vec::new();
        counts.par_extend((0..keys).into_par_iter().map(|_| Default::default()));
        Held {
            counts,
            wraps: Mutex::default(),
            wrapped: AtomicBool::new(false),
        }
    }

    fn add(&self, key: u32, status: usize) {
        let before = self.counts[key as usize][status].fetch_add(1, Ordering::Relaxed);
        if before == u16::MAX {
            // INVARIANT: exactly one addition sees the counter at its top, so each wrap is
            // recorded once.
            let mut wraps = self.wraps.lock().unwrap_or_else(|e| e.into_inner());
            *wraps.entry((key, status)).or_default() += 1;
            self.wrapped.store(true, Ordering::Relaxed);
        }
    }

    /// Prefetches a key's counters: a batch about to add to many keys' counters calls this for
    /// each first, so that their cache misses overlap.
    fn prefetch(&self, key: u32) {
        super::prefetch(&self.counts[key as usize]);
    }

    /// The counts of `key`, once every addition is done.
    fn get(&self, key: u32) -> [u32; 3] {
        let mut counts = self.counts[key as usize]
            .each_ref()
            .map(|n| u32::from(n.load(Ordering::Relaxed)));
        if self.wrapped.load(Ordering::Relaxed) {
            let wraps = self.wraps.lock().unwrap_or_else(|e| e.into_inner());
            for (status, n) in counts.iter_mut().enumerate() {
                let times = wraps.get(&(key, status)).copied().unwrap_or(0);
                *n = n.saturating_add(times.saturating_mul(1 << 16));
            }
        }
        counts
    }
}

/// The positions of the ledger's columns in its header.
struct Positions {
    code: usize,
    instance: usize,
    status: usize,
    account: Option<usize>,
    request: Option<usize>,
    issued_at: Option<usize>,
    domain: Option<usize>,
}

/// What one piece of the ledger holds.
#[derive(Default)]
struct Part {
    rows: u64,
    codes: Vec<u128>,
    request_ids: Vec<u128>,
    hits: Vec<(u32, LedgerHit)>,
    /// Codes per loose instance id that names no inventory instance, when counted (see
    /// `Ledger::unmatched`).
    unmatched: HashMap<String, [u32; 3]>,
    findings: Vec<Problem>,
    corrupt: Vec<(u64, String)>,
    /// A buffer for codes' identity keys.
    key: String,
    /// Rows whose lookups wait for a whole batch.
    waiting: Waiting,
}

/// Ledger rows waiting to be looked up in the tables a batch at a time, so that the lookups'
/// cache misses overlap. Their cells are copied into one buffer: the reader's cells live only as
/// long as its callback.
#[derive(Default)]
struct Waiting {
    text: String,
    rows: Vec<WaitingRow>,
}

/// Where a waiting row's instance id, request id, code and account id are in `Waiting::text`
/// (one after the other: where the first starts, then where each ends), its status and its line.
struct WaitingRow {
    at: [usize; 5],
    status: Status,
    line: u64,
}

impl Waiting {
    /// A waiting row's instance id, request id, code and account id.
    #[inline]
    fn cells(&self, w: &WaitingRow) -> [&str; 4] {
        let (t, at) = (&self.text, w.at);
        [
            &t[at[0]..at[1]],
            &t[at[1]..at[2]],
            &t[at[2]..at[3]],
            &t[at[3]..at[4]],
        ]
    }
}

/// Reads the ledger. `by_instance` maps an instance id to its key, `by_request` a request id to
/// the first batch row that carries it. The pieces of the file are read in
/// parallel; duplicates are found afterwards by sorting fingerprints, and reported at the later
/// of the two lines, as a reader going top to bottom would. The fingerprints are kept without
/// their lines (a million ledger rows keep two each while the ledger is checked): when one
/// repeats, the run refuses, and the file is read again for the lines (`repeat_lines`).
pub fn scan(
    path: &Path,
    shown: &str,
    fingerprints: &Fingerprinter,
    by_instance: &InstanceIndex,
    by_request: &RequestIndex,
) -> Result<Ledger> {
    let snapshot = Snapshot::open(path, shown)?;
    scan_snapshot(&snapshot, shown, fingerprints, by_instance, by_request)
}

/// `scan` of a ledger opened already (see `Snapshot`).
pub fn scan_snapshot(
    snapshot: &Snapshot,
    shown: &str,
    fingerprints: &Fingerprinter,
    by_instance: &InstanceIndex,
    by_request: &RequestIndex,
) -> Result<Ledger> {
    let mut ledger = Ledger {
        info: FileInfo {
            path: shown.to_string(),
            ..FileInfo::default()
        },
        exists: snapshot.exists(),
        header: Vec::new(),
        codes: Codes::default(),
        held: Held::new(by_instance.key_space()),
        source: snapshot.clone(),
        unmatched: HashMap::new(),
        hits: HashMap::default(),
        problems: Vec::new(),
    };
    // A ledger that cannot be read again (a pipe) has its unmatched ids counted now.
    let once = snapshot.seekable().is_none();
    let Some(reader) = snapshot.reader() else {
        return Ok(ledger);
    };
    let prepare = |record: &csv::ByteRecord| read_header(record, shown);
    let mut corrupt = Vec::new();
    // Room for a fingerprint of each kind per row, the rows counted from the file's size (a
    // row of the ledger is rarely under a hundred bytes).
    let expected = (snapshot.size() / 100) as usize;
    let mut codes = Fingerprints::with_room(expected);
    let mut request_ids = Fingerprints::with_room(expected);
    let keep = |part: Part| {
        ledger.info.rows += part.rows;
        codes.extend(&part.codes);
        request_ids.extend(&part.request_ids);
        ledger.hits.extend(part.hits);
        for (id, counts) in part.unmatched {
            let all = ledger.unmatched.entry(id).or_default();
            for (a, n) in all.iter_mut().zip(counts) {
                *a += n;
            }
        }
        ledger.problems.extend(part.findings);
        corrupt.extend(part.corrupt);
    };
    let streamed = chunks::stream(
        reader,
        shown,
        prepare,
        |(header, pos), piece| {
            let ctx = Context {
                shown,
                width: header.len(),
                pos,
                fingerprints,
                by_instance,
                by_request,
                held: &ledger.held,
                count_unmatched: once,
            };
            ctx.read_piece(piece)
        },
        keep,
    )?;
    let (header, _) = streamed.context;
    ledger.header = header;
    ledger.info.sha256 = streamed.sha256;
    let at = |line| format!("{shown}:{line}");
    let (code_repeats, request_repeats) = rayon::join(
        || codes.sort_and_find_repeats(),
        || request_ids.sort_and_find_repeats(),
    );
    let repeated = [code_repeats, request_repeats];
    let lines = if repeated.iter().all(Vec::is_empty) {
        Default::default()
    } else {
        repeat_lines(snapshot, shown, fingerprints, [&repeated[0], &repeated[1]])?
    };
    for ((Lines { pairs, found }, repeated), (column, what)) in lines
        .into_iter()
        .zip(&repeated)
        .zip([("code", "code"), ("request_id", "request id")])
    {
        for (line, first) in pairs {
            let msg = format!("column `{column}`: this {what} already appears on line {first}");
            corrupt.push((line, format!("{}: {msg}", at(line))));
        }
        // The file changed between the two reads (a writer that ignores the lock), or it is a
        // pipe, read once: the repeats still refuse the run, without their lines.
        if found < repeated.len() {
            let why = if snapshot.is_stream() {
                "the ledger comes from a pipe, so its lines cannot be read again"
            } else {
                "the file changed before its lines were found"
            };
            corrupt.push((
                u64::MAX,
                format!("{shown}: column `{column}`: a {what} appears more than once, but {why}"),
            ));
        }
    }
    drop(request_ids);
    if !corrupt.is_empty() {
        corrupt.sort();
        return Err(refusal(corrupt.into_iter().map(|(_, m)| m).collect()));
    }
    // Sorted already, by `sort_and_find_repeats`.
    ledger.codes = Codes(codes);
    Ok(ledger)
}

/// The ledger's header names and where its columns are, for the scan and for the second read.
fn read_header(record: &csv::ByteRecord, shown: &str) -> Result<(Vec<String>, Positions)> {
    let header = header_names(record, shown)?;
    let pos = positions(&header, shown)?;
    Ok((header, pos))
}

/// What reading the ledger again found for one kind of fingerprint.
#[derive(Default)]
struct Lines {
    /// (a later line, the first line) for each repeat.
    pairs: Vec<(u64, u64)>,
    /// How many of the repeated fingerprints were found repeated again.
    found: usize,
}

/// Reads the ledger again for the lines of the rows whose code's or request id's fingerprint
/// is in `repeated` (codes, then request ids; each ascending): for each row after the first
/// with the same fingerprint, (its line, the first's line), and how many of the fingerprints
/// were found repeated again. A row counts only where the scan took its fingerprint (`sound`).
/// Only a ledger with repeats is read twice, and that run refuses.
fn repeat_lines(
    snapshot: &Snapshot,
    shown: &str,
    fingerprints: &Fingerprinter,
    repeated: [&[u128]; 2],
) -> Result<[Lines; 2]> {
    let prepare = |record: &csv::ByteRecord| {
        read_header(record, shown).map(|(header, pos)| (header.len(), pos))
    };
    let mut seen: [Vec<(u128, u64)>; 2] = Default::default();
    let Some(reader) = snapshot.reader() else {
        return Ok(Default::default());
    };
    chunks::stream(
        reader,
        shown,
        prepare,
        |(width, pos), piece| {
            let mut found: [Vec<(u128, u64)>; 2] = Default::default();
            let mut key = String::new();
            // A piece that cannot be read was refused by the scan already.
            let _ = chunks::read_records(piece, |cells, line| {
                let row = Row { cells, line, shown };
                let Ok(cells) = sound(&row, *width, pos) else {
                    return;
                };
                let (code, request) = cells.fingerprints(fingerprints, &mut key);
                let fps = [Some(code), request];
                for ((fp, repeated), found) in fps.iter().zip(repeated).zip(&mut found) {
                    if let Some(fp) = fp
                        && repeated.binary_search(fp).is_ok()
                    {
                        found.push((*fp, line));
                    }
                }
            });
            found
        },
        |found| {
            for (all, mine) in seen.iter_mut().zip(found) {
                all.extend(mine);
            }
        },
    )?;
    Ok(seen.map(|mut seen| {
        seen.sort_unstable();
        let groups = seen.chunk_by(|a, b| a.0 == b.0);
        let found = groups.clone().filter(|rows| rows.len() > 1).count();
        let pairs = groups
            .flat_map(|rows| rows[1..].iter().map(|(_, line)| (*line, rows[0].1)))
            .collect();
        Lines { pairs, found }
    }))
}

/// The cells of a sound ledger row that the scan reads.
struct Sound<'r> {
    code: &'r str,
    instance: &'r str,
    request: &'r str,
    account: &'r str,
    status: Status,
}

impl Sound<'_> {
    /// The fingerprints the scan keeps of the row: its code's identity key (made in `key`),
    /// and its request id's when it has one.
    fn fingerprints(&self, fingerprints: &Fingerprinter, key: &mut String) -> (u128, Option<u128>) {
        // The code itself is never repeated in a message: it is a secret.
        code::identity_key_into(self.code, key);
        // A request id of spaces is empty, as in the requests file: no request's, never repeated.
        let request = (!trim(self.request).is_empty()).then(|| fingerprints.of(self.request));
        (fingerprints.of(key), request)
    }
}

/// A ledger row's cells, when the row is sound; `Err` is a corruption that refuses the run.
fn sound<'r>(
    row: &'r Row<'_>,
    width: usize,
    pos: &Positions,
) -> std::result::Result<Sound<'r>, String> {
    if row.cells.len() != width {
        return Err(format!(
            "{}:{}: the row has {}, the header has {width}",
            row.shown,
            row.line,
            super::table::fields(row.cells.len()),
        ));
    }
    let code = row.cell(Some(pos.code), "code")?;
    let instance = row.cell(Some(pos.instance), "instance_id")?;
    let status_text = row.cell(Some(pos.status), "status")?;
    let request = row.cell(pos.request, "request_id")?;
    let account = row.cell(pos.account, "account_id")?;
    for (value, name) in [
        (code, "code"),
        (instance, "instance_id"),
        (status_text, "status"),
    ] {
        if trim(value).is_empty() {
            return Err(row.at(name, "a required value is missing"));
        }
    }
    // No ledger cell is repeated in a message: a code may sit in the wrong column.
    let status = Status::parse(status_text).ok_or_else(|| {
        row.at(
            "status",
            "unknown status (expected issued, in_use or spent)",
        )
    })?;
    Ok(Sound {
        code,
        instance,
        request,
        account,
        status,
    })
}

/// What every piece's reader shares.
struct Context<'a> {
    shown: &'a str,
    width: usize,
    pos: &'a Positions,
    fingerprints: &'a Fingerprinter,
    by_instance: &'a InstanceIndex<'a>,
    by_request: &'a RequestIndex<'a>,
    held: &'a Held,
    /// Whether to count the rows that name no inventory instance by their id (`unmatched`):
    /// only for a ledger that cannot be read again.
    count_unmatched: bool,
}

impl Context<'_> {
    fn read_piece(&self, piece: &chunks::Piece) -> Part {
        let mut part = Part::default();
        let read = chunks::read_records(piece, |cells, line| {
            part.rows += 1;
            let row = Row {
                cells,
                line,
                shown: self.shown,
            };
            if let Err(e) = self.take(&row, &mut part) {
                part.corrupt.push((line, e));
            }
            if part.waiting.rows.len() == BATCH {
                self.look_up(&mut part);
            }
        });
        self.look_up(&mut part);
        // Its buffers are freed before the part is kept.
        part.waiting = Waiting::default();
        // The lookups' findings came a batch at a time, after the rows' own: file order again.
        part.findings.sort_by_key(|p| p.line);
        let last = match read {
            Ok(read) => read.last,
            Err((e, line)) => {
                part.corrupt
                    .push((line, format!("{}:{line}: cannot read: {e}", self.shown)));
                return part;
            }
        };
        if let Some(field) = chunks::unclosed_quote(piece.bytes, last.0) {
            // Refused even when the row read whole (a quote left open in its last field): the
            // new rows appended after it would be read as part of that field. What the row was
            // found to lack besides (its field count) follows from the quote: not said.
            part.corrupt.retain(|(line, _)| *line != last.1);
            part.corrupt.push((
                last.1,
                super::table::unclosed(self.shown, last.1, field).message,
            ));
        }
        part
    }

    /// Takes in one ledger row; `Err` is a corruption that refuses the run.
    fn take(&self, row: &Row, part: &mut Part) -> std::result::Result<(), String> {
        let sound = sound(row, self.width, self.pos)?;
        let (code_fp, request_fp) = sound.fingerprints(self.fingerprints, &mut part.key);
        part.codes.push(code_fp);
        part.request_ids.extend(request_fp);
        let Sound {
            code,
            instance,
            request,
            account,
            status,
        } = sound;
        let waiting = &mut part.waiting;
        let mut at = [waiting.text.len(); 5];
        for (i, cell) in [instance, request, code, account].into_iter().enumerate() {
            waiting.text.push_str(cell);
            at[i + 1] = waiting.text.len();
        }
        waiting.rows.push(WaitingRow {
            at,
            status,
            line: row.line,
        });
        findings(row, self.pos, status, &mut part.findings);
        Ok(())
    }

    /// Looks the waiting rows (at most a batch) up: the codes each instance holds, and the rows
    /// that answer a batch request already.
    fn look_up(&self, part: &mut Part) {
        let mut waiting = std::mem::take(&mut part.waiting);
        let n = waiting.rows.len();
        let (mut instances, mut requests) = ([""; BATCH], [""; BATCH]);
        for (i, w) in waiting.rows.iter().enumerate() {
            [instances[i], requests[i], _, _] = waiting.cells(w);
        }
        let (mut keys, mut answered) = ([None; BATCH], [None; BATCH]);
        self.by_instance.keys(&instances[..n], &mut keys);
        self.by_request.first_rows(&requests[..n], &mut answered);
        // The instances' counters, prefetched together before they are counted up (an atomic
        // addition waits for its cache line).
        for k in keys[..n].iter().flatten() {
            self.held.prefetch(*k);
        }
        for (i, w) in waiting.rows.iter().enumerate() {
            let status = w.status as usize;
            match keys[i] {
                Some(k) => {
                    self.held.add(k, status);
                    // An inventory that also writes the id with upper case or spaces: those
                    // rows hold the code too (almost never: checked once per row).
                    if self.by_instance.has_odd_ids() {
                        let loose = super::index::loose(instances[i]);
                        for other in self.by_instance.loose_keys(&loose) {
                            if other != k {
                                self.held.add(other, status);
                            }
                        }
                    }
                }
                None => {
                    let keys = self.loose_keys(instances[i], w.line, part);
                    for k in &keys {
                        self.held.add(*k, status);
                    }
                    if keys.is_empty() && self.count_unmatched {
                        let id = super::index::loose(instances[i]);
                        part.unmatched.entry(id).or_default()[status] += 1;
                    }
                }
            }
            if let Some(r) = answered[i] {
                let [instance, _, code, account] = waiting.cells(w);
                let hit = LedgerHit {
                    code: code.to_string(),
                    instance_id: instance.to_string(),
                    account_id: account.to_string(),
                };
                part.hits.push((r, hit));
            }
        }
        waiting.text.clear();
        waiting.rows.clear();
        part.waiting = waiting;
    }
}

impl Context<'_> {
    /// The keys of the inventory instances that a ledger instance id names once spelt loosely
    /// (`index::loose`: case, surrounding spaces and Unicode's other spellings ignored), on
    /// either side, when it names none exactly (`I-BP1 `
    /// written by hand for the API's `i-bp1`, or `i-bp1` for an inventory row that reads
    /// `I-BP1`): its code counts toward each one's limit, so that a limit never fails open on a
    /// spelling, and the row gets a finding. Requests are still matched exactly.
    #[cold]
    fn loose_keys(&self, instance: &str, line: u64, part: &mut Part) -> Vec<u32> {
        let loose = super::index::loose(instance);
        if loose.is_empty() {
            return Vec::new();
        }
        let keys = self.by_instance.loose_keys(&loose);
        if keys.is_empty() {
            return keys;
        }
        // No ledger cell is repeated in a message: a code may sit in the wrong column.
        part.findings.push(Problem {
            file: self.shown.to_string(),
            line,
            column: "instance_id".to_string(),
            message: "names an inventory instance only when spelt loosely (case, surrounding \
                      spaces and Unicode's other spellings ignored); its code counts toward \
                      that instance's codes"
                .to_string(),
        });
        keys
    }
}

fn refusal(mut corrupt: Vec<String>) -> Error {
    let more = corrupt.len().saturating_sub(MAX_LISTED);
    corrupt.truncate(MAX_LISTED);
    if more > 0 {
        corrupt.push(format!("… and {more} more problems"));
    }
    corrupt.push("the ledger is corrupt: nothing was written".to_string());
    Error::refused(corrupt.join("\n"))
}

fn positions(header: &[String], shown: &str) -> Result<Positions> {
    let mut problems = Vec::new();
    let mut find = |name: &str, required: bool| {
        let hits: Vec<usize> = (0..header.len())
            .filter(|i| ledger_column(&header[*i]).is_some_and(|c| LEDGER_COLUMNS[c] == name))
            .collect();
        match hits.as_slice() {
            [] if required => {
                problems.push(format!("{shown}:1: the ledger has no `{name}` column"));
                None
            }
            [] => None,
            [one] => Some(*one),
            [_, b, ..] => {
                problems.push(format!(
                    "{shown}:1:{}: two headers name column `{name}`",
                    b + 1
                ));
                None
            }
        }
    };
    let [code, instance, account, request, issued_at, status, domain] =
        LEDGER_COLUMNS.map(|name| find(name, matches!(name, "code" | "instance_id" | "status")));
    // Extra columns too: new rows are written under the header, and one name twice is a
    // damaged header, whichever column it names (SPEC §2).
    for (a, b) in crate::schema::repeated_headers(header) {
        if ledger_column(&header[b]).is_none() {
            problems.push(format!(
                "{shown}:1:{}: two headers name column `{}`",
                b + 1,
                header[a]
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::refused(problems.join("\n")));
    }
    Ok(Positions {
        code: code.unwrap_or_default(),
        instance: instance.unwrap_or_default(),
        status: status.unwrap_or_default(),
        account,
        request,
        issued_at,
        domain,
    })
}

struct Row<'a> {
    cells: &'a [chunks::Cell<'a>],
    line: u64,
    shown: &'a str,
}

impl Row<'_> {
    /// A cell as text; `Err` names the place when it cannot be (see `Bad` in
    /// input/chunks/records.rs).
    fn cell(&self, at: Option<usize>, name: &str) -> std::result::Result<&str, String> {
        let Some(i) = at else { return Ok("") };
        match self.cells.get(i) {
            None => Ok(""),
            Some(Ok(text)) => Ok(text),
            Some(Err(bad)) => Err(self.at(name, bad.message())),
        }
    }

    fn at(&self, column: &str, message: &str) -> String {
        format!("{}:{}: column `{column}`: {message}", self.shown, self.line)
    }
}

/// Oddities worth an auditor's eye that do not stop the run.
fn findings(row: &Row, pos: &Positions, status: Status, out: &mut Vec<Problem>) {
    let mut finding = |column: &str, message: String| {
        out.push(Problem {
            file: row.shown.to_string(),
            line: row.line,
            column: column.to_string(),
            message,
        })
    };
    // These two cells are not the ledger's keys: one that is not text is a finding, not a
    // reason to stop.
    let mut text = |column: &str, at: Option<usize>| match at.and_then(|i| row.cells.get(i)) {
        Some(Err(bad)) => {
            finding(column, bad.message().to_string());
            None
        }
        Some(Ok(text)) => Some(*text),
        None => Some(""),
    };
    let (domain, issued_at) = (text("domain", pos.domain), text("issued_at", pos.issued_at));
    if status == Status::InUse && domain.is_some_and(|d| trim(d).is_empty()) {
        finding("domain", "an `in_use` code has no domain".to_string());
    }
    // The cell is not repeated: a code may sit in the wrong column.
    if let Some(at) = issued_at
        && !at.is_empty()
        && crate::time::parse_micros(at).is_err()
    {
        finding(
            "issued_at",
            format!("the value {}", crate::time::NOT_A_TIME),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second read finds every later line of a repeated fingerprint with its first line,
    /// and counts a fingerprint it no longer finds repeated (the file changed) as not found.
    #[test]
    fn repeat_lines_pairs_each_later_line_with_the_first() {
        let dir = std::env::temp_dir().join(format!("icp-repeat-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.csv");
        let rows = "A,i-1,100,L1,,issued,\nB,i-1,100,L2,,issued,\nA,i-2,100,L1,,spent,\n\
                    a-,i-2,100,L3,,issued,\n";
        std::fs::write(
            &path,
            format!("code,instance_id,account_id,request_id,issued_at,status,domain\n{rows}"),
        )
        .unwrap();
        let fingerprints = Fingerprinter::default();
        let mut key = String::new();
        let mut fp_of_code = |code: &str| {
            code::identity_key_into(code, &mut key);
            fingerprints.of(&key)
        };
        // A repeats on lines 4 and 5; B does not repeat (as if the file had changed).
        let mut codes = vec![fp_of_code("A"), fp_of_code("B")];
        codes.sort_unstable();
        let requests = [fingerprints.of("L1")];
        let [codes, requests] = repeat_lines(
            &Snapshot::open(&path, "ledger.csv").unwrap(),
            "ledger.csv",
            &fingerprints,
            [&codes, &requests],
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(codes.pairs, [(4, 2), (5, 2)]);
        assert_eq!(codes.found, 1);
        assert_eq!(requests.pairs, [(4, 2)]);
        assert_eq!(requests.found, 1);
    }

    /// Counters added to from many threads at once stay exact past their 16 bits.
    #[test]
    fn held_counts_stay_exact_past_sixteen_bits() {
        let held = Held::new(4);
        // Key 1, status 2: 200,000 additions (three wraps); key 3, status 0: 65,536 (one wrap,
        // ending at 0); key 0, status 1: 5.
        let adds: Vec<(u32, usize)> = std::iter::repeat_n((1, 2), 200_000)
            .chain(std::iter::repeat_n((3, 0), 65_536))
            .chain(std::iter::repeat_n((0, 1), 5))
            .collect();
        rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap()
            .install(|| {
                adds.par_iter()
                    .with_max_len(1_000)
                    .for_each(|(key, status)| held.add(*key, *status))
            });
        assert_eq!(held.get(0), [0, 5, 0]);
        assert_eq!(held.get(1), [0, 0, 200_000]);
        assert_eq!(held.get(2), [0, 0, 0]);
        assert_eq!(held.get(3), [65_536, 0, 0]);
    }
}
