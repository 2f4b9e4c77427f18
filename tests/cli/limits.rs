//! The largest inputs the tool accepts: a cell over 64 KiB makes its row malformed; a line over
//! 64 MiB refuses the file instead of filling memory. And a stdout that cannot take a line, and
//! usage errors.

use crate::harness::{RUN, Test, csv_rows};

const HEADER: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n";

#[test]
fn a_cell_over_64_kib_makes_its_row_malformed() {
    let big = "x".repeat(65 * 1024);
    let instances = format!(
        "{HEADER}i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,{big}\ni-2,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n"
    );
    let ran = Test::new("limit-cell")
        .file("instances.csv", &instances)
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\nr1,100,i-1,2026-11-29\nr2,100,i-2,2026-11-29\n",
        )
        .args(["run", "--input", ".", "--out", "out", "--as-of", "2026-11-30", "--dry-run"])
        .run()
        .expect(0);
    let d = csv_rows(&ran.read("out/decisions.csv"));
    assert_eq!(d[1][3..], ["invalid", "", "malformed-instance"]);
    assert_eq!(d[2][3], "eligible");
    let errors = ran.read("out/input-errors.csv");
    assert!(errors.contains("instances.csv,2,public_ip"), "{errors}");
    assert!(errors.contains("more than the 65536"), "{errors}");
}

#[test]
fn a_line_over_64_mib_refuses_the_file() {
    let line = "y".repeat(65 << 20);
    let instances = format!("{HEADER}i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,{line}\n");
    let ran = Test::new("limit-line")
        .file("instances.csv", &instances)
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\n",
        )
        .args(RUN)
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("instances.csv:2: a line is longer than 64 MiB"),
        "{}",
        ran.stderr()
    );
    assert!(!ran.dir.join("out").exists());
}

/// A line stdout cannot take (a full disk) is not lost without a word: the command says so and
/// exits 1. A closed pipe (`| head`) is not an error.
#[cfg(target_os = "linux")]
#[test]
fn a_stdout_that_cannot_be_written_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("Linux has /dev/full");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["check-policy", "policies/icp-service-code.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write to standard output"),
        "{stderr}"
    );
    // The same command into a pipe closed at once.
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["check-policy", "policies/icp-service-code.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// A run whose summary line stdout cannot take exits 1, but says that the run itself completed,
/// with how many codes the ledger it wrote holds for it, where they are handed over, and what a
/// retry does: in place, it issues none of them again and hands over none; with `--ledger-out`,
/// it must decide by the new ledger.
#[cfg(target_os = "linux")]
#[test]
fn a_run_whose_summary_line_is_lost_says_it_completed() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    for ledger_out in [None, Some("new.csv")] {
        let t = Test::new("summary-lost");
        crate::harness::copy_dir(&demo, &t.dir);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("Linux has /dev/full");
        let out = std::process::Command::new(crate::harness::BIN)
            .args(RUN)
            .args(
                ledger_out
                    .map(|l| ["--ledger-out", l])
                    .into_iter()
                    .flatten(),
            )
            .current_dir(&t.dir)
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let issued =
            csv_rows(&std::fs::read_to_string(t.dir.join("out/issued.csv")).unwrap()).len() - 1;
        assert!(issued > 0);
        let (ledger, retry) = match ledger_out {
            None => (
                "the ledger ./ledger.csv".to_string(),
                "a re-run would issue none of them again and hand over none".to_string(),
            ),
            Some(l) => (
                format!("--ledger-out {l}"),
                format!("a re-run must decide by it (--ledger {l}), or it is refused"),
            ),
        };
        for said in [
            "icp-audit: cannot write to standard output: no space left on device\n".to_string(),
            format!(
                "icp-audit: the run itself completed: {ledger} holds its {issued} new code(s), \
                 handed over in out/issued.csv, and its outputs are in out; {retry}\n"
            ),
        ] {
            assert!(stderr.contains(&said), "{said} in:\n{stderr}");
        }
    }
}

/// A usage error is told as every other refusal is (exit 2, each line behind `icp-audit: `),
/// and ends with the usage of the command it is about, whichever error clap found (it gives
/// one only with some: until the twenty-third session a value it could not parse, or a
/// missing one, came without), and for the errors found after it (a missing input, an as-of
/// that is no time, a thread count out of range) too; a negative number is a value that is not a whole number, not an
/// unknown flag. `--help` and `--version` still print to stdout and exit 0. A system error is
/// written in the program's words.
#[test]
fn usage_errors_are_told_behind_the_programs_name() {
    let run_usage = "icp-audit: usage: icp-audit run [OPTIONS] --out <DIR>\n";
    for (args, said, usage) in [
        (
            vec!["run", "--input", "."],
            "the following required arguments were not provided",
            "icp-audit: usage: icp-audit run --out <DIR> --input <DIR>\n",
        ),
        (
            vec!["run", "--input", ".", "--out", "o", "--jobs", "abc"],
            "invalid value 'abc' for '--jobs <N>'",
            run_usage,
        ),
        (
            vec!["run", "--input", ".", "--out"],
            "a value is required for '--out <DIR>'",
            run_usage,
        ),
        (
            vec!["run", "--input", ".", "--out", "o", "--max-issue", "-1"],
            "invalid value '-1' for '--max-issue <N>'",
            run_usage,
        ),
        (
            vec!["run", "--input", ".", "--out", "o", "--jobs", "0"],
            "--jobs: give 1 to 256 threads, not 0",
            run_usage,
        ),
        (
            vec!["run", "--input", ".", "--out", "o", "--as-of", "garbage"],
            "--as-of: `garbage` is not a time",
            run_usage,
        ),
        (
            vec!["run", "--out", "o"],
            "icp-audit: give --input DIR or --instances F\n",
            run_usage,
        ),
        (
            vec!["verify-code"],
            "",
            "icp-audit: usage: icp-audit verify-code <CODES>...\n",
        ),
        (vec!["frob"], "", "icp-audit: usage: icp-audit <COMMAND>\n"),
    ] {
        let ran = Test::new("usage").args(&args).run().expect(2);
        let err = ran.stderr();
        assert!(
            !err.is_empty() && err.lines().all(|l| l.starts_with("icp-audit: ")),
            "{args:?}:\n{err}"
        );
        assert!(!err.contains("error:"), "{args:?}:\n{err}");
        assert!(!err.contains("For more information"), "{args:?}:\n{err}");
        assert!(err.contains(said), "{args:?}:\n{err}");
        assert!(err.ends_with(usage), "{args:?}:\n{err}");
        assert_eq!(err.matches("usage: ").count(), 1, "{args:?}:\n{err}");
    }
    // The system's words for a failure, as the program's own are written.
    let ran = Test::new("usage-missing")
        .args([
            "run",
            "--instances",
            "nosuch.csv",
            "--requests",
            "nosuch.csv",
        ])
        .args(["--ledger", "l.csv", "--out", "o"])
        .run()
        .expect(2);
    assert_eq!(
        ran.stderr(),
        "icp-audit: nosuch.csv: cannot open: no such file or directory\n"
    );
    for flag in ["--help", "--version"] {
        let ran = Test::new("usage-help").args([flag]).run().expect(0);
        assert!(ran.stdout().contains("icp-audit"), "{flag}");
    }
}
