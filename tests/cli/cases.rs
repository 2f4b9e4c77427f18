//! Data-driven cases: a folder per case under `fixtures/cases/` with its inputs, an `args` file
//! and the expected decisions (or exit code and stderr). `BLESS=1` rewrites the expectations
//! from the program's output, to be reviewed in the diff. Also the bundled demo.

use crate::harness::{BIN, Test, assert_same_text, copy_dir, csv_rows};
use std::fs;
use std::path::Path;
use std::process::Command;

const NEW_CODE: &str = "<new>";

/// decisions.csv with every newly issued code replaced by `<new>`, after checking it verifies.
fn mask_new_codes(decisions: &str) -> String {
    let mut out = String::new();
    for (i, row) in csv_rows(decisions).into_iter().enumerate() {
        let mut row = row;
        if i > 0 && row[3] == "issued" {
            let ok = Command::new(BIN)
                .args(["verify-code", &row[4]])
                .output()
                .unwrap();
            assert!(ok.status.success(), "issued code does not verify");
            row[4] = NEW_CODE.to_string();
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(vec![]);
        w.write_record(&row).unwrap();
        out.push_str(&String::from_utf8(w.into_inner().unwrap()).unwrap());
    }
    out
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some()
}

fn run_case(case: &Path) {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let test = Test::new(&format!("case-{name}"));
    copy_dir(case, &test.dir);
    let mut args = vec!["run", "--input", ".", "--out", "out"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    if case.join("policy.yaml").exists() {
        args.extend(["--policy".into(), "policy.yaml".into()]);
    }
    let extra = fs::read_to_string(case.join("args")).unwrap_or_default();
    args.extend(extra.split_whitespace().map(String::from));
    // The runner below replaces the scripts a case author may use by hand.
    let ran = test.args(&args).run();
    let expected = case.join("expected");
    if let Ok(code) = fs::read_to_string(expected.join("exit-code")) {
        let want: i32 = code.trim().parse().unwrap();
        assert_eq!(
            ran.code(),
            want,
            "{name}: exit code; stderr: {}",
            ran.stderr()
        );
        let needle = fs::read_to_string(expected.join("stderr")).unwrap_or_default();
        assert!(
            ran.stderr().contains(needle.trim()),
            "{name}: stderr lacks `{}`:\n{}",
            needle.trim(),
            ran.stderr()
        );
        assert!(
            !ran.dir.join("out").exists(),
            "{name}: a refused run wrote outputs"
        );
        if case.join("ledger.csv").exists() {
            let before = fs::read(case.join("ledger.csv")).unwrap();
            let after = fs::read(ran.dir.join("ledger.csv")).unwrap();
            assert!(before == after, "{name}: a refused run changed the ledger");
        }
        return;
    }
    assert_eq!(ran.code(), 0, "{name}: stderr: {}", ran.stderr());
    check_hand_off(&name, case, &ran, extra.contains("--dry-run"));
    let got = mask_new_codes(&ran.read("out/decisions.csv"));
    let want_path = expected.join("decisions.csv");
    if bless() {
        fs::create_dir_all(&expected).unwrap();
        fs::write(&want_path, &got).unwrap();
    }
    let want = fs::read_to_string(&want_path).unwrap();
    assert_same_text(&got, &want, &format!("{name}: decisions.csv"));
}

/// Every new code is distinct, is in `issued.csv` with its request, and was appended to the
/// ledger (status `issued`) after the old rows, which are unchanged; a dry run writes no ledger.
fn check_hand_off(name: &str, case: &Path, ran: &crate::harness::Ran, dry_run: bool) {
    let decisions = csv_rows(&ran.read("out/decisions.csv"));
    let new: Vec<&Vec<String>> = decisions[1..].iter().filter(|r| r[3] == "issued").collect();
    let mut codes: Vec<&str> = new.iter().map(|r| r[4].as_str()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes.len(),
        new.len(),
        "{name}: a code was handed out twice"
    );
    let issued = csv_rows(&ran.read("out/issued.csv"));
    let mut got: Vec<Vec<String>> = issued[1..].iter().map(|r| r[..4].to_vec()).collect();
    let mut want: Vec<Vec<String>> = new
        .iter()
        .map(|r| vec![r[0].clone(), r[1].clone(), r[2].clone(), r[4].clone()])
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{name}: issued.csv");
    let old_path = case.join("ledger.csv");
    let old = fs::read_to_string(&old_path).ok();
    if dry_run {
        let now = fs::read_to_string(ran.dir.join("ledger.csv")).ok();
        assert_eq!(now, old, "{name}: a dry run changed the ledger");
        return;
    }
    let ledger = csv_rows(&ran.read("ledger.csv"));
    let kept = old.as_deref().map_or(1, |o| csv_rows(o).len());
    if let Some(o) = &old {
        assert_eq!(
            &ledger[..kept],
            &csv_rows(o)[..],
            "{name}: old ledger rows changed"
        );
    }
    let header: Vec<String> = ledger[0].iter().map(|h| h.trim().to_lowercase()).collect();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let added = &ledger[kept..];
    assert_eq!(
        added.len(),
        new.len(),
        "{name}: rows appended to the ledger"
    );
    for r in &new {
        let row = added
            .iter()
            .find(|a| a[col("code")] == r[4])
            .unwrap_or_else(|| panic!("{name}: code of {} not in the ledger", r[0]));
        assert_eq!(row[col("request_id")], r[0], "{name}");
        assert_eq!(row[col("instance_id")], r[1], "{name}");
        assert_eq!(row[col("status")], "issued", "{name}");
    }
}

#[test]
fn fixture_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the fixture cases under {root:?}"
    );
    for case in cases {
        run_case(&case);
    }
}

/// The README's first command, on the bundled demo (a copy of its ledger updated in place):
/// every rule and outcome occurs, and the demo's folder is left as it was, without a new file
/// (a lock) either.
#[test]
fn demo_runs_and_matches_its_expected_decisions() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let listing = || {
        let mut names: Vec<_> = fs::read_dir(&demo)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let (ledger_before, files_before) = (fs::read(demo.join("ledger.csv")).unwrap(), listing());
    let t = Test::new("demo");
    let dir = t.dir.clone();
    fs::copy(demo.join("ledger.csv"), dir.join("ledger.csv")).unwrap();
    let ran = t
        .args([
            "run",
            "--input",
            demo.to_str().unwrap(),
            "--ledger",
            dir.join("ledger.csv").to_str().unwrap(),
            "--out",
            "out",
            "--as-of",
            "2026-11-30T00:00:00Z",
        ])
        .run()
        .expect(0);
    assert_eq!(fs::read(demo.join("ledger.csv")).unwrap(), ledger_before);
    assert_eq!(
        listing(),
        files_before,
        "the demo's folder gained or lost a file"
    );
    let got = mask_new_codes(&ran.read("out/decisions.csv"));
    let want_path = demo.join("expected-decisions.csv");
    if bless() {
        fs::write(&want_path, &got).unwrap();
    }
    assert_same_text(
        &got,
        &fs::read_to_string(want_path).unwrap(),
        "demo decisions",
    );
    let text = ran.read("out/decisions.csv");
    for outcome in [
        "invalid",
        "already_issued",
        "not_required",
        "denied",
        "issued",
    ] {
        assert!(
            text.contains(&format!(",{outcome},")),
            "demo lacks {outcome}"
        );
    }
    let policy = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/icp-service-code.yaml"),
    )
    .unwrap();
    let denials = ran.read("out/denials.csv");
    for line in policy.lines() {
        if let Some(id) = line.trim().strip_prefix("- id: ") {
            assert!(
                denials.contains(&format!(",{id},")),
                "demo never shows `{id}`"
            );
        }
    }
    // Messages are filled from the row the request was judged on.
    for words in [
        "Region cn-hongkong is outside mainland China",
        "Subscription ends 20",
        "only Subscription instances qualify",
    ] {
        assert!(denials.contains(words), "demo denials lack `{words}`");
    }
    for builtin in [
        "malformed-request",
        "duplicate-request",
        "request-id-conflict",
        "malformed-instance",
        "ambiguous-instance",
    ] {
        assert!(denials.contains(builtin), "demo never shows `{builtin}`");
    }
}
