//! The ledger's safety: locking, dry runs, `--ledger-out`, refusals that write nothing, and
//! idempotent re-runs.

use crate::harness::{
    INSTANCES_HEADER, LEDGER_HEADER, REQUESTS_HEADER, RUN, Ran, Test, chmod, csv_rows, hold_lock,
};
use std::fs;

const INSTANCES: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
i-2,100,cn-shanghai,PrePaid,2028-01-01,5,1.2.3.5\n";
const REQUESTS: &str = "request_id,account_id,instance_id,requested_at\n\
r1,100,i-1,2026-11-29\nr2,100,i-2,2026-11-29\n";
const LEDGER: &str = "code,instance_id,account_id,request_id,issued_at,status,domain\n\
OLD-1,i-1,100,,2025-01-01T00:00:00Z,spent,example.com\n";

/// The lines of `input-errors.csv`'s findings on `column`, in file order.
fn finding_lines(ran: &crate::harness::Ran, column: &str) -> Vec<String> {
    csv_rows(&ran.read("out/input-errors.csv"))[1..]
        .iter()
        .filter(|r| r[2] == column)
        .map(|r| r[1].clone())
        .collect()
}

/// A run (`RUN`) on these three inputs, which must complete.
fn run_files(name: &str, instances: &str, requests: &str, ledger: &str) -> Ran {
    Test::new(name)
        .file("instances.csv", instances)
        .file("requests.csv", requests)
        .file("ledger.csv", ledger)
        .args(RUN)
        .run()
        .expect(0)
}

fn base(name: &str) -> Test {
    Test::new(name)
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .file("ledger.csv", LEDGER)
}

#[test]
fn a_run_appends_and_a_rerun_issues_nothing_new() {
    let ran = base("append").args(RUN).run().expect(0);
    let ledger = ran.read("ledger.csv");
    assert!(
        ledger.starts_with(LEDGER),
        "existing rows must stay as they were"
    );
    let rows = csv_rows(&ledger);
    assert_eq!(rows.len(), 4);
    assert!(
        rows[2..]
            .iter()
            .all(|r| r[5] == "issued" && r[4] == "2026-11-30T00:00:00Z")
    );
    let issued = csv_rows(&ran.read("out/issued.csv"));
    assert_eq!(issued.len(), 3);
    // Re-run: the same codes come back as already_issued; the ledger does not grow.
    let rerun = Test::new("append-rerun");
    crate::harness::copy_dir(&ran.dir, &rerun.dir);
    let rerun = rerun.args(RUN).run().expect(0);
    assert_eq!(rerun.read("ledger.csv"), ledger);
    let decisions = csv_rows(&rerun.read("out/decisions.csv"));
    for (i, row) in decisions[1..].iter().enumerate() {
        assert_eq!(row[3], "already_issued");
        assert_eq!(row[4], issued[i + 1][3]);
    }
    assert_eq!(csv_rows(&rerun.read("out/issued.csv")).len(), 1);
}

#[test]
fn dry_run_reports_eligible_and_touches_no_ledger_or_lock() {
    let ran = base("dry").args(RUN).args(["--dry-run"]).run().expect(0);
    assert_eq!(ran.read("ledger.csv"), LEDGER);
    assert!(!ran.dir.join("ledger.csv.lock").exists());
    let d = ran.read("out/decisions.csv");
    assert_eq!(d.matches(",eligible,,").count(), 2, "{d}");
    assert_eq!(csv_rows(&ran.read("out/issued.csv")).len(), 1);
}

#[test]
fn ledger_out_leaves_the_input_untouched() {
    // The folder of --ledger-out is created when missing, like --out.
    let ran = base("ledger-out")
        .args(RUN)
        .args(["--ledger-out", "new/ledger.csv"])
        .run()
        .expect(0);
    assert_eq!(ran.read("ledger.csv"), LEDGER);
    let new = ran.read("new/ledger.csv");
    assert!(new.starts_with(LEDGER));
    assert_eq!(csv_rows(&new).len(), 4);
}

/// A `--ledger-out` file already there that records a code as `spent` where this run's ledger
/// does not is not replaced: the run would make a spent code usable again (SPEC: permanently
/// invalid), as when a stale copy of the ledger is given as `--ledger` and the system of record
/// as `--ledger-out`. Other differences (a domain, `in_use` against `issued`) are the input's
/// to decide: the file is replaced, as it is the other way round; a dry run warns. (Until the
/// twenty-third session only missing codes were checked; found by an adversarial review.)
#[test]
fn ledger_out_never_unspends_a_code() {
    let header = "code,instance_id,account_id,request_id,issued_at,status,domain";
    let row = |status: &str, domain: &str| {
        format!("{header}\nOLD-1,i-1,100,,2025-01-01T00:00:00Z,{status},{domain}\n")
    };
    let t = base("ledger-out-unspent")
        .file("stale.csv", &row("issued", ""))
        .file("newer.csv", &row(" SPENT", "done.example.cn"))
        .file("inuse.csv", &row("in_use", "a.example.cn"));
    let dir = t.dir.clone();
    // A run deciding by `from` that writes `over`, its reports in `out`.
    let replace = |from: &str, over: &str, out: &str, more: &[&str]| {
        std::process::Command::new(crate::harness::BIN)
            .args(["run", "--input", ".", "--as-of", "2026-11-30T00:00:00Z"])
            .args(["--ledger", from, "--ledger-out", over, "--out", out])
            .args(more)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    for from in ["stale.csv", "inuse.csv"] {
        let ran = replace(from, "newer.csv", "out", &[]);
        let err = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(2), "{from}: {err}");
        assert!(
            err.contains(&format!(
                "icp-audit: --ledger-out newer.csv: records 1 code(s) as spent that the ledger \
                 {from} does not, which replacing it would make usable again"
            )),
            "{err}"
        );
        assert!(!dir.join("out").exists());
        let dry = replace(from, "newer.csv", "dry", &["--dry-run"]);
        assert_eq!(dry.status.code(), Some(0), "{dry:?}");
        let warned = String::from_utf8_lossy(&dry.stderr);
        assert!(warned.contains("as spent"), "{warned}");
    }
    assert_eq!(
        fs::read_to_string(dir.join("newer.csv")).unwrap(),
        row(" SPENT", "done.example.cn")
    );
    // A domain, or in_use against issued: replaced by the input's rows.
    let ran = replace("stale.csv", "inuse.csv", "out1", &[]);
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    let rows = csv_rows(&fs::read_to_string(dir.join("inuse.csv")).unwrap());
    assert_eq!(rows[1][5], "issued");
    // The newer ledger replaces the stale one.
    let ran = replace("newer.csv", "stale.csv", "out2", &[]);
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    let rows = csv_rows(&fs::read_to_string(dir.join("stale.csv")).unwrap());
    assert_eq!(rows[1][5], " SPENT");
    assert_eq!(rows.len(), 4, "{rows:?}");
}

/// A `--ledger-out` file already there is replaced only when this run's ledger holds all its
/// codes: the second of two identical `--ledger-out` runs would otherwise drop the first's
/// codes, handed out in its `issued.csv`, and give the same requests other codes. A file that
/// is no ledger is not replaced either; an empty one, or a dry run, goes on.
#[test]
fn ledger_out_never_replaces_a_ledger_holding_codes_the_input_lacks() {
    let ran = base("ledger-out-twice")
        .args(RUN)
        .args(["--ledger-out", "new.csv"])
        .run()
        .expect(0);
    let first = ran.read("new.csv");
    let again = |args: &[&str]| {
        std::process::Command::new(crate::harness::BIN)
            .args(["run", "--input", ".", "--as-of", "2026-11-30T00:00:00Z"])
            .args(args)
            .current_dir(&ran.dir)
            .output()
            .unwrap()
    };
    let twice = again(&["--out", "out2", "--ledger-out", "new.csv"]);
    assert_eq!(twice.status.code(), Some(2), "{twice:?}");
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(
        err.contains("--ledger-out new.csv: holds 2 code(s) that the ledger ./ledger.csv lacks"),
        "{err}"
    );
    assert_eq!(ran.read("new.csv"), first, "the first run's ledger is kept");
    assert!(!ran.dir.join("out2").exists(), "nothing is written");
    // A dry run writes no ledger: it goes on.
    let dry = again(&["--out", "out3", "--ledger-out", "new.csv", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    // Decided by that ledger, a run may replace a copy of it.
    fs::copy(ran.dir.join("new.csv"), ran.dir.join("copy.csv")).unwrap();
    let by_it = again(&[
        "--out",
        "out4",
        "--ledger",
        "new.csv",
        "--ledger-out",
        "copy.csv",
    ]);
    assert_eq!(by_it.status.code(), Some(0), "{by_it:?}");
    // No ledger, or an empty file.
    fs::write(ran.dir.join("notes.csv"), "what,ever\n1,2\n").unwrap();
    let notes = again(&["--out", "out5", "--ledger-out", "notes.csv"]);
    assert_eq!(notes.status.code(), Some(2), "{notes:?}");
    assert!(
        String::from_utf8_lossy(&notes.stderr).contains("it has no `code` column"),
        "{notes:?}"
    );
    assert_eq!(ran.read("notes.csv"), "what,ever\n1,2\n");
    fs::write(ran.dir.join("empty.csv"), "").unwrap();
    let empty = again(&["--out", "out6", "--ledger-out", "empty.csv"]);
    assert_eq!(empty.status.code(), Some(0), "{empty:?}");
    // A pipe there is refused at once, not opened (which would wait for a writer forever).
    #[cfg(unix)]
    {
        let fifo = ran.dir.join("pipe.csv");
        crate::harness::mkfifo(&fifo);
        let mut child = std::process::Command::new(crate::harness::BIN)
            .args(["run", "--input", ".", "--as-of", "2026-11-30T00:00:00Z"])
            .args(["--out", "out7", "--ledger-out", "pipe.csv"])
            .current_dir(&ran.dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                panic!("a run with a pipe as --ledger-out did not end");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(2));
    }
}

/// A dry run into the `--out` of a real run that issued codes is refused: its `issued.csv`, a
/// header only, would replace the real run's hand-off. Into an `--out` whose `issued.csv`
/// hands over nothing (a dry run's, or a run that issued nothing), it goes on.
#[test]
fn a_dry_run_never_replaces_a_real_runs_handoff() {
    let ran = base("dry-after-real").args(RUN).run().expect(0);
    let handoff = ran.read("out/issued.csv");
    assert_eq!(csv_rows(&handoff).len(), 3, "{handoff}");
    let dry = |name: &str| {
        std::process::Command::new(crate::harness::BIN)
            .args([
                "run",
                "--input",
                ".",
                "--as-of",
                "2026-11-30T00:00:00Z",
                "--dry-run",
            ])
            .args(["--out", name])
            .current_dir(&ran.dir)
            .output()
            .unwrap()
    };
    let refused = dry("out");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("its issued.csv hands over codes"),
        "{refused:?}"
    );
    assert_eq!(ran.read("out/issued.csv"), handoff, "the hand-off is kept");
    assert_eq!(dry("elsewhere").status.code(), Some(0));
    // A dry run's own outputs are replaced by the next dry run.
    assert_eq!(dry("elsewhere").status.code(), Some(0));
    // Rows without a code hand nothing over.
    fs::create_dir_all(ran.dir.join("blank")).unwrap();
    fs::write(
        ran.dir.join("blank/issued.csv"),
        "request_id,instance_id,account_id,code,issued_at\r\n,,,,\r\n\r\n",
    )
    .unwrap();
    assert_eq!(dry("blank").status.code(), Some(0));
}

/// A ledger with another name (a hard link, as backups that link unchanged files make) runs
/// as any ledger: it is replaced under the name the run was given, and the other name keeps the
/// old rows, as a backup's does. And a run takes no lock on the ledger file itself, so a nightly
/// job wrapped in `flock ledger.csv …` still runs (it took one, in one version of this
/// session's, and every such run was refused).
#[test]
fn a_hard_linked_or_flocked_ledger_runs() {
    let t = base("hard-link");
    fs::create_dir_all(t.dir.join("sub")).unwrap();
    fs::hard_link(t.dir.join("ledger.csv"), t.dir.join("sub/ledger.csv")).unwrap();
    let held = hold_lock(&t.dir.join("sub/ledger.csv"));
    let ran = t
        .args(RUN)
        .args(["--ledger", "sub/ledger.csv"])
        .run()
        .expect(0);
    drop(held);
    assert_eq!(
        ran.read("ledger.csv"),
        LEDGER,
        "the other name keeps the old rows"
    );
    assert_eq!(csv_rows(&ran.read("sub/ledger.csv")).len(), 4);
}

#[test]
fn a_locked_ledger_is_exit_3_and_nothing_is_written() {
    let t = base("locked");
    let _lock = hold_lock(&t.dir.join("ledger.csv.lock"));
    let ran = t.args(RUN).run().expect(3);
    assert!(ran.stderr().contains("locked"), "{}", ran.stderr());
    assert_eq!(ran.read("ledger.csv"), LEDGER);
    assert!(!ran.dir.join("out").exists());
}

/// A `--ledger-out` run holds the lock of the ledger it reads as well: while a run writing that
/// ledger holds it (imitated here), the `--ledger-out` run exits 3 and writes no ledger and no
/// report, since both would hand out the same quota. A dry run takes no lock and goes on; with
/// the lock free, the `--ledger-out` run goes on and leaves the ledger it read as it was.
#[test]
fn a_ledger_out_run_is_exit_3_while_the_ledger_it_reads_is_locked() {
    let args = ["--ledger-out", "new/ledger.csv"];
    let t = base("locked-input");
    let held = hold_lock(&t.dir.join("ledger.csv.lock"));
    let ran = t.args(RUN).args(args).run().expect(3);
    assert!(
        ran.stderr()
            .contains("ledger.csv.lock: the ledger is locked by another run"),
        "{}",
        ran.stderr()
    );
    assert_eq!(ran.read("ledger.csv"), LEDGER);
    assert!(!ran.dir.join("out").exists());
    assert!(!ran.dir.join("new/ledger.csv").exists());
    let dry = std::process::Command::new(crate::harness::BIN)
        .args(RUN)
        .args(args)
        .arg("--dry-run")
        .current_dir(&ran.dir)
        .output()
        .unwrap();
    drop(held);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        !ran.dir.join("new").exists(),
        "a dry run makes no folder and no lock for --ledger-out"
    );
    let free = base("unlocked-input").args(RUN).args(args).run().expect(0);
    assert_eq!(free.read("ledger.csv"), LEDGER);
    assert_eq!(csv_rows(&free.read("new/ledger.csv")).len(), 4);
}

/// The ledger a `--ledger-out` run reads must be locked: where its lock file can be neither
/// made nor opened (here its folder is missing, so the ledger is empty), the run is refused
/// (exit 2) before it makes anything, rather than run unlocked beside a run that may be
/// writing that ledger.
#[test]
fn a_ledger_out_run_whose_input_cannot_be_locked_is_refused() {
    let ran = base("unlockable-input")
        .args(RUN)
        .args([
            "--ledger",
            "missing/ledger.csv",
            "--ledger-out",
            "new/ledger.csv",
        ])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("missing/ledger.csv.lock: cannot create the lock file"),
        "{}",
        ran.stderr()
    );
    assert!(ran.stderr().contains("must be locked while it is read"));
    for made in ["new", "out", "missing"] {
        assert!(!ran.dir.join(made).exists(), "{made} was made");
    }
}

/// An older code in the ledger that starts like a formula comes back to its request as
/// `already_issued` with a leading `'` in `decisions.csv` (README › Choices), and the ledger
/// keeps it as it was.
#[test]
fn a_formula_like_ledger_code_is_neutralised_in_the_report_only() {
    let ledger = format!(
        "{LEDGER_HEADER}\n+86-ICP-0001,i-1,100,r1,2020-01-01T00:00:00Z,spent,a.cn\n\
         -LEGACY-7,i-1,100,r2,2020-01-01T00:00:00Z,in_use,b.cn\n"
    );
    let ran = Test::new("formula-like-code")
        .file("instances.csv", INSTANCES)
        .file(
            "requests.csv",
            &format!("{REQUESTS_HEADER}\nr1,100,i-1,2026-11-29\nr2,100,i-1,2026-11-29\n"),
        )
        .file("ledger.csv", &ledger)
        .args(RUN)
        .run()
        .expect(0);
    let codes: Vec<(String, String)> = csv_rows(&ran.read("out/decisions.csv"))[1..]
        .iter()
        .map(|r| (r[3].clone(), r[4].clone()))
        .collect();
    let want = [
        ("already_issued", "'+86-ICP-0001"),
        ("already_issued", "'-LEGACY-7"),
    ];
    assert_eq!(codes, want.map(|(o, c)| (o.to_string(), c.to_string())));
    assert_eq!(ran.read("ledger.csv"), ledger);
}

/// A run refused after it made the folder of its new ledger (here for a request file whose
/// quote never closes, found once the ledger is locked) leaves that folder holding its lock
/// file only: no ledger, no temporary copy. The lock file is never removed: a run that removed
/// it could pull it from under another run holding it (README › Choices).
#[test]
fn a_refused_run_leaves_the_folder_it_made_with_its_lock_file_only() {
    let bad = format!("{REQUESTS_HEADER}\nr1,100,i-1,2026-11-29\n\"r2,100,i-1,2026-11-29\n");
    for (args, folder) in [
        (
            &["--ledger-out", "archive/2026-11-30/ledger.csv"][..],
            "archive/2026-11-30",
        ),
        (&["--ledger", "nl/sub/ledger.csv"][..], "nl/sub"),
    ] {
        let ran = base(&format!("refused-made-{}", folder.replace('/', "-")))
            .file("requests.csv", &bad)
            .args(RUN)
            .args(args)
            .run()
            .expect(2);
        assert!(
            ran.stderr().contains("requests.csv:3:1"),
            "{}",
            ran.stderr()
        );
        let left: Vec<String> = fs::read_dir(ran.dir.join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["ledger.csv.lock"], "{folder}");
        assert!(!ran.dir.join("out").exists());
        assert_eq!(ran.read("ledger.csv"), LEDGER);
    }
}

/// The lock file of the ledger a `--ledger-out` run reads may be one this run cannot write (a
/// read-only folder, another owner's file): the run then locks it through a read-only handle.
/// It goes on while no other run holds that lock, is exit 3 while one does, and is refused
/// (exit 2, nothing made) once the lock file is gone and cannot be made either. Run as a user
/// whom file modes stop (`nobody` under root).
#[cfg(unix)]
#[test]
fn a_read_only_lock_file_is_locked_through_a_read_only_handle() {
    let t = Test::new("read-only-lock")
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .file("ro/ledger.csv", LEDGER)
        .file("ro/ledger.csv.lock", "")
        .unprivileged()
        .args(RUN)
        .args([
            "--ledger",
            "ro/ledger.csv",
            "--ledger-out",
            "new/ledger.csv",
        ]);
    let (ro, lock) = (t.dir.join("ro"), t.dir.join("ro/ledger.csv.lock"));
    chmod(&lock, 0o444);
    chmod(&ro, 0o555);
    let held = fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    let ran = t.run().expect(3);
    assert!(
        ran.stderr()
            .contains("ro/ledger.csv.lock: the ledger is locked by another run"),
        "{}",
        ran.stderr()
    );
    assert!(!ran.dir.join("new/ledger.csv").exists());
    assert!(!ran.dir.join("out").exists());
    drop(held);
    let ran = t.run().expect(0);
    assert_eq!(ran.read("ro/ledger.csv"), LEDGER);
    assert_eq!(csv_rows(&ran.read("new/ledger.csv")).len(), 4);
    // With the lock file gone, and the folder still read-only, none can be made.
    fs::remove_dir_all(ran.dir.join("new")).unwrap();
    fs::remove_dir_all(ran.dir.join("out")).unwrap();
    chmod(&ro, 0o755);
    fs::remove_file(&lock).unwrap();
    chmod(&ro, 0o555);
    let ran = t.run().expect(2);
    assert!(
        ran.stderr()
            .contains("ro/ledger.csv.lock: cannot create the lock file")
            && ran.stderr().contains("must be locked while it is read"),
        "{}",
        ran.stderr()
    );
    for made in ["new", "out"] {
        assert!(!ran.dir.join(made).exists(), "{made} was made");
    }
    chmod(&ro, 0o755);
}

/// An `issued.csv` in the dry run's `--out` that the run cannot read may hold codes, so the
/// dry run is refused (exit 2) and leaves it as it was; the same file made readable, a header
/// only, lets the dry run go on. Run as a user whom file modes stop (`nobody` under root).
#[cfg(unix)]
#[test]
fn a_dry_run_is_refused_when_the_handoff_there_cannot_be_read() {
    let header = "request_id,instance_id,account_id,code,issued_at\n";
    let t = base("unreadable-handoff")
        .file("out/issued.csv", header)
        .unprivileged()
        .args(RUN)
        .args(["--dry-run"]);
    let (out, handoff) = (t.dir.join("out"), t.dir.join("out/issued.csv"));
    chmod(&out, 0o777);
    chmod(&handoff, 0o000);
    let ran = t.run().expect(2);
    assert!(
        ran.stderr().contains("its issued.csv hands over codes"),
        "{}",
        ran.stderr()
    );
    chmod(&handoff, 0o644);
    assert_eq!(ran.read("out/issued.csv"), header, "the hand-off is kept");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        1,
        "nothing else written"
    );
    let ran = t.run().expect(0);
    assert!(ran.dir.join("out/decisions.csv").exists());
}

/// `--ledger nox/../ledger.csv` with no folder `nox` names no ledger the system can open (an
/// empty one), though it reads like `ledger.csv`: writing `--ledger-out ledger.csv` from it
/// would replace the real ledger with its codes gone. The file there is guarded as any
/// `--ledger-out` file is (exit 2, nothing written).
#[test]
fn a_ledger_path_through_a_missing_folder_does_not_replace_the_real_one() {
    let ran = base("dotdot-missing")
        .args(RUN)
        .args([
            "--ledger",
            "nox/../ledger.csv",
            "--ledger-out",
            "ledger.csv",
        ])
        .run()
        .expect(2);
    assert!(
        ran.stderr().contains("holds 1 code(s) that the ledger"),
        "{}",
        ran.stderr()
    );
    assert_eq!(ran.read("ledger.csv"), LEDGER);
    assert!(!ran.dir.join("out").exists());
}

/// A `--ledger-out` file whose last rows sit inside a quote that is never closed hides codes
/// from the check that it holds none the input lacks: it is not replaced (exit 2).
#[test]
fn a_ledger_out_file_ending_inside_a_quote_is_not_replaced() {
    let hidden = format!(
        "{LEDGER}OLD-2,i-2,100,,2025-01-01T00:00:00Z,spent,\"x\nHANDED-1,i-2,100,r9,2026-11-29T00:00:00Z,issued,\n"
    );
    let ran = base("ledger-out-open-quote")
        .file("new.csv", &hidden)
        .args(RUN)
        .args(["--ledger-out", "new.csv"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("ends inside a quote that is never closed"),
        "{}",
        ran.stderr()
    );
    assert_eq!(ran.read("new.csv"), hidden);
    assert!(!ran.dir.join("out").exists());
}

#[test]
fn a_corrupt_ledger_refuses_the_run_and_names_the_place() {
    let cases = [
        (
            "OLD-1,i-1,100,,2025-01-01T00:00:00Z,spent,x\nold-1,i-2,100,,,issued,\n",
            "ledger.csv:3: column `code`",
        ),
        (
            "A,i-1,100,,,used,\n",
            "column `status`: unknown status (expected issued",
        ),
        (
            "A,i-1,100,L1,,issued,\nB,i-1,100,L1,,issued,\n",
            "ledger.csv:3: column `request_id`: this request id already appears on line 2",
        ),
        (
            ",i-1,100,,,issued,\n",
            "column `code`: a required value is missing",
        ),
        ("A,i-1,100\n", "the row has 3 fields"),
    ];
    for (i, (rows, needle)) in cases.iter().enumerate() {
        let ledger =
            format!("code,instance_id,account_id,request_id,issued_at,status,domain\n{rows}");
        let ran = base(&format!("corrupt-{i}"))
            .file("ledger.csv", &ledger)
            .args(RUN)
            .run()
            .expect(2);
        assert!(ran.stderr().contains(needle), "{needle}: {}", ran.stderr());
        assert!(!ran.stderr().contains("OLD-1"), "codes are never printed");
        assert_eq!(ran.read("ledger.csv"), ledger);
        assert!(!ran.dir.join("out").exists());
    }
}

#[test]
fn request_ids_of_spaces_are_empty_and_never_repeat() {
    // Rows written by hand before this tool: no request, written as empty or as spaces.
    let ledger = "code,instance_id,account_id,request_id,issued_at,status,domain\n\
                  OLD-1,i-1,100, ,,spent,a.example\nOLD-2,i-1,100, ,,spent,b.example\n\
                  OLD-3,i-1,100,,,spent,c.example\nOLD-4,i-1,100,,,spent,d.example\n";
    let ran = base("blank-request-ids")
        .file("ledger.csv", ledger)
        .args(RUN)
        .run()
        .expect(0);
    let d = ran.read("out/decisions.csv");
    assert_eq!(d.matches(",issued,").count(), 2, "{d}");
}

#[test]
fn every_repeat_is_named_at_its_line_and_the_first_sound_one() {
    // Line 3 is unsound (its status), so it is no first occurrence; lines 5 and 6 repeat line
    // 2's code (the same once case and hyphens are set aside), lines 4 and 6 its request id.
    let rows = "A,i-1,100,L1,,issued,\na,i-1,100,L2,,used,\nB,i-1,100,L1,,issued,\n\
                A,i-2,100,L3,,spent,\na-,i-2,100,L1,,issued,\n";
    let ledger = format!("code,instance_id,account_id,request_id,issued_at,status,domain\n{rows}");
    let ran = base("repeats")
        .file("ledger.csv", &ledger)
        .args(RUN)
        .run()
        .expect(2);
    let said = ran.stderr();
    for needle in [
        "ledger.csv:3: column `status`: unknown status",
        "ledger.csv:4: column `request_id`: this request id already appears on line 2",
        "ledger.csv:5: column `code`: this code already appears on line 2",
        "ledger.csv:6: column `code`: this code already appears on line 2",
        "ledger.csv:6: column `request_id`: this request id already appears on line 2",
    ] {
        assert!(said.contains(needle), "{needle}: {said}");
    }
    assert!(!said.contains("appears on line 3"), "{said}");
    assert!(!said.contains("ledger.csv:3: column `code`"), "{said}");
    assert!(!said.contains("appears on line 4"), "{said}");
    assert_eq!(ran.read("ledger.csv"), ledger);
}

#[test]
fn an_out_folder_that_would_overwrite_an_input_is_refused() {
    let ran = base("overwrite")
        .file("decisions.csv", "x\n")
        .args([
            "run",
            "--instances",
            "instances.csv",
            "--requests",
            "decisions.csv",
        ])
        .args([
            "--ledger",
            "ledger.csv",
            "--out",
            ".",
            "--as-of",
            "2026-11-30",
        ])
        .run()
        .expect(2);
    assert!(ran.stderr().contains("overwrite"), "{}", ran.stderr());
    assert_eq!(ran.read("ledger.csv"), LEDGER);
}

#[test]
fn a_missing_ledger_is_an_empty_one_created_owner_only() {
    let ran = Test::new("missing-ledger")
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .args(RUN)
        .run()
        .expect(0);
    let ledger = ran.read("ledger.csv");
    assert!(ledger.starts_with("code,instance_id,account_id,request_id,issued_at,status,domain\n"));
    assert_eq!(csv_rows(&ledger).len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(ran.dir.join("ledger.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(ran.dir.join("out/issued.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn an_existing_ledger_keeps_its_permissions() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let t = base("perms");
        fs::set_permissions(t.dir.join("ledger.csv"), fs::Permissions::from_mode(0o640)).unwrap();
        let ran = t.args(RUN).run().expect(0);
        let mode = fs::metadata(ran.dir.join("ledger.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Its owner and group too, where the run may give them: as root (which CI is), any.
        use std::os::unix::fs::MetadataExt;
        let t = base("owner");
        let ledger = t.dir.join("ledger.csv");
        let root = fs::metadata(&t.dir).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&ledger, Some(65534), Some(65533)).unwrap();
        }
        let before = fs::metadata(&ledger).unwrap();
        let ran = t.args(RUN).run().expect(0);
        let after = fs::metadata(ran.dir.join("ledger.csv")).unwrap();
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert!(
            !root || after.uid() == 65534,
            "as root the owner is given back"
        );
    }
}

#[test]
fn a_ledger_that_cannot_record_a_code_is_refused_only_when_codes_would_be_issued() {
    // Exported without the request's columns: a code issued now would be appended without its
    // request id, and a re-run of the same request would get a second code.
    let ledger = "code,instance_id,status\nOLD-1,i-1,spent\n";
    let refused = base("unrecorded")
        .file("ledger.csv", ledger)
        .args(RUN)
        .run()
        .expect(2);
    let said = refused.stderr();
    for needle in [
        "ledger.csv:1: the ledger cannot record the codes this run would issue",
        "no `account_id` column",
        "no `request_id` column: without it a re-run would issue the same request a second code",
    ] {
        assert!(said.contains(needle), "{needle}: {said}");
    }
    assert_eq!(refused.read("ledger.csv"), ledger);
    assert!(!refused.dir.join("out").exists());
    let dry = base("unrecorded-dry")
        .file("ledger.csv", ledger)
        .args(RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    let d = dry.read("out/decisions.csv");
    assert_eq!(d.matches(",eligible,,").count(), 2, "{d}");
    assert_eq!(dry.read("ledger.csv"), ledger);
    // A run that issues nothing has nothing to record.
    let denied = base("unrecorded-nothing-issued")
        .file("ledger.csv", ledger)
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\nr1,999,i-1,2026-11-29\n",
        )
        .args(RUN)
        .run()
        .expect(0);
    assert!(
        denied
            .read("out/decisions.csv")
            .contains(",denied,,owner-account")
    );
    assert_eq!(denied.read("ledger.csv"), ledger);
    // With the columns added (empty cells for the old rows), the run issues and a re-run
    // returns the same codes.
    let whole = "code,instance_id,status,account_id,request_id\nOLD-1,i-1,spent,,\n";
    let ran = base("recorded")
        .file("ledger.csv", whole)
        .args(RUN)
        .run()
        .expect(0);
    let issued = csv_rows(&ran.read("out/issued.csv"));
    assert_eq!(issued.len(), 3);
    let rerun = Test::new("recorded-rerun");
    crate::harness::copy_dir(&ran.dir, &rerun.dir);
    let rerun = rerun.args(RUN).run().expect(0);
    let decisions = csv_rows(&rerun.read("out/decisions.csv"));
    assert_eq!(
        decisions.len(),
        issued.len(),
        "a header and a decision a request"
    );
    for (row, first) in decisions[1..].iter().zip(&issued[1..]) {
        assert_eq!((row[3].as_str(), &row[4]), ("already_issued", &first[3]));
    }
}

/// Only a ledger that is not there is an empty ledger. One that cannot be looked up (here a
/// path through a file) refuses the run, dry or not, with nothing written: read as empty, it
/// would lose its codes from a `--ledger-out` ledger and let every quota and re-run start over.
#[test]
fn a_ledger_that_cannot_be_looked_up_is_refused_not_taken_as_empty() {
    for dry in [false, true] {
        let ran = base(&format!("unreachable-ledger-{dry}"))
            .args(RUN)
            .args(["--ledger", "instances.csv/ledger.csv"])
            .args(["--ledger-out", "new/ledger.csv"])
            .args(dry.then_some("--dry-run"))
            .run()
            .expect(2);
        assert!(
            ran.stderr()
                .contains("instances.csv/ledger.csv: cannot read:"),
            "{}",
            ran.stderr()
        );
        assert!(!ran.dir.join("out").exists(), "no output may be written");
        assert!(!ran.dir.join("new").exists(), "no ledger may be written");
    }
}

/// A hand-written ledger row whose instance id differs from the inventory's only in case or
/// surrounding spaces still counts toward that instance's five codes (the limit fails closed),
/// and is a finding; rows written exactly count as before.
#[test]
fn ledger_ids_differing_only_in_case_or_spaces_count_toward_the_limit() {
    let mut ledger = format!("{LEDGER_HEADER}\n");
    for (i, id) in ["i-1 ", "I-1", " i-1", "i-1\t", "i-1"].iter().enumerate() {
        ledger.push_str(&format!(
            "X{i},\"{id}\",100,,2025-01-01T00:00:00Z,spent,d{i}\n"
        ));
    }
    let ran = base("loose-ids")
        .file("ledger.csv", &ledger)
        .args(RUN)
        .run()
        .expect(0);
    let decisions = csv_rows(&ran.read("out/decisions.csv"));
    let r1 = decisions.iter().find(|r| r[0] == "r1").unwrap();
    assert_eq!(
        (r1[3].as_str(), r1[5].as_str()),
        ("denied", "max-codes-per-instance"),
        "{decisions:?}"
    );
    let r2 = decisions.iter().find(|r| r[0] == "r2").unwrap();
    assert_eq!(r2[3], "issued", "another instance is not affected");
    assert_eq!(
        finding_lines(&ran, "instance_id"),
        ["2", "3", "4", "5"],
        "{}",
        ran.read("out/input-errors.csv")
    );
}

/// The same the other way round: inventory ids written with upper case or surrounding spaces
/// (`I-UP`, `i-sp `) hold the codes of ledger rows that write them as the API does (`i-up`,
/// `i-sp`), so that a request for them is over the limit; another instance is not affected.
/// An inventory listing one id in two spellings (`i-x`, `I-X`) lists one instance twice: a
/// request for either is `ambiguous-instance`.
#[test]
fn inventory_ids_differing_only_in_case_or_spaces_hold_their_ledger_codes() {
    let instances = &format!(
        "{INSTANCES_HEADER}\n\
I-UP,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
\"i-sp \",100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.5\n\
i-3,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.6\n\
i-x,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.7\n\
I-X,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.8\n"
    );
    let requests = &format!(
        "{REQUESTS_HEADER}\n\
r1,100,I-UP,2026-11-29\nr2,100,\"i-sp \",2026-11-29\nr3,100,i-3,2026-11-29\n\
r4,100,I-X,2026-11-29\n"
    );
    let mut ledger = format!("{LEDGER_HEADER}\n");
    for n in 0..5 {
        ledger.push_str(&format!("U{n},i-up,100,,2025-01-01T00:00:00Z,spent,d\n"));
        ledger.push_str(&format!("S{n},i-sp,100,,2025-01-01T00:00:00Z,spent,d\n"));
        // Exactly `i-x`'s, and `I-X`'s once case is ignored: they count for both rows.
        ledger.push_str(&format!("X{n},i-x,100,,2025-01-01T00:00:00Z,spent,d\n"));
    }
    let ran = run_files("loose-inventory-ids", instances, requests, &ledger);
    let decisions = csv_rows(&ran.read("out/decisions.csv"));
    let outcome = |id: &str| {
        let row = decisions.iter().find(|r| r[0] == id).unwrap();
        (row[3].clone(), row[5].clone())
    };
    let over = ("denied".to_string(), "max-codes-per-instance".to_string());
    assert_eq!(outcome("r1"), over, "{decisions:?}");
    assert_eq!(outcome("r2"), over, "{decisions:?}");
    assert_eq!(outcome("r3").0, "issued");
    assert_eq!(
        outcome("r4"),
        ("invalid".to_string(), "ambiguous-instance".to_string()),
        "{decisions:?}"
    );
    // Each of the ten rows is a finding.
    let errors = csv_rows(&ran.read("out/input-errors.csv"));
    let findings = errors[1..].iter().filter(|r| r[2] == "instance_id").count();
    assert_eq!(findings, 10, "{errors:?}");
}

/// Case is ignored beyond ASCII too, as Unicode's case folding ignores it: four codes written as
/// the inventory writes its id and a fifth in another case put a request over the limit, for
/// `I-Ü1` and `i-ü1`, the Kelvin sign and `i-k`, `I-SS3` and `i-ß3`, `I-ΑΣ1` and `i-ασ1` (a
/// final capital sigma lower-cases to `ς`); and for an `é` written as one code point or as `e`
/// and an accent, either way round, full-width letters, and characters a text shows as nothing
/// (zero-width spaces and joiners, a soft hyphen, a byte-order mark: until the twenty-third
/// session these made a sixth code possible, found by an adversarial review). The fifth rows
/// are findings.
#[test]
fn ledger_ids_differing_in_non_ascii_case_count_toward_the_limit() {
    let ids = [
        ("i-ü1", "I-Ü1"),
        ("i-k", "i-\u{212A}"),
        ("i-ß3", "I-SS3"),
        ("i-ασ1", "I-ΑΣ1"),
        ("i-\u{e9}", "i-e\u{301}"),
        ("i-e\u{301}2", "I-\u{c9}2"),
        ("i-1x", "\u{ff49}-\u{ff11}\u{ff58}"),
        // Characters shown as nothing: a zero-width space, a soft hyphen, a word joiner, a
        // byte-order mark and a zero-width joiner, where the text shows `i-zw` and so on.
        ("i-zw", "i-zw\u{200B}"),
        ("i-sh", "i-\u{AD}sh"),
        ("i-wj", "\u{2060}i-wj"),
        ("i-bm", "i-bm\u{FEFF}"),
        ("i-zj", "i\u{200D}-zj"),
    ];
    let mut instances = format!("{INSTANCES_HEADER}\n");
    let mut requests = format!("{REQUESTS_HEADER}\n");
    let mut ledger = format!("{LEDGER_HEADER}\n");
    for (i, (id, other)) in ids.iter().enumerate() {
        instances.push_str(&format!(
            "{id},100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.{i}\n"
        ));
        requests.push_str(&format!("r{i},100,{id},2026-11-29\n"));
        for n in 0..4 {
            ledger.push_str(&format!("C{i}{n},{id},100,,2025-01-01T00:00:00Z,spent,d\n"));
        }
        ledger.push_str(&format!(
            "C{i}4,{other},100,,2025-01-01T00:00:00Z,spent,d\n"
        ));
    }
    let ran = run_files("loose-non-ascii", &instances, &requests, &ledger);
    let over = ("denied".to_string(), "max-codes-per-instance".to_string());
    assert_eq!(
        crate::harness::outcomes(&ran),
        vec![over; ids.len()],
        "{}",
        ran.read("out/decisions.csv")
    );
    assert_eq!(
        finding_lines(&ran, "instance_id"),
        [
            "6", "11", "16", "21", "26", "31", "36", "41", "46", "51", "56", "61"
        ],
        "{}",
        ran.read("out/input-errors.csv")
    );
    let errors = ran.read("out/input-errors.csv");
    assert!(
        errors.contains("only when spelt loosely (case, surrounding spaces and Unicode's other spellings ignored)"),
        "{errors}"
    );
}

/// Two inventory rows that write one id in two spellings (`i-1`, `I-1`, or with a trailing
/// space, or in full-width letters) hold each other's codes and share one quota: they are one
/// instance listed twice, so a request naming either is `invalid` `ambiguous-instance`, as for
/// one id on two rows, whoever the rows name as owner. (Until the twenty-third session each
/// row was an instance of its own for the gates: the account a second row named, `B`, took
/// all five codes of the shared quota, and the owner's request was over the limit.) A request
/// from neither owner is still refused by the owner gate first, learning nothing of the rows.
#[test]
fn inventory_spellings_of_one_id_are_one_instance_listed_twice() {
    let instances = &format!(
        "{INSTANCES_HEADER}\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
I-1,200,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.5\n\
i-2,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.6\n\
\"i-3 \",200,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.7\n\
i-3,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.8\n\
\u{ff49}-4,200,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.9\n\
i-4,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.10\n"
    );
    let mut requests = format!("{REQUESTS_HEADER}\n");
    for n in 0..5 {
        requests.push_str(&format!("b{n},200,I-1,2026-11-28\n"));
    }
    requests.push_str(
        "a1,100,i-1,2026-11-29\nr2,100,i-2,2026-11-29\nc3,200,\"i-3 \",2026-11-29\n\
a3,100,i-3,2026-11-29\nc4,200,\u{ff49}-4,2026-11-29\na4,100,i-4,2026-11-29\n\
x1,300,i-1,2026-11-29\n",
    );
    let ran = run_files("loose-listed-twice", instances, &requests, LEDGER);
    let ambiguous = ("invalid", "ambiguous-instance");
    let mut want = vec![ambiguous; 5];
    want.extend([ambiguous, ("issued", "")]);
    want.extend([ambiguous; 4]);
    want.push(("denied", "owner-account"));
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        crate::harness::outcomes(&ran),
        want,
        "{}",
        ran.read("out/decisions.csv")
    );
    let denials = ran.read("out/denials.csv");
    assert!(
        denials.contains(
            "lines 2, 3: column `instance_id`: instance `i-1` appears on more than one row \
             (written `i-1`, `I-1`)"
        ),
        "{denials}"
    );
    let x1 = csv_rows(&denials)
        .into_iter()
        .find(|r| r[0] == "x1")
        .unwrap();
    assert_eq!(x1[5], "Account 300 did not purchase instance i-1", "{x1:?}");
    assert_eq!(csv_rows(&ran.read("ledger.csv")).len(), 3);
}

/// An output name that is a folder in `--out` is refused before anything is written (found
/// only when the output is renamed into place, it stopped the run after the ledger had taken
/// the codes, with no `issued.csv` to hand them over); so is a `--ledger-out` that names the
/// ledger's lock file (replaced, two runs would hold two locks).
#[test]
fn an_output_that_is_a_folder_or_a_ledger_out_on_the_lock_is_refused_up_front() {
    for name in ["issued.csv", "report.html"] {
        let ran = base(&format!("output-folder-{name}"))
            .file(&format!("out/{name}/keep"), "")
            .args(RUN)
            .run()
            .expect(2);
        assert!(
            ran.stderr()
                .contains(&format!("`{name}` there is a folder")),
            "{}",
            ran.stderr()
        );
        assert_eq!(ran.read("ledger.csv"), LEDGER, "the ledger is untouched");
        assert!(!ran.dir.join("out/decisions.csv").exists());
    }
    // `waived.csv` is written only with waivers: a folder of that name stops no other run.
    let ran = base("waived-folder")
        .file("out/waived.csv/keep", "")
        .args(RUN)
        .run()
        .expect(0);
    assert!(ran.dir.join("out/waived.csv/keep").exists());
    let ran = base("ledger-out-lock")
        .file("ledger.csv.lock", "")
        .args(RUN)
        .args(["--ledger-out", "ledger.csv.lock"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("names a lock file (`.lock`), not a ledger"),
        "{}",
        ran.stderr()
    );
    assert_eq!(
        ran.read("ledger.csv.lock"),
        "",
        "the lock file is untouched"
    );
    assert!(!ran.dir.join("out").exists());
    // Any lock file, in any case.
    let ran = base("ledger-out-lock-case")
        .args(RUN)
        .args(["--ledger-out", "other.csv.LOCK"])
        .run()
        .expect(2);
    assert!(!ran.dir.join("other.csv.LOCK").exists());
}

/// A dry run writes no ledger, but tells of a `--ledger-out` that would refuse the real run
/// (one naming an input, one naming an output, one holding codes the ledger lacks), as a
/// warning: a dry run of the nightly command rehearses it. The real run is refused as before.
#[test]
fn a_dry_run_warns_of_a_ledger_out_the_real_run_would_refuse() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    for (ledger_out, why) in [
        ("requests.csv", "would overwrite the input `./requests.csv`"),
        (
            "out/decisions.csv",
            "is where the run writes its `decisions.csv` (--out out)",
        ),
    ] {
        let t = Test::new("dry-ledger-out");
        crate::harness::copy_dir(&demo, &t.dir);
        let before = fs::read(t.dir.join("requests.csv")).unwrap();
        let ran = t
            .args(RUN)
            .args(["--dry-run", "--quiet", "--ledger-out", ledger_out])
            .run()
            .expect(0);
        assert_eq!(
            ran.stderr(),
            format!(
                "icp-audit: warning: a real run would be refused (exit 2): --ledger-out \
                 {ledger_out}: {why}\n"
            )
        );
        assert_eq!(fs::read(ran.dir.join("requests.csv")).unwrap(), before);
        // Not only a log line: summary.json has it too.
        let summary: serde_json::Value =
            serde_json::from_str(&ran.read("out/summary.json")).unwrap();
        assert_eq!(
            summary["warnings"],
            serde_json::json!([format!(
                "a real run would be refused (exit 2): --ledger-out {ledger_out}: {why}"
            )])
        );
        let real = Test::new("real-ledger-out");
        crate::harness::copy_dir(&demo, &real.dir);
        let refused = real
            .args(RUN)
            .args(["--ledger-out", ledger_out])
            .run()
            .expect(2);
        assert_eq!(
            refused.stderr(),
            format!("icp-audit: --ledger-out {ledger_out}: {why}\n")
        );
    }
    // A --ledger-out that already holds codes the ledger lacks (an earlier run's new ledger).
    let t = Test::new("dry-ledger-out-holds-codes");
    crate::harness::copy_dir(&demo, &t.dir);
    let first = t
        .args(RUN)
        .args(["--ledger-out", "new.csv", "--quiet"])
        .run()
        .expect(0);
    let held = fs::read(first.dir.join("new.csv")).unwrap();
    let why = "--ledger-out new.csv: holds 42 code(s) that the ledger ./ledger.csv lacks, which \
               replacing it would lose (a new ledger an earlier run wrote there?); decide by it \
               (--ledger new.csv), or move it away";
    let ran = std::process::Command::new(crate::harness::BIN)
        .args([
            "run",
            "--input",
            ".",
            "--out",
            "out2",
            "--as-of",
            "2026-11-30",
        ])
        .args(["--ledger-out", "new.csv", "--quiet", "--dry-run"])
        .current_dir(&first.dir)
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ran.stderr),
        format!("icp-audit: warning: a real run would be refused (exit 2): {why}\n")
    );
    assert_eq!(fs::read(first.dir.join("new.csv")).unwrap(), held);
}

/// `summary.json` and `report.html` name the file the new ledger was written to (here a
/// `--ledger-out` in a new folder, while the input ledger keeps its rows); a dry run names none.
#[test]
fn the_summary_names_the_ledger_written() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    for dry in [false, true] {
        let t = Test::new("ledger-written-to");
        crate::harness::copy_dir(&demo, &t.dir);
        let ran = t
            .args(RUN)
            .args(["--ledger-out", "new/<L>.csv", "--quiet"])
            .args(dry.then_some("--dry-run"))
            .run()
            .expect(0);
        let summary: serde_json::Value =
            serde_json::from_str(&ran.read("out/summary.json")).unwrap();
        let page = ran.read("out/report.html");
        if dry {
            assert_eq!(
                summary["ledger_rows"]["written_to"],
                serde_json::Value::Null
            );
            assert!(!page.contains("&lt;L&gt;.csv"));
        } else {
            assert_eq!(summary["ledger_rows"]["written_to"], "new/<L>.csv");
            assert!(ran.dir.join("new/<L>.csv").exists());
            assert!(
                page.contains(
                    "after <span class=\"muted\">in</span> <code>new/&lt;L&gt;.csv</code>"
                )
            );
        }
    }
}

/// A refused run leaves nothing behind: a mistyped `--input` creates no folder (the ledger's
/// folder and lock come after the inputs are known to open), and a message names
/// `--ledger-out` only when it was given.
#[test]
fn a_mistyped_input_leaves_nothing_and_messages_name_only_given_flags() {
    let ran = base("mistyped-input")
        .args(["run", "--input", "nonexistent", "--out", "out"])
        .args(["--as-of", "2026-11-30"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("nonexistent/instances.csv: cannot open"),
        "{}",
        ran.stderr()
    );
    assert!(
        !ran.dir.join("nonexistent").exists(),
        "no folder may be made"
    );
    assert!(!ran.dir.join("out").exists());
    // --out naming the ledger, with no --ledger-out: the message names the ledger.
    let ran = base("out-is-ledger")
        .args(["run", "--input", ".", "--out", "ledger.csv"])
        .args(["--as-of", "2026-11-30"])
        .run()
        .expect(2);
    assert!(!ran.stderr().contains("--ledger-out"), "{}", ran.stderr());
    assert!(
        ran.stderr().contains("the ledger ./ledger.csv"),
        "{}",
        ran.stderr()
    );
    assert_eq!(ran.read("ledger.csv"), LEDGER);
}

/// `summary.json`'s `rules` lists every rule of the policy and every built-in reason, at 0 too,
/// so that a script reading one finds it whatever the night held.
#[test]
fn the_summary_lists_every_reason_even_at_zero() {
    let ran = base("summary-every-reason").args(RUN).run().expect(0);
    let summary: serde_json::Value = serde_json::from_str(&ran.read("out/summary.json")).unwrap();
    let rules = summary["rules"].as_object().unwrap();
    let ids = [
        "malformed-request",
        "duplicate-request",
        "request-id-conflict",
        "malformed-instance",
        "ambiguous-instance",
        "instance-exists",
        "owner-account",
        "mainland-region",
        "max-codes-per-instance",
    ];
    for id in ids {
        assert_eq!(
            rules.get(id),
            Some(&serde_json::json!(0)),
            "{id} in {rules:?}"
        );
    }
    // The policy's nine rules and the five built-in reasons, nothing else.
    assert_eq!(rules.len(), 14, "{rules:?}");
}

/// An `--as-of` with a fraction is decided with it and written with it (summary.json, the new
/// ledger rows' `issued_at`, issued.csv): a re-run with the as-of the summary records decides
/// the same.
#[test]
fn a_fractional_as_of_is_written_as_it_was_decided() {
    let args = ["run", "--input", ".", "--out", "out", "--dry-run"];
    // i-1 expires half a second after the as-of: not expired. Truncated to the second, the
    // expiry would be compared with a time it is not.
    let instances = &format!(
        "{INSTANCES_HEADER}\n\
i-1,100,cn-hangzhou,PrePaid,2026-11-30T00:00:01Z,5,1.2.3.4\n"
    );
    let ran = base("fractional-as-of")
        .file("instances.csv", instances)
        .args(args)
        .args(["--as-of", "2026-11-30T08:00:00.5+08:00"])
        .run()
        .expect(0);
    let summary: serde_json::Value = serde_json::from_str(&ran.read("out/summary.json")).unwrap();
    let recorded = summary["as_of"].as_str().unwrap().to_string();
    assert_eq!(recorded, "2026-11-30T00:00:00.5Z");
    let decisions = ran.read("out/decisions.csv");
    let denials = ran.read("out/denials.csv");
    assert!(denials.contains("2026-11-30T00:00:00.5Z"), "{denials}");
    let again = Test::new("fractional-as-of-again");
    crate::harness::copy_dir(&ran.dir, &again.dir);
    let again = again
        .args(args)
        .args(["--as-of", &recorded])
        .run()
        .expect(0);
    assert_eq!(again.read("out/decisions.csv"), decisions);
    assert_eq!(again.read("out/denials.csv"), denials);
    // A real run records the same instant as each new code's issued_at.
    let real = base("fractional-as-of-real")
        .args(RUN[..5].iter())
        .args(["--as-of", "2026-11-30T00:00:00.25Z"])
        .run()
        .expect(0);
    let ledger = csv_rows(&real.read("ledger.csv"));
    assert!(
        ledger[2..]
            .iter()
            .all(|r| r[4] == "2026-11-30T00:00:00.25Z"),
        "{ledger:?}"
    );
    let issued = csv_rows(&real.read("out/issued.csv"));
    assert!(
        issued[1..]
            .iter()
            .all(|r| r[4] == "2026-11-30T00:00:00.25Z"),
        "{issued:?}"
    );
}

/// A run that reads its requests from a named pipe (`requests.fifo` in `dir`, made here), and
/// so waits there, holding its locks and the open ledger, until `finish` sends it `REQUESTS`.
/// `start` returns once the run has drafted its new ledger (`.NAME.tmp-PID` beside it, named by
/// `draft_prefix`): it has opened the old ledger by then. Killed if the test fails before, so
/// that it never waits on the pipe after the test.
#[cfg(unix)]
struct Waiting {
    child: Option<std::process::Child>,
    fifo: std::path::PathBuf,
}

#[cfg(unix)]
impl Waiting {
    fn start(dir: &std::path::Path, args: &[&str], draft_prefix: &str) -> Waiting {
        Waiting::start_when(dir, args, |_| {
            fs::read_dir(dir).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(draft_prefix)
            })
        })
    }

    /// `start`, returning once `ready` (given the run's process id) says so.
    fn start_when(dir: &std::path::Path, args: &[&str], ready: impl Fn(u32) -> bool) -> Waiting {
        use std::process::{Command, Stdio};
        let fifo = dir.join("requests.fifo");
        crate::harness::mkfifo(&fifo);
        let child = Command::new(crate::harness::BIN)
            .args(["run", "--requests", "requests.fifo"])
            .args(args)
            .args(["--as-of", "2026-11-30", "--quiet"])
            .current_dir(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let waiting = Waiting {
            child: Some(child),
            fifo,
        };
        let started = std::time::Instant::now();
        while !ready(pid) {
            assert!(started.elapsed().as_secs() < 30, "the run never got ready");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        waiting
    }

    /// Sends the run its requests and waits for it to end.
    fn finish(mut self) -> std::process::Output {
        use std::io::Write;
        fs::OpenOptions::new()
            .write(true)
            .open(&self.fifo)
            .unwrap()
            .write_all(REQUESTS.as_bytes())
            .unwrap();
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

#[cfg(unix)]
impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The files in `dir` whose names start with `prefix`.
#[cfg(unix)]
fn named_like(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A `Waiting` run's arguments (besides its requests) for a run writing `ledger.csv` in place.
#[cfg(unix)]
const IN_PLACE: [&str; 6] = [
    "--instances",
    "instances.csv",
    "--ledger",
    "ledger.csv",
    "--out",
    "out",
];

/// Asserts that a run that waited (`Waiting`) was refused (exit 2) saying `said`, that
/// `ledger.csv` in `dir` holds `kept` (what the other program wrote), and that nothing of the
/// run is left: no new ledger drafted beside `draft` (a file name in `dir`), no decisions and
/// no hand-off in `out`.
#[cfg(unix)]
fn refused_keeping(
    ran: &std::process::Output,
    said: &str,
    dir: &std::path::Path,
    kept: &str,
    draft: &str,
    out: &str,
) {
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(said), "{said} in:\n{stderr}");
    assert_eq!(fs::read_to_string(dir.join("ledger.csv")).unwrap(), kept);
    assert!(named_like(dir, &format!(".{draft}.tmp-")).is_empty());
    assert!(!dir.join(out).join("decisions.csv").exists());
    assert!(!dir.join(out).join("issued.csv").exists());
}

/// A run writing `--ledger-out` holds the lock of the ledger it reads too, so a run that would
/// write that ledger in place meanwhile (and hand out the same quota) exits 3 and writes
/// nothing. And when the file at the ledger's path is replaced meanwhile by a program that
/// does not take the lock (here by hand, with a row that answers r1), the `--ledger-out` run,
/// which decided by the ledger as it was when it opened it, is refused before its new ledger
/// is put in place: it would have given r1 a second code. Run B reads its requests from a named
/// pipe, so it waits, holding both locks and the open ledger, while A tries to run and the file
/// is replaced; then B gets its requests. (Until the seventeenth session A went ahead, and B's
/// new ledger lacked A's code; until the twenty-third, B went ahead by the old ledger.)
#[cfg(unix)]
#[test]
fn an_in_place_run_during_a_ledger_out_run_on_its_ledger_is_exit_3() {
    let t = base("replaced-meanwhile");
    let dir = t.dir.clone();
    let b = Waiting::start(
        &dir,
        &[
            "--instances",
            "instances.csv",
            "--ledger",
            "ledger.csv",
            "--ledger-out",
            "o.csv",
            "--out",
            "out-b",
        ],
        ".o.csv.tmp-",
    );
    // A would write the input ledger in place: refused while B holds its lock.
    let a = std::process::Command::new(crate::harness::BIN)
        .args(RUN)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        a.status.code(),
        Some(3),
        "run A was not refused as locked: {a:?}"
    );
    assert!(
        String::from_utf8_lossy(&a.stderr).contains("ledger.csv.lock: the ledger is locked"),
        "{a:?}"
    );
    assert_eq!(fs::read_to_string(dir.join("ledger.csv")).unwrap(), LEDGER);
    assert!(!dir.join("out").exists());
    // The ledger's file replaced by hand: r1 answered there.
    let replaced = format!("{LEDGER}HAND-1,i-1,100,r1,2026-11-29T00:00:00Z,issued,\n");
    fs::write(dir.join("ledger.new"), &replaced).unwrap();
    fs::rename(dir.join("ledger.new"), dir.join("ledger.csv")).unwrap();
    refused_keeping(
        &b.finish(),
        "icp-audit: ledger.csv: the ledger changed while the run read it (another file was put \
         in its place)",
        &dir,
        &replaced,
        "o.csv",
        "out-b",
    );
    assert!(!dir.join("o.csv").exists());
}

/// A row appended to the ledger during a run, by a program that does not take the lock (a
/// console export, an editor), is neither decided by nor lost: the copy and the scan both
/// read the ledger as it was when opened, and the run is refused before its new ledger would
/// replace the file and drop that row. (Until the twenty-third session the scan read the
/// appended row and the copy did not: the new ledger lost it.)
#[cfg(unix)]
#[test]
fn a_row_appended_to_the_ledger_during_a_run_is_not_lost() {
    use std::io::Write;
    let t = base("appended-meanwhile");
    let dir = t.dir.clone();
    let run = Waiting::start(&dir, &IN_PLACE, ".ledger.csv.tmp-");
    let row = "HAND-1,i-1,100,r1,2026-11-29T00:00:00Z,issued,\n";
    fs::OpenOptions::new()
        .append(true)
        .open(dir.join("ledger.csv"))
        .unwrap()
        .write_all(row.as_bytes())
        .unwrap();
    let said = format!(
        "icp-audit: ledger.csv: the ledger changed while the run read it (it was written to: {} \
         bytes when the run opened it, {} now)",
        LEDGER.len(),
        LEDGER.len() + row.len()
    );
    let kept = format!("{LEDGER}{row}");
    refused_keeping(&run.finish(), &said, &dir, &kept, "ledger.csv", "out");
    // Run again, it decides by the appended row: r1 is answered with the hand-issued code.
    let again = std::process::Command::new(crate::harness::BIN)
        .args(RUN)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let decisions = csv_rows(&fs::read_to_string(dir.join("out/decisions.csv")).unwrap());
    assert_eq!(decisions[1][0], "r1");
    assert_eq!(decisions[1][3], "already_issued");
    assert_eq!(decisions[1][4], "HAND-1");
}

/// A ledger named through a dangling link (its target, and the target's folder, not made yet)
/// is created and locked where the link points: a later run naming the target finds its codes.
#[cfg(unix)]
#[test]
fn a_dangling_link_to_the_ledger_is_followed_to_where_it_points() {
    let t = base("dangling-link");
    fs::remove_file(t.dir.join("ledger.csv")).unwrap();
    fs::create_dir_all(t.dir.join("links")).unwrap();
    std::os::unix::fs::symlink("../real/ledger.csv", t.dir.join("links/ledger.csv")).unwrap();
    let ran = t
        .args(RUN)
        .args(["--ledger", "links/ledger.csv"])
        .run()
        .expect(0);
    let link = fs::symlink_metadata(ran.dir.join("links/ledger.csv")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    assert!(ran.dir.join("real/ledger.csv.lock").exists());
    assert!(!ran.dir.join("links/ledger.csv.lock").exists());
    let issued = csv_rows(&ran.read("out/issued.csv"));
    assert_eq!(issued.len(), 3);
    let again = Test::new("dangling-link-again");
    crate::harness::copy_dir(&ran.dir, &again.dir);
    crate::harness::copy_dir(&ran.dir.join("real"), &again.dir.join("real"));
    let again = again
        .args(RUN)
        .args(["--ledger", "real/ledger.csv"])
        .run()
        .expect(0);
    let decisions = again.read("out/decisions.csv");
    assert_eq!(
        decisions.matches(",already_issued,").count(),
        2,
        "{decisions}"
    );
}

/// The outputs a killed run left under their temporary names in `--out` (its hand-off holds
/// codes) are removed by the next run, but only those no process holds locked and older than a
/// minute: another run (in another process namespace, even) may be writing into the same folder.
#[cfg(unix)]
#[test]
fn outputs_left_by_killed_runs_are_removed_and_live_ones_kept() {
    let t = base("dead-outputs")
        .file(
            "out/.issued.csv.tmp-999999999",
            "request_id,instance_id,account_id,code,issued_at\n",
        )
        .file("out/.denials.csv.tmp-999999998", "")
        .file("out/.decisions.csv.tmp-12", "")
        .file("out/.summary.json.tmp-13", "")
        .file("out/.notes.tmp-999999999", "");
    let out = t.dir.join("out");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for name in [
        ".issued.csv.tmp-999999999",
        ".denials.csv.tmp-999999998",
        ".decisions.csv.tmp-12",
        ".notes.tmp-999999999",
    ] {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(out.join(name))
            .unwrap();
        f.set_modified(hour_ago).unwrap();
    }
    // A live run's file: held locked (here by this test), whatever its age or process id.
    let live = fs::File::open(out.join(".decisions.csv.tmp-12")).unwrap();
    live.lock().unwrap();
    let ran = t.args(RUN).run().expect(0);
    assert!(!out.join(".issued.csv.tmp-999999999").exists());
    assert!(!out.join(".denials.csv.tmp-999999998").exists());
    assert!(
        out.join(".decisions.csv.tmp-12").exists(),
        "a held file is kept"
    );
    assert!(
        out.join(".summary.json.tmp-13").exists(),
        "a new file is kept"
    );
    assert!(
        out.join(".notes.tmp-999999999").exists(),
        "not an output: kept"
    );
    drop(live);
    drop(ran);
}

/// An output that replaces a file keeps its mode, but the outputs that hold codes
/// (`issued.csv`, `decisions.csv`) never stay readable by anyone: a `touch`ed 0644 becomes 0640.
#[cfg(unix)]
#[test]
fn outputs_holding_codes_are_never_left_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let t = base("world-readable")
        .file("out/issued.csv", "")
        .file("out/decisions.csv", "")
        .file("out/denials.csv", "");
    for name in ["issued.csv", "decisions.csv", "denials.csv"] {
        fs::set_permissions(
            t.dir.join("out").join(name),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let ran = t.args(RUN).run().expect(0);
    let mode = |name: &str| {
        fs::metadata(ran.dir.join("out").join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("issued.csv"), 0o640);
    assert_eq!(mode("decisions.csv"), 0o640);
    assert_eq!(
        mode("denials.csv"),
        0o644,
        "an output without codes keeps its mode"
    );
}

/// Only the ledger keeps its owner: an output replacing a file someone else owns in `--out`
/// is the running user's, so a planted `issued.csv` cannot hand its owner the new codes.
#[cfg(unix)]
#[test]
fn outputs_never_take_the_owner_of_the_file_they_replace() {
    use std::os::unix::fs::MetadataExt;
    let t = base("planted-output").file("out/issued.csv", "");
    let me = fs::metadata(&t.dir).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(t.dir.join("out/issued.csv"), Some(65534), Some(65534)).unwrap();
    }
    let ran = t.args(RUN).run().expect(0);
    let issued = fs::metadata(ran.dir.join("out/issued.csv")).unwrap();
    assert_eq!(issued.uid(), me, "the new issued.csv is the running user's");
}

/// A ledger that is a pipe can be read once only: a dry run decides by it; a run that writes a
/// ledger (which copies it as well as reading it) refuses it, writing nothing.
#[cfg(unix)]
#[test]
fn a_ledger_from_a_pipe_serves_a_dry_run_and_is_refused_by_a_real_one() {
    use std::io::Write;
    for dry in [true, false] {
        let t = base(&format!("ledger-pipe-{dry}"));
        let dir = t.dir.clone();
        let fifo = dir.join("ledger.fifo");
        crate::harness::mkfifo(&fifo);
        let feeder = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Opening blocks until the run opens the pipe; a refused run may close it first.
                if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&fifo) {
                    let _ = f.write_all(LEDGER.as_bytes());
                }
            })
        };
        let ran = t
            .args(RUN)
            .args(["--ledger", "ledger.fifo", "--ledger-out", "new.csv"])
            .args(dry.then_some("--dry-run"))
            .run();
        if dry {
            let ran = ran.expect(0);
            feeder.join().unwrap();
            // The ledger's OLD-1 (spent, no request id) is read: r1's instance holds a code.
            let summary: serde_json::Value =
                serde_json::from_str(&ran.read("out/summary.json")).unwrap();
            assert_eq!(summary["ledger_rows"]["before"], 1, "{summary}");
        } else {
            let ran = ran.expect(2);
            assert!(
                ran.stderr()
                    .contains("ledger.fifo: the ledger is not a regular file"),
                "{}",
                ran.stderr()
            );
            assert!(!dir.join("new.csv").exists());
            assert!(!dir.join("out").exists());
            // The run opened the pipe before refusing it, so the feeder is not left waiting;
            // a reader that does not wait makes sure of it.
            use std::os::unix::fs::OpenOptionsExt;
            let _ = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
            feeder.join().unwrap();
        }
    }
}

/// The ledger that a run rewrites in place is checked as `--ledger-out` is: a path ending in
/// `/` is a folder, and the inventory named as the ledger (by the very same path) would be
/// overwritten. Refused before anything is made, and the message names the ledger, not a
/// flag that was not given. A dry run writes no ledger, so only what it reads is checked.
#[test]
fn the_ledger_rewritten_in_place_is_checked_like_ledger_out() {
    let ran = base("ledger-folder-in-place")
        .args(RUN)
        .args(["--ledger", "new/"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("the ledger new/: is a folder, not a file"),
        "{}",
        ran.stderr()
    );
    assert!(!ran.dir.join("new").exists() && !ran.dir.join("new.lock").exists());
    let ran = base("ledger-is-inventory")
        .args(RUN)
        .args(["--ledger", "./instances.csv"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("the ledger ./instances.csv: would overwrite the input `./instances.csv`"),
        "{}",
        ran.stderr()
    );
    assert!(!ran.dir.join("instances.csv.lock").exists());
    assert_eq!(ran.read("instances.csv"), INSTANCES);
    // A dry run reads it as a ledger, and its header is what refuses it.
    let ran = base("ledger-is-inventory-dry")
        .args(RUN)
        .args(["--ledger", "./instances.csv", "--dry-run"])
        .run()
        .expect(2);
    assert!(
        ran.stderr().contains("the ledger has no `code` column"),
        "{}",
        ran.stderr()
    );
}

/// A file planted at the `--ledger-out` path gives its owner nothing (only a ledger rewritten
/// in place keeps its owner), and no output keeps a set-id bit of the file it replaces.
#[cfg(unix)]
#[test]
fn planted_files_lend_neither_their_owner_nor_set_id_bits() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = base("planted-ledger-out")
        .file("new.csv", "")
        .file("out/summary.json", "{}");
    let me = fs::metadata(&t.dir).unwrap().uid();
    for name in ["new.csv", "out/summary.json"] {
        let p = t.dir.join(name);
        if me == 0 {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    }
    let ran = t
        .args(RUN)
        .args(["--ledger-out", "new.csv"])
        .run()
        .expect(0);
    for name in ["new.csv", "out/summary.json"] {
        let m = fs::metadata(ran.dir.join(name)).unwrap();
        assert_eq!(m.uid(), me, "{name} is the running user's");
        assert_eq!(
            m.permissions().mode() & 0o7000,
            0,
            "{name} keeps no set-id bit"
        );
    }
}

/// A report that cannot be written after the ledger's commit (here: past the file size limit,
/// `ulimit -f`, with SIGXFSZ ignored so that the write fails with EFBIG): exit 1, and the
/// message says that the new code was recorded and handed over, so that an operator does not
/// take the run for one that did nothing.
#[test]
fn a_report_that_fails_after_the_commit_says_the_codes_were_issued() {
    let mut instances =
        format!("{INSTANCES_HEADER}\ni-ok,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n");
    let mut requests = format!("{REQUESTS_HEADER}\nr-ok,100,i-ok,2026-11-29\n");
    // Many denials with several reasons: denials.csv outgrows the limit, the ledger does not.
    for i in 0..400 {
        instances.push_str(&format!("i-{i},100,cn-hangzhou,PostPaid,2026-01-01,0,\n"));
        requests.push_str(&format!("r{i},100,i-{i},2026-11-29\n"));
    }
    let t = Test::new("fails-after-commit")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests);
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 128; exec {} run --input . --out out --as-of 2026-11-30",
            crate::harness::BIN
        ))
        .current_dir(&t.dir)
        .output()
        .unwrap();
    let ran = crate::harness::Ran {
        dir: t.dir.clone(),
        output,
    };
    let ran = ran.expect(1);
    let stderr = ran.stderr();
    assert!(stderr.contains("cannot write: file too large"), "{stderr}");
    assert!(
        stderr.contains(
            "the ledger was committed first: its 1 new code(s) are recorded and handed over in \
             out/issued.csv; a re-run reports them as already_issued"
        ),
        "{stderr}"
    );
    let issued = csv_rows(&ran.read("out/issued.csv"));
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert!(ran.read("ledger.csv").contains(&issued[1][3]));
}

/// A ledger made read-only (`chmod a-w`) was frozen by its keeper: a real run that would
/// replace it is refused (exit 2, nothing written; a rename would not have asked for its write
/// permission), in place and as a `--ledger-out`, through a link too; a dry run still decides by
/// it. (Until the twenty-third session the run replaced it, keeping its mode.)
#[cfg(unix)]
#[test]
fn a_read_only_ledger_is_not_replaced() {
    let t = base("read-only-ledger").file("written.csv", LEDGER);
    let dir = t.dir.clone();
    std::os::unix::fs::symlink("ledger.csv", dir.join("link.csv")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::harness::BIN)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let refused = |args: &[&str], said: &str| {
        let ran = run(args);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "icp-audit: {said} (its mode lets no one write it)"
            )),
            "{stderr}"
        );
        assert!(!dir.join("out").exists(), "{args:?}");
        assert_eq!(fs::read_to_string(dir.join("ledger.csv")).unwrap(), LEDGER);
        assert_eq!(fs::read_to_string(dir.join("written.csv")).unwrap(), LEDGER);
    };
    // The ledger read-only: in place, and through a link.
    chmod(&dir.join("ledger.csv"), 0o444);
    refused(&RUN, "the ledger ./ledger.csv: is read-only");
    refused(
        &[
            "run",
            "--instances",
            "instances.csv",
            "--requests",
            "requests.csv",
            "--ledger",
            "link.csv",
            "--out",
            "out",
            "--as-of",
            "2026-11-30",
        ],
        "the ledger link.csv: is read-only",
    );
    // A dry run decides by it; a --ledger-out run writes elsewhere, leaving it as it is.
    let dry = run(&[&RUN[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    let elsewhere = run(&[&RUN[..], &["--ledger-out", "fresh.csv"]].concat());
    assert_eq!(elsewhere.status.code(), Some(0), "{elsewhere:?}");
    assert_eq!(
        csv_rows(&fs::read_to_string(dir.join("fresh.csv")).unwrap()).len(),
        4
    );
    fs::remove_dir_all(dir.join("out")).unwrap();
    // Only the --ledger-out file read-only.
    chmod(&dir.join("ledger.csv"), 0o644);
    chmod(&dir.join("written.csv"), 0o444);
    refused(
        &[&RUN[..], &["--ledger-out", "written.csv"]].concat(),
        "--ledger-out written.csv: is read-only",
    );
    chmod(&dir.join("written.csv"), 0o644);
}

/// A ledger row that answers a request by its id, for the same account and for the instance
/// written in another spelling (`I-Q` for `i-q`, which the limit already counts as `i-q`'s
/// code), answers it: `already_issued` with its code, not a `request-id-conflict` that says
/// the id was used for another request. Another account's row still conflicts.
#[test]
fn a_ledger_answer_in_another_spelling_of_the_instance_is_the_same_request() {
    let instances =
        &format!("{INSTANCES_HEADER}\ni-q,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n");
    let requests = &format!("{REQUESTS_HEADER}\nr5,100,i-q,2026-11-29\nr6,100,i-q,2026-11-29\n");
    let ledger = format!(
        "{LEDGER_HEADER}\nC1,I-Q,100,r5,2026-01-01T00:00:00Z,issued,\n\
         C2,\"i-q \",200,r6,2026-01-01T00:00:00Z,issued,\n"
    );
    let ran = run_files("loose-answer", instances, requests, &ledger);
    let decisions = csv_rows(&ran.read("out/decisions.csv"));
    assert_eq!(
        decisions[1][3..],
        ["already_issued", "C1", ""],
        "{decisions:?}"
    );
    assert_eq!(
        decisions[2][3..],
        ["invalid", "", "request-id-conflict"],
        "{decisions:?}"
    );
}

/// The ledger is checked just before the new one replaces it, for every change a program
/// without the lock can make: rewritten to the same size (only its modification time tells),
/// made where there was none, made read-only. Each refuses the run (exit 2) and keeps what
/// that program wrote.
#[cfg(unix)]
#[test]
fn every_change_to_the_ledger_during_a_run_refuses_it() {
    use std::io::{Seek, Write};
    let args = IN_PLACE;
    // The same size: `OLD-1` becomes `OLD-2` in place.
    let t = base("rewritten-same-size");
    let run = Waiting::start(&t.dir, &args, ".ledger.csv.tmp-");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(t.dir.join("ledger.csv"))
        .unwrap();
    let at = LEDGER.find("OLD-1").unwrap() + 4;
    file.seek(std::io::SeekFrom::Start(at as u64)).unwrap();
    file.write_all(b"2").unwrap();
    drop(file);
    let said = format!(
        "(it was written to: its modification time changed ({} bytes, as when the run opened \
         it))",
        LEDGER.len()
    );
    let kept = LEDGER.replace("OLD-1", "OLD-2");
    refused_keeping(&run.finish(), &said, &t.dir, &kept, "ledger.csv", "out");
    // None at first, one made meanwhile.
    let t = Test::new("made-meanwhile")
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS);
    let run = Waiting::start(&t.dir, &args, ".ledger.csv.tmp-");
    fs::write(t.dir.join("ledger.csv"), LEDGER).unwrap();
    let said = "(there was none, and one was made)";
    refused_keeping(&run.finish(), said, &t.dir, LEDGER, "ledger.csv", "out");
    // Made read-only meanwhile (its mode only: its size and time stay).
    let t = base("read-only-meanwhile");
    let run = Waiting::start(&t.dir, &args, ".ledger.csv.tmp-");
    chmod(&t.dir.join("ledger.csv"), 0o444);
    let said = "ledger.csv: is read-only";
    refused_keeping(&run.finish(), said, &t.dir, LEDGER, "ledger.csv", "out");
    chmod(&t.dir.join("ledger.csv"), 0o644);
}

/// Every reader of the ledger stops at the size it had when opened: a dry run (which commits
/// nothing, so checks nothing) decides by the rows there were then, and hashes those, even
/// when a row answering its request is appended meanwhile.
#[cfg(target_os = "linux")]
#[test]
fn a_dry_run_decides_by_the_ledger_as_it_was_opened() {
    use sha2::Digest;
    use std::io::Write;
    let t = base("dry-appended");
    let ledger = t.dir.join("ledger.csv");
    let target = fs::canonicalize(&ledger).unwrap();
    // Ready once the run holds the ledger open (its open files, in /proc).
    let holds_ledger = |pid: u32| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|p| p == target))
        })
    };
    let run = Waiting::start_when(
        &t.dir,
        &[
            "--instances",
            "instances.csv",
            "--ledger",
            "ledger.csv",
            "--out",
            "out",
            "--dry-run",
        ],
        holds_ledger,
    );
    let row = "HAND-1,i-1,100,r1,2026-11-29T00:00:00Z,issued,\n";
    fs::OpenOptions::new()
        .append(true)
        .open(&ledger)
        .unwrap()
        .write_all(row.as_bytes())
        .unwrap();
    let ran = run.finish();
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    let decisions = csv_rows(&fs::read_to_string(t.dir.join("out/decisions.csv")).unwrap());
    assert_eq!(decisions[1][0], "r1");
    assert_eq!(decisions[1][3], "eligible", "{decisions:?}");
    let summary = fs::read_to_string(t.dir.join("out/summary.json")).unwrap();
    let digest: String = sha2::Sha256::digest(LEDGER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(summary.contains(&digest), "{summary}");
}

/// An instance listed in two spellings is judged on all its rows, as one listed twice is: a
/// malformed row in the other spelling makes it `malformed-instance` (step 5's order), and the
/// `ambiguous-instance` message writes an invisible character of a spelling as its code point,
/// so that the two spellings it lists never look the same.
#[test]
fn other_spellings_rows_are_the_instances_rows() {
    let instances = &format!(
        "{INSTANCES_HEADER}\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
I-1,100,cn-hangzhou,Bogus,2028-01-01,5,1.2.3.5\n\
i-2,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.6\n\
i-2\u{200b},100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.7\n"
    );
    let requests = &format!("{REQUESTS_HEADER}\nq1,100,i-1,2026-11-29\nq2,100,i-2,2026-11-29\n");
    let ran = run_files("loose-rows", instances, requests, LEDGER);
    assert_eq!(
        crate::harness::outcomes(&ran),
        crate::harness::pairs([
            ("invalid", "malformed-instance"),
            ("invalid", "ambiguous-instance")
        ]),
        "{}",
        ran.read("out/decisions.csv")
    );
    let denials = csv_rows(&ran.read("out/denials.csv"));
    assert!(
        denials[1][5].contains("column `charge_type`"),
        "{denials:?}"
    );
    assert!(
        denials[2][5].ends_with("(written `i-2`, `i-2\\u{200B}`)"),
        "{denials:?}"
    );
}

/// An inventory instance id made only of characters a text shows as nothing is no id: its row
/// is malformed, so a request for it is `invalid` and gets no code, however many ledger rows
/// write other such ids (each of which, spelt loosely, is the same empty id).
#[test]
fn an_instance_id_of_invisible_characters_is_malformed() {
    let instances =
        &format!("{INSTANCES_HEADER}\n\u{200b},100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n");
    let requests = &format!("{REQUESTS_HEADER}\nq1,100,\u{200b},2026-11-29\n");
    let mut ledger = format!("{LEDGER_HEADER}\n");
    for (n, id) in ["\u{200c}", "\u{2060}", "\u{ad}", "\u{feff}", "\u{200d}"]
        .iter()
        .enumerate()
    {
        ledger.push_str(&format!("C{n},{id},100,,2025-01-01T00:00:00Z,spent,d\n"));
    }
    let ran = run_files("invisible-id", instances, requests, &ledger);
    assert_eq!(
        crate::harness::outcomes(&ran),
        crate::harness::pairs([("invalid", "malformed-instance")]),
        "{}",
        ran.read("out/decisions.csv")
    );
    assert!(
        ran.read("out/input-errors.csv")
            .contains("the instance id is made only of characters that a text shows as nothing"),
        "{}",
        ran.read("out/input-errors.csv")
    );
}
