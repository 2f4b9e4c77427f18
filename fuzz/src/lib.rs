//! The checks behind each fuzz target, as plain functions of the input bytes: the fuzzers call
//! them, and `tests/cli/hardening.rs` includes this file to replay `fuzz/regressions/` under a
//! normal `cargo test` (no nightly needed). Each one must never panic, and asserts the
//! properties that must hold for any input.

use icp_audit::code::{self, Format};
use icp_audit::schema::Schema;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary file holding `bytes`, unique to this process and call.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("icp-fuzz-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write a temporary file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The header of a request file whose columns are in schema order: the one a loaded table's
/// identifiers are compared under with the csv crate's reading of the same bytes.
const REQUESTS_HEADER: &[u8] = b"request_id,account_id,instance_id,requested_at";

/// `csv_tables`: any bytes as an inventory and as a request file. A table that loads has its
/// rows in file order, its problems on their rows' lines, and every cell reads back without a
/// panic; a refusal names the file. A request file that starts with `REQUESTS_HEADER` has a
/// row for each of the csv crate's records, and each row without a problem holds the ids that
/// record holds, exactly (whichever reader, fast or not, the table took them from).
pub fn csv_tables(data: &[u8]) {
    let file = TempFile::new("fuzz.csv", data);
    for schema in [Schema::instances(), Schema::requests()] {
        match icp_audit::input::load_table(&file.0, "fuzz.csv", &schema) {
            Ok(table) => {
                let header_line = data
                    .strip_prefix(REQUESTS_HEADER)
                    .is_some_and(|rest| rest.starts_with(b"\n") || rest.starts_with(b"\r\n"));
                if schema.table == "request" && header_line {
                    same_ids_as_the_csv_crate(data, &table);
                }
                let mut last = 1;
                for row in 0..table.len() {
                    let line = table.line(row);
                    // Not strictly: a lone CR ends a record but not a line (see the known bug
                    // fixtures/bad/cr-only-line-ends), so two records may share a line.
                    assert!(line >= last, "rows go down the file");
                    last = line;
                    for col in 0..schema.columns.len() {
                        let _ = table.text(col, row);
                        let _ = table.value(col, row);
                    }
                    if let Some(p) = table.fault(row) {
                        assert_eq!(p.line, line, "a row's problem is on its line");
                        assert_eq!(p.file, "fuzz.csv");
                    }
                }
                assert_eq!(table.info.rows as usize, table.len());
            }
            Err(e) => {
                assert!(e.message.contains("fuzz.csv"), "a refusal names the file");
            }
        }
    }
}

/// The request table's rows against the csv crate's records of the same bytes (see
/// `csv_tables`).
fn same_ids_as_the_csv_crate(data: &[u8], table: &icp_audit::input::Table) {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(data);
    let records: Vec<csv::ByteRecord> = rdr.byte_records().skip(1).map_while(Result::ok).collect();
    assert_eq!(table.len(), records.len(), "a row for each record");
    for (row, record) in records.iter().enumerate() {
        if table.fault(row).is_some() {
            continue;
        }
        for col in 0..3 {
            assert_eq!(
                table.text(col, row).as_bytes(),
                record.get(col).unwrap_or_default(),
                "row {row}, column {col}"
            );
        }
    }
}

/// `ledger`: any bytes as a ledger. A refusal names the file and never shows a cell that looks
/// like one of the codes in the input; a ledger that loads has unique code fingerprints.
pub fn ledger(data: &[u8]) {
    let file = TempFile::new("ledger.csv", data);
    // A few instances and requests for the ledger's rows to name.
    let inventory = TempFile::new(
        "instances.csv",
        b"instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out\n\
          i-1,1,cn-beijing,PrePaid,2027-01-01T00:00Z,5\n\
          i-22,1,cn-beijing,PrePaid,2027-01-01T00:00Z,5\n",
    );
    let batch = TempFile::new(
        "requests.csv",
        b"request_id,account_id,instance_id,requested_at\n\
          r-1,1,i-1,2026-11-01T00:00Z\n\
          r-22,1,i-22,2026-11-01T00:00Z\n",
    );
    let load = |file: &TempFile, schema| {
        icp_audit::input::load_table(&file.0, "fuzz.csv", &schema).expect("a valid fixed table")
    };
    let instances = load(&inventory, Schema::instances());
    let requests = load(&batch, Schema::requests());
    let by_instance = icp_audit::input::InstanceIndex::new(&instances);
    let by_request = icp_audit::input::RequestIndex::new(&requests);
    let scanned = icp_audit::input::ledger::scan(
        &file.0,
        "fuzz-ledger.csv",
        &icp_audit::digest::Fingerprinter::default(),
        &by_instance,
        &by_request,
    );
    match scanned {
        Ok(ledger) => {
            let codes: Vec<u128> = ledger.codes.fingerprints().collect();
            assert!(
                codes.windows(2).all(|w| w[0] < w[1]),
                "codes are sorted and unique"
            );
            assert!(codes.iter().all(|fp| ledger.codes.contains(*fp)));
        }
        Err(e) => {
            assert!(
                e.message.contains("fuzz-ledger.csv"),
                "a refusal names the file: {}",
                e.message
            );
        }
    }
}

/// `policy`: any text as a policy. Compiling never panics; a refusal is `file:line:column:`.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = icp_audit::policy::compile_text(text, "fuzz.yaml") {
        for line in e.message.lines() {
            let rest = line
                .strip_prefix("fuzz.yaml:")
                .unwrap_or_else(|| panic!("a problem without its place: {line}"));
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
                "a problem without line and column: {line}"
            );
        }
    }
}

/// `policy_run`: a policy that compiles is run (dry run, one thread) on the demo inputs in
/// `demo`: evaluating it never panics, and every request row gets one decision.
pub fn policy_run(data: &[u8], demo: &Path) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if icp_audit::policy::compile_text(text, "fuzz.yaml").is_err() {
        return;
    }
    let policy = TempFile::new("policy.yaml", data);
    let out = TempFile::new("out", b"");
    let _ = std::fs::remove_file(&out.0);
    let cfg = icp_audit::cli::RunConfig {
        instances: demo.join("instances.csv"),
        requests: demo.join("requests.csv"),
        ledger: demo.join("ledger.csv"),
        ledger_out: demo.join("ledger.csv"),
        ledger_out_given: false,
        policy: Some(policy.0.clone()),
        waivers: None,
        as_of: icp_audit::time::parse("2026-11-30T00:00:00Z").unwrap(),
        out: out.0.clone(),
        dry_run: true,
        jobs: 1,
        quiet: true,
        max_issue: None,
        timings: false,
    };
    let result = icp_audit::run::run(&cfg);
    if result.is_ok() {
        let decisions = std::fs::read(out.0.join("decisions.csv")).unwrap();
        let rows = icp_audit::input::load_table(&cfg.requests, "requests", &Schema::requests())
            .unwrap()
            .len();
        let lines = decisions.iter().filter(|b| **b == b'\n').count();
        assert_eq!(lines, rows + 1, "one decision per request row");
    }
    let _ = std::fs::remove_dir_all(&out.0);
}

/// `verify_code`: any text as a typed-in code. Verification never panics; a code that verifies
/// verifies again in its canonical form, to the same form and the same identity.
pub fn verify_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [
        Format::new("", 19, 4).unwrap(),
        Format::new("ICP", 18, 5).unwrap(),
    ] {
        match format.verify(text) {
            Ok(canonical) => {
                let again = format
                    .verify(&canonical)
                    .expect("the canonical form verifies");
                assert_eq!(again, canonical);
                assert_eq!(code::identity_key(&again), code::identity_key(&canonical));
            }
            Err(msg) => assert!(!msg.is_empty()),
        }
    }
}

/// `times`: any text as a time. Parsing never panics; a time in years 0..=9999 written in the
/// output form reads back as the same instant; month arithmetic never panics.
pub fn times(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = icp_audit::time::parse(text) {
        let written = icp_audit::time::format(t);
        if written.len() == 20 {
            let back = icp_audit::time::parse(&written).expect("the output form reads back");
            assert_eq!(back.timestamp(), t.timestamp());
        }
        let months = data
            .iter()
            .fold(0i32, |a, b| a.wrapping_mul(31).wrapping_add(*b as i32));
        let _ = icp_audit::time::add_months(t, months);
        let _ = icp_audit::time::add_months(t, 3);
    }
}
