//! `icp-audit test`: the shipped policy test cases pass and exercise both sides of every rule of
//! both shipped policies; a failing case, a file that does not parse and a coverage gap are
//! reported as documented. `icp-audit schema` is in `policytest/schema.rs`.

mod schema;

use crate::harness::{Ran, Test};
use std::path::{Path, PathBuf};

/// Every file under `policies/tests/`, by absolute path (the cases name their policy relative to
/// their own file, so the folder the binary runs in does not matter).
fn shipped_case_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    files.iter().map(|p| p.display().to_string()).collect()
}

fn last_line(ran: &Ran) -> String {
    ran.stdout().lines().last().unwrap_or_default().to_string()
}

#[test]
fn the_shipped_policy_tests_pass() {
    let ran = Test::new("policytest-shipped")
        .args(["test"])
        .args(shipped_case_files())
        .run()
        .expect(0);
    let total = last_line(&ran);
    assert!(total.ends_with(" passed, 0 failed"), "{total}");
    let passed: usize = total.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 100, "{total}");
    assert!(!ran.stdout().contains("FAIL"), "{}", ran.stdout());
}

#[test]
fn the_shipped_policy_tests_exercise_both_sides_of_every_rule() {
    let ran = Test::new("policytest-coverage")
        .args(["test", "--coverage"])
        .args(shipped_case_files())
        .run()
        .expect(0);
    let out = ran.stdout();
    assert!(!out.contains("not exercised"), "{out}");
    for policy in ["icp-service-code", "icp-service-code-total-period"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("coverage of policy `{policy}` ")))
            .unwrap_or_else(|| panic!("no coverage line for {policy}:\n{out}"));
        assert!(line.contains(" 9 rules, "), "{line}");
        assert!(
            line.ends_with("every rule both refused and passed"),
            "{line}"
        );
    }
    assert!(last_line(&ran).ends_with(" passed, 0 failed"));
}

const ONE_PASS_ONE_FAIL: &str = r#"
as_of: 2026-11-30T00:00:00Z
instance:
  instance_id: i-1
  account_id: "1111"
  region_id: cn-hangzhou
  charge_type: PrePaid
  expired_time: 2027-11-30T00:00:00Z
  internet_max_bandwidth_out: 5
  public_ip: 47.0.0.1
cases:
  - name: eligible
    expect: { outcome: issued }
  - name: wrongly expected
    instance: { internet_max_bandwidth_out: 0, public_ip: "" }
    expect: { outcome: denied, reasons: [public-ip] }
"#;

#[test]
fn a_failing_case_is_named_with_what_was_expected_and_what_came_and_exits_1() {
    let ran = Test::new("policytest-failing")
        .file("cases.yaml", ONE_PASS_ONE_FAIL)
        .args(["test", "cases.yaml"])
        .run()
        .expect(1);
    let out = ran.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ok   eligible");
    assert_eq!(
        lines[1],
        "FAIL wrongly expected: expected denied [public-ip], got denied [internet-bandwidth, public-ip]"
    );
    assert_eq!(*lines.last().unwrap(), "1 passed, 1 failed");
    assert!(
        ran.stderr().contains("1 of 2 cases failed"),
        "{}",
        ran.stderr()
    );
}

/// A case whose inputs the engine refuses (a ledger holding one code twice: an error of two
/// lines) fails in one block: every line after `FAIL` is indented, so that a script reading
/// `ok` and `FAIL` lines sees nothing else.
#[test]
fn an_engine_error_of_several_lines_stays_inside_its_fail_block() {
    let text = format!(
        "{ONE_PASS_ONE_FAIL}  - name: dup ledger code\n    ledger: [ {{ code: A1 }}, {{ code: a1 }} ]\n    expect: {{ outcome: issued }}\n"
    );
    let ran = Test::new("policytest-engine-error")
        .file("cases.yaml", &text)
        .args(["test", "cases.yaml"])
        .run()
        .expect(1);
    let out = ran.stdout();
    let block: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("FAIL dup ledger code"))
        .take_while(|l| !l.contains(" passed, "))
        .collect();
    assert!(
        block[0].contains("got an error:") && block[0].contains("this code already appears"),
        "{out}"
    );
    assert!(block.len() >= 3, "{out}");
    for line in &block[1..] {
        assert!(line.starts_with("     "), "an unindented line in\n{out}");
    }
    assert!(
        block[1..]
            .iter()
            .any(|l| l.contains("the ledger is corrupt")),
        "{out}"
    );
}

/// A column the policy declares is in every case's files, empty where the case leaves it out,
/// as it was before a run began to refuse an inventory without it.
#[test]
fn a_declared_column_a_case_leaves_out_is_empty() {
    let policy = r#"
name: declared
code: { prefix: "", random_symbols: 19, group: 4 }
columns:
  - { field: instance.blocked_reason, type: string }
  - { field: request.channel, type: string }
rules:
  - id: not-blocked
    kind: check
    require: { empty: instance.blocked_reason }
    message: "Blocked: {instance.blocked_reason}"
    remedy: "Ask support."
  - id: known-channel
    kind: check
    require: { any: [{ empty: request.channel }, { field: request.channel, ne: fax }] }
    message: "Channel {request.channel}"
    remedy: "Use the web."
"#;
    let cases = format!(
        "policy: p.yaml\n{}  - name: blocked\n    instance: {{ blocked_reason: fraud }}\n    expect: {{ outcome: denied, reasons: [not-blocked] }}\n  - name: by fax\n    request: {{ channel: fax }}\n    expect: {{ outcome: denied, reasons: [known-channel] }}\n",
        ONE_PASS_ONE_FAIL
            .replace("  - name: wrongly expected\n", "")
            .replace(
                "    instance: { internet_max_bandwidth_out: 0, public_ip: \"\" }\n    expect: { outcome: denied, reasons: [public-ip] }\n",
                ""
            )
    );
    let ran = Test::new("policytest-declared")
        .file("p.yaml", policy)
        .file("cases.yaml", &cases)
        .args(["test", "cases.yaml"])
        .run();
    assert_eq!(ran.code(), 0, "{}\n{}\n{cases}", ran.stdout(), ran.stderr());
    assert_eq!(last_line(&ran), "3 passed, 0 failed");
}

/// A case's ledger rows may spell a column two ways (`domain`, `Domain`; `note`, `Note`), as
/// its instance may: one column of the file, not two headers naming it (which a run refuses).
#[test]
fn ledger_keys_in_two_spellings_are_one_column() {
    let text = format!(
        "{ONE_PASS_ONE_FAIL}  - name: two spellings\n    ledger: [ {{ code: A1, domain: a.example, note: x }}, {{ code: B2, Domain: b.example, Note: y }} ]\n    expect: {{ outcome: issued }}\n"
    );
    let ran = Test::new("policytest-ledger-spellings")
        .file("cases.yaml", &text)
        .args(["test", "cases.yaml"])
        .run()
        .expect(1);
    let out = ran.stdout();
    assert!(out.contains("ok   two spellings"), "{out}");
    assert_eq!(last_line(&ran), "2 passed, 1 failed");
}

/// An unquoted number in a row is written to its CSV cell as it is written in the file (YAML
/// reads `0x1F` as 31 and `1.50` as 1.5): an account `0x1F` is the request's `"0x1F"`, in the
/// base row, a case's row, a list and the ledger alike, also through an alias (`*acct`) of a
/// number or of a whole row; and a bandwidth `1e1` is the text `1e1`, which is no whole number.
#[test]
fn unquoted_numbers_keep_their_spelling() {
    let text = "as_of: 2026-11-30T00:00:00Z
instance: { instance_id: i-1, account_id: 0x1F, region_id: cn-hangzhou, charge_type: PrePaid, expired_time: 2028-01-01, internet_max_bandwidth_out: 5, public_ip: 47.1.1.1 }
cases:
  - name: hex account in the base row
    request: { account_id: \"0x1F\" }
    expect: { outcome: issued }
  - name: float account in the case
    instance: { account_id: 1.50 }
    request: { account_id: \"1.50\" }
    expect: { outcome: issued }
  - name: a lock list of numbers
    instance: { operation_locks: [0x10] }
    request: { account_id: \"0x1F\" }
    expect: { outcome: issued }
  - name: ledger rows held by account 0x1F count
    request: { account_id: \"0x1F\" }
    ledger: [ { account_id: 0x1F, request_id: 0x2A }, { account_id: 0x1F }, { account_id: 0x1F }, { account_id: 0x1F }, { account_id: 0x1F } ]
    expect: { outcome: denied, reasons: [max-codes-per-instance] }
  - name: bandwidth in exponent form
    instance: { internet_max_bandwidth_out: 1e1 }
    request: { account_id: \"0x1F\" }
    expect: { outcome: invalid, reasons: [malformed-instance] }
  - name: an alias of an anchored number
    instance: { account_id: &acct 0x2B }
    request: { account_id: *acct, request_id: &req 0x2A }
    ledger: [ { request_id: *req, account_id: \"0x2B\" } ]
    expect: { outcome: already_issued }
  - name: an alias of an anchored row
    instance: &row { account_id: 0x3C, region_id: cn-hangzhou }
    request: { account_id: \"0x3C\" }
    expect: { outcome: issued }
  - name: the aliased row
    instance: *row
    request: { account_id: \"0x3C\" }
    expect: { outcome: issued }
";
    let ran = Test::new("policytest-spelling")
        .file("cases.yaml", text)
        .args(["test", "cases.yaml"])
        .run();
    assert_eq!(last_line(&ran), "8 passed, 0 failed", "{}", ran.stdout());
    ran.expect(0);
}

#[test]
fn issued_and_eligible_are_one_expectation() {
    let text = ONE_PASS_ONE_FAIL.replace("outcome: issued", "outcome: eligible");
    let ran = Test::new("policytest-eligible")
        .file("cases.yaml", &text)
        .args(["test", "cases.yaml"])
        .run()
        .expect(1);
    assert!(ran.stdout().starts_with("ok   eligible\n"));
}

#[test]
fn a_file_that_does_not_parse_exits_2_with_its_place() {
    let typo = ONE_PASS_ONE_FAIL.replace("expect: { outcome: issued }", "expcet: 1");
    let ran = Test::new("policytest-unparsable")
        .file("typo.yaml", &typo)
        .args(["test", "typo.yaml"])
        .run()
        .expect(2);
    let err = ran.stderr();
    assert!(err.contains("typo.yaml:13:5: "), "{err}");
    assert!(err.contains("unknown field `expcet`"), "{err}");
    assert_eq!(ran.stdout(), "", "nothing runs when a file does not parse");

    let bad_time = ONE_PASS_ONE_FAIL.replace("2026-11-30T00:00:00Z", "2026-11-31");
    let ran = Test::new("policytest-bad-time")
        .file("t.yaml", &bad_time)
        .args(["test", "t.yaml"])
        .run()
        .expect(2);
    assert!(ran.stderr().contains("t.yaml:2:1: "), "{}", ran.stderr());
    assert!(ran.stderr().contains("`2026-11-31` is not a time"));

    // A key given twice is placed where it is repeated.
    let twice = ONE_PASS_ONE_FAIL.replace(
        "  region_id: cn-hangzhou\n",
        "  region_id: cn-hangzhou\n  region_id: cn-beijing\n",
    );
    let ran = Test::new("policytest-repeated-key")
        .file("t.yaml", &twice)
        .args(["test", "t.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("t.yaml:7:3: `instance.region_id` is given twice (first at 6:3)"),
        "{}",
        ran.stderr()
    );
}

#[test]
fn a_case_that_makes_no_sense_or_a_broken_policy_exits_2() {
    let both = ONE_PASS_ONE_FAIL.replace(
        "expect: { outcome: issued }",
        "codes_held: 1\n    ledger: []\n    expect: { outcome: issued }",
    );
    let ran = Test::new("policytest-both")
        .file("both.yaml", &both)
        .args(["test", "both.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("both.yaml: case `eligible`: give `ledger` or `codes_held`, not both"),
        "{}",
        ran.stderr()
    );
    let missing = format!("policy: nowhere.yaml\n{ONE_PASS_ONE_FAIL}");
    let ran = Test::new("policytest-no-policy")
        .file("p.yaml", &missing)
        .args(["test", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("nowhere.yaml: cannot read the policy")
    );
    // One mapping naming one column twice, in any of its spellings: which cell the case meant
    // cannot be told (a run refuses such a header).
    for (name, mapping, said) in [
        (
            "instance",
            "instance: { public_ip: 1.2.3.4, PublicIpAddress: 1.2.3.5 }",
            "`instance`: `public_ip` and `PublicIpAddress` name one column",
        ),
        (
            "request",
            "request: { account_id: \"1111\", OwnerId: \"1111\" }",
            "`request`: `account_id` and `OwnerId` name one column",
        ),
        (
            "ledger",
            "ledger: [ { code: A1, instance_id: i-2, InstanceId: i-1 } ]",
            "`ledger`: `instance_id` and `InstanceId` name one column",
        ),
        (
            // Trimmed as a header cell is, a key with a no-break space after it is the same.
            "trimmed",
            "instance: { public_ip: 1.2.3.4, \"PublicIpAddress\\u00a0\": \"\" }",
            "`instance`: `public_ip` and `PublicIpAddress\u{a0}` name one column",
        ),
    ] {
        let text = ONE_PASS_ONE_FAIL.replace(
            "    expect: { outcome: issued }",
            &format!("    {mapping}\n    expect: {{ outcome: issued }}"),
        );
        let ran = Test::new(&format!("policytest-twice-{name}"))
            .file("c.yaml", &text)
            .args(["test", "c.yaml"])
            .run()
            .expect(2);
        assert!(
            ran.stderr()
                .contains(&format!("c.yaml: case `eligible`: {said}")),
            "{}",
            ran.stderr()
        );
    }
    // The file's base row is checked once, as the file's, even when no case uses it.
    let text = ONE_PASS_ONE_FAIL
        .replace(
            "  instance_id: i-1\n",
            "  instance_id: i-1\n  InstanceId: i-2\n",
        )
        .replace(
            "    expect: { outcome: issued }",
            "    instance: null\n    expect: { outcome: denied, reasons: [instance-exists] }",
        );
    let ran = Test::new("policytest-twice-base")
        .file("c.yaml", &text)
        .args(["test", "c.yaml"])
        .run()
        .expect(2);
    assert_eq!(
        ran.stderr().trim_end(),
        "icp-audit: c.yaml: the file's `instance`: `instance_id` and `InstanceId` name one column",
        "{text}"
    );
    // Keys that name no column (what an export's empty header cells are) are not twins.
    let text = ONE_PASS_ONE_FAIL.replace(
        "    expect: { outcome: issued }",
        "    instance: { \"\": a, \" \": b, \"_\": c }\n    expect: { outcome: issued }",
    );
    let ran = Test::new("policytest-unnamed-keys")
        .file("c.yaml", &text)
        .args(["test", "c.yaml"])
        .run()
        .expect(1);
    assert!(
        ran.stdout().starts_with("ok   eligible\n"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn coverage_names_every_side_no_case_exercised_and_exits_1() {
    let only_eligible = ONE_PASS_ONE_FAIL.split("  - name: wrongly").next().unwrap();
    let ran = Test::new("policytest-gaps")
        .file("one.yaml", only_eligible)
        .args(["test", "--coverage", "one.yaml"])
        .run()
        .expect(1);
    let out = ran.stdout();
    // One eligible request passes every rule and refuses none.
    assert!(
        out.contains("9 rules, 1 case: 9 sides not exercised:"),
        "{out}"
    );
    assert!(out.contains("  not exercised: instance-exists: refusing side\n"));
    assert!(out.contains("  not exercised: max-codes-per-instance: refusing side\n"));
    assert!(!out.contains("passing side"), "{out}");
    assert!(out.ends_with("1 passed, 0 failed\n"));
    assert!(ran.stderr().contains("9 sides of rules were not exercised"));
    // A case the engine refuses (a ledger with one code twice) ran under the policy too: it
    // is counted, and exercises no rule.
    let refused = format!(
        "{only_eligible}  - name: corrupt ledger\n    ledger: [{{ code: X }}, {{ code: X }}]\n    expect: {{ outcome: issued }}\n"
    );
    let ran = Test::new("policytest-gaps-refused")
        .file("one.yaml", &refused)
        .args(["test", "--coverage", "one.yaml"])
        .run()
        .expect(1);
    assert!(
        ran.stdout()
            .contains("9 rules, 2 cases: 9 sides not exercised:"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn a_refusing_gate_shows_nothing_about_the_gates_after_it() {
    let text = r#"
as_of: 2026-11-30
cases:
  - name: missing
    instance: null
    expect: { outcome: denied, reasons: [instance-exists] }
"#;
    let ran = Test::new("policytest-gate-order")
        .file("gate.yaml", text)
        .args(["test", "--coverage", "gate.yaml"])
        .run()
        .expect(1);
    let out = ran.stdout();
    assert!(!out.contains("instance-exists: refusing side"), "{out}");
    assert!(out.contains("instance-exists: passing side"), "{out}");
    assert!(out.contains("owner-account: passing side"), "{out}");
    assert!(out.contains("public-ip: passing side"), "{out}");
}
