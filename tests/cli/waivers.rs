//! Waivers: a waived check does not refuse; gates and quotas cannot be waived; expired and
//! unused waivers are listed so that stale exemptions get noticed.

use crate::harness::{Test, csv_rows, outcomes};
use std::path::Path;

const INSTANCES: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
i-bp1demo0renewing,100,cn-hangzhou,PrePaid,2027-01-15T00:00Z,5,1.2.3.4\n\
i-2,1234567890123456,cn-beijing,PrePaid,2028-01-01,5,\n\
i-3,100,cn-beijing,PrePaid,2027-01-15T00:00Z,5,1.2.3.5\n";
const REQUESTS: &str = "request_id,account_id,instance_id,requested_at\n\
r1,100,i-bp1demo0renewing,2026-11-29\nr2,1234567890123456,i-2,2026-11-29\nr3,100,i-3,2026-11-29\n";

fn example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/waivers/example.yaml"),
    )
    .unwrap()
}

fn run(name: &str, waivers: &str, as_of: &str) -> crate::harness::Ran {
    Test::new(name)
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .file("w.yaml", waivers)
        .args(["run", "--input", ".", "--out", "out", "--waivers", "w.yaml"])
        .args(["--as-of", as_of, "--dry-run"])
        .run()
}

#[test]
fn a_key_given_twice_is_refused_where_it_is_repeated() {
    let twice = example().replacen(
        "    ticket: OPS-4821\n",
        "    ticket: OPS-4821\n    ticket: OPS-4822\n",
        1,
    );
    let ran = run("waivers-repeated-key", &twice, "2026-11-30").expect(2);
    assert!(
        ran.stderr()
            .contains("w.yaml:7:5: `waivers[0].ticket` is given twice (first at 6:5)"),
        "{}",
        ran.stderr()
    );
}

#[test]
fn the_readme_example_waives_its_checks_while_in_force() {
    let ran = run("waivers-example", &example(), "2026-11-30").expect(0);
    let got = outcomes(&ran);
    assert_eq!(
        got[0].0, "eligible",
        "three-months-left waived for the instance"
    );
    assert_eq!(got[1].0, "eligible", "public-ip waived for the account");
    assert_eq!(
        got[2],
        ("denied".into(), "three-months-left".into()),
        "no waiver"
    );
    let summary = ran.read("out/summary.json");
    assert!(summary.contains("\"applied\": 1"), "{summary}");
    assert!(summary.contains("\"state\": \"applied\""), "{summary}");
    let report = ran.read("out/report.html");
    assert!(
        report.contains("OPS-4821: three-months-left for instance i-bp1demo0renewing"),
        "the report lists the waivers"
    );
}

#[test]
fn expired_and_unused_waivers_are_listed_and_do_not_apply() {
    // On Dec 5 the account waiver (until Dec 1) has expired.
    let ran = run("waivers-expired", &example(), "2026-12-05").expect(0);
    let got = outcomes(&ran);
    assert_eq!(got[0].0, "eligible");
    assert_eq!(got[1], ("denied".into(), "public-ip".into()));
    let summary = ran.read("out/summary.json");
    assert!(summary.contains("\"state\": \"expired\""), "{summary}");
    let unused = example().replace("i-bp1demo0renewing", "i-nothing");
    let ran = run("waivers-unused", &unused, "2026-11-30").expect(0);
    assert!(
        ran.read("out/summary.json")
            .contains("\"state\": \"unused\"")
    );
}

#[test]
fn gates_and_quotas_cannot_be_waived() {
    for (check, needle) in [
        ("owner-account", "gates cannot be waived"),
        ("max-codes-per-instance", "quotas cannot be waived"),
        ("no-such-check", "unknown check `no-such-check`"),
    ] {
        let text = example().replacen("three-months-left", check, 1);
        let ran = run(&format!("waivers-{check}"), &text, "2026-11-30").expect(2);
        assert!(ran.stderr().contains("w.yaml:3:"), "{}", ran.stderr());
        assert!(ran.stderr().contains(needle), "{}", ran.stderr());
        assert!(!ran.dir.join("out").exists());
    }
    let both = example().replacen(
        "    instance: i-bp1demo0renewing\n",
        "    instance: i-1\n    account: \"1\"\n",
        1,
    );
    run("waivers-both", &both, "2026-11-30").expect(2);
}

/// `waived.csv` names the request behind each count: a row per check a waiver let a request
/// pass, with the request's outcome and the waiver's ticket. Two waivers in force for one
/// request each exempt it (neither is `unused`). A run without waivers writes no such file.
#[test]
fn waived_requests_are_listed_and_every_matching_waiver_counts() {
    let ran = run("waivers-listed", &example(), "2026-11-30").expect(0);
    let rows = csv_rows(&ran.read("out/waived.csv"));
    assert_eq!(
        rows,
        [
            vec![
                "request_id",
                "instance_id",
                "account_id",
                "outcome",
                "rule_id",
                "ticket",
                "until"
            ],
            vec![
                "r1",
                "i-bp1demo0renewing",
                "100",
                "eligible",
                "three-months-left",
                "OPS-4821",
                "2027-01-31T00:00:00Z"
            ],
            vec![
                "r2",
                "i-2",
                "1234567890123456",
                "eligible",
                "public-ip",
                "OPS-4790",
                "2026-12-01T00:00:00Z"
            ],
        ]
    );
    let both = "waivers:\n  - { check: three-months-left, account: \"100\", until: 2027-01-31, ticket: T1, justification: j }\n  - { check: three-months-left, instance: i-bp1demo0renewing, until: 2027-01-31, ticket: T2, justification: j }\n";
    let ran = run("waivers-both", both, "2026-11-30").expect(0);
    let summary = ran.read("out/summary.json");
    assert!(!summary.contains("\"state\": \"unused\""), "{summary}");
    let tickets: Vec<(String, String)> = csv_rows(&ran.read("out/waived.csv"))[1..]
        .iter()
        .map(|r| (r[0].clone(), r[5].clone()))
        .collect();
    let pairs: Vec<(&str, &str)> = tickets
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(pairs, [("r1", "T1"), ("r1", "T2"), ("r3", "T1")]);
    let plain = Test::new("waivers-none")
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .args(crate::harness::RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    assert!(!plain.dir.join("out/waived.csv").exists());
    // One an earlier run left is removed by a run without waivers: it would describe
    // exemptions this run's decisions do not have.
    let again = Test::new("waivers-then-none");
    crate::harness::copy_dir(&ran.dir, &again.dir);
    crate::harness::copy_dir(&ran.dir.join("out"), &again.dir.join("out"));
    assert!(again.dir.join("out/waived.csv").exists());
    let again = again
        .args(crate::harness::RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    assert!(!again.dir.join("out/waived.csv").exists());
}
