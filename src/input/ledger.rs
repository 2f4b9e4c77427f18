//! Reading the ledger, the system of record of every code ever issued. It is streamed, not kept:
//! what the run needs is how many codes each instance holds (by status), fingerprints of every
//! code and request id (uniqueness), and the rows whose request id the batch repeats
//! (idempotent re-runs). A structurally corrupt ledger refuses the run; other oddities are
//! findings.

use super::table::{header_names, open};
use super::{FileInfo, Problem};
use crate::code;
use crate::digest::{Fingerprinter, HashingReader};
use crate::error::{Error, Result};
use crate::schema::{LEDGER_COLUMNS, Status, fold};
use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::Path;

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
    /// Fingerprints of every code's identity key.
    pub codes: HashSet<u128>,
    pub fingerprints: Fingerprinter,
    /// Codes held per instance key, by status.
    pub held: Vec<[u32; 3]>,
    /// By request row: the ledger row that already answers it.
    pub hits: HashMap<u32, LedgerHit>,
    /// Compliance findings (not reasons to stop).
    pub problems: Vec<Problem>,
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

/// Streams the ledger. `instance_key` maps an instance id to its key (`< keys`), `request_row`
/// a request id to the first batch row that carries it.
pub fn scan(
    path: &Path,
    shown: &str,
    keys: usize,
    instance_key: impl Fn(&str) -> Option<u32>,
    request_row: impl Fn(&str) -> Option<u32>,
) -> Result<Ledger> {
    let mut ledger = Ledger {
        info: FileInfo {
            path: shown.to_string(),
            ..FileInfo::default()
        },
        exists: path.exists(),
        header: Vec::new(),
        codes: HashSet::new(),
        fingerprints: Fingerprinter::default(),
        held: vec![[0; 3]; keys],
        hits: HashMap::new(),
        problems: Vec::new(),
    };
    if !ledger.exists {
        return Ok(ledger);
    }
    let file = open(path, shown)?;
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(&mut hashing);
    let mut record = csv::ByteRecord::new();
    let cannot = |e: csv::Error| Error::refused(format!("{shown}: cannot read the ledger: {e}"));
    if !rdr.read_byte_record(&mut record).map_err(cannot)? {
        return Err(Error::refused(format!(
            "{shown}:1: the ledger is empty: expected a header row (delete the file for an empty ledger)"
        )));
    }
    ledger.header = header_names(&record, shown)?;
    let pos = positions(&ledger.header, shown)?;
    let mut corrupt = Vec::new();
    let mut request_ids = HashSet::new();
    while rdr.read_byte_record(&mut record).map_err(cannot)? {
        let line = record.position().map_or(0, |p| p.line());
        ledger.info.rows += 1;
        let row = Row {
            record: &record,
            line,
            shown,
        };
        if let Err(e) = ledger.take(&row, &pos, &mut request_ids, &instance_key, &request_row) {
            corrupt.push(e);
        }
    }
    drop(rdr);
    ledger.info.sha256 = hashing
        .finish()
        .map_err(|e| Error::refused(format!("{shown}: cannot read the ledger: {e}")))?;
    if corrupt.is_empty() {
        Ok(ledger)
    } else {
        Err(refusal(corrupt))
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
            .filter(|i| {
                let h = fold(&header[*i]);
                h == fold(name) || (name == "account_id" && (h == "ownerid"))
            })
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
    record: &'a csv::ByteRecord,
    line: u64,
    shown: &'a str,
}

impl Row<'_> {
    /// A cell as text; `Err` names the place when it is not UTF-8.
    fn cell(&self, at: Option<usize>, name: &str) -> std::result::Result<&str, String> {
        let Some(i) = at else { return Ok("") };
        let raw = self.record.get(i).unwrap_or(b"");
        std::str::from_utf8(raw).map_err(|_| self.at(name, "the value is not valid UTF-8"))
    }

    fn at(&self, column: &str, message: &str) -> String {
        format!("{}:{}: column `{column}`: {message}", self.shown, self.line)
    }
}

impl Ledger {
    /// Takes in one ledger row; `Err` is a corruption that refuses the run.
    fn take(
        &mut self,
        row: &Row,
        pos: &Positions,
        request_ids: &mut HashSet<u128>,
        instance_key: &impl Fn(&str) -> Option<u32>,
        request_row: &impl Fn(&str) -> Option<u32>,
    ) -> std::result::Result<(), String> {
        if row.record.len() != self.header.len() {
            return Err(format!(
                "{}:{}: the row has {} fields, the header has {}",
                row.shown,
                row.line,
                row.record.len(),
                self.header.len()
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
            if value.trim().is_empty() {
                return Err(row.at(name, "a required value is missing"));
            }
        }
        let status = Status::parse(status_text).ok_or_else(|| {
            row.at(
                "status",
                &format!("unknown status `{status_text}` (expected issued, in_use or spent)"),
            )
        })?;
        // The code itself is never repeated in a message: it is a secret.
        if !self
            .codes
            .insert(self.fingerprints.of(&code::identity_key(code)))
        {
            return Err(row.at("code", "this code appears on an earlier row"));
        }
        if !request.is_empty() && !request_ids.insert(self.fingerprints.of(request)) {
            return Err(row.at(
                "request_id",
                &format!("request id `{request}` appears on an earlier row"),
            ));
        }
        if let Some(k) = instance_key(instance) {
            self.held[k as usize][status as usize] += 1;
        }
        if let Some(r) = request_row(request).filter(|_| !request.is_empty()) {
            let hit = LedgerHit {
                code: code.to_string(),
                instance_id: instance.to_string(),
                account_id: account.to_string(),
            };
            self.hits.insert(r, hit);
        }
        self.findings(row, pos, status);
        Ok(())
    }

    /// Oddities worth an auditor's eye that do not stop the run.
    fn findings(&mut self, row: &Row, pos: &Positions, status: Status) {
        let domain = row.cell(pos.domain, "domain").unwrap_or("");
        if status == Status::InUse && domain.trim().is_empty() {
            self.finding(row, "domain", "an `in_use` code has no domain".to_string());
        }
        if let Ok(at) = row.cell(pos.issued_at, "issued_at")
            && !at.is_empty()
            && let Err(e) = crate::time::parse(at)
        {
            self.finding(row, "issued_at", e);
        }
    }

    fn finding(&mut self, row: &Row, column: &str, message: String) {
        self.problems.push(Problem {
            file: row.shown.to_string(),
            line: row.line,
            column: column.to_string(),
            message,
        });
    }
}
