//! The policy is data: `check-policy` reports every problem with its place, and editing the
//! YAML changes decisions without recompiling.

use crate::harness::{INSTANCES_HEADER, REQUESTS_HEADER, RUN, Test, csv_rows};
use std::path::Path;

fn default_policy() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/icp-service-code.yaml"),
    )
    .unwrap()
}

#[test]
fn check_policy_accepts_the_shipped_policies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let ran = Test::new("check-ok")
                .args(["check-policy", p.to_str().unwrap()])
                .run()
                .expect(0);
            assert!(ran.stdout().contains("ok"));
        }
    }
}

/// A policy, a waivers file and a test file that an editor saved with a byte-order mark are
/// read as without it; the summary's policy digest is still the file's bytes'.
#[test]
fn files_with_a_byte_order_mark_are_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = format!("\u{feff}{}", default_policy());
    let waivers = std::fs::read_to_string(root.join("fixtures/waivers/example.yaml")).unwrap();
    let test_file = "\u{feff}as_of: 2026-11-30T00:00:00Z\ncases:\n  - name: no instance\n    instance: null\n    expect: { outcome: denied, reasons: [instance-exists] }\n";
    let demo = root.join("fixtures/demo");
    let ran = Test::new("bom-files")
        .file("p.yaml", &policy)
        .file("w.yaml", &format!("\u{feff}{waivers}"))
        .file("t.yaml", test_file)
        .args([
            "run",
            "--input",
            demo.to_str().unwrap(),
            "--policy",
            "p.yaml",
        ])
        .args(["--waivers", "w.yaml", "--out", "out", "--dry-run"])
        .args(["--as-of", "2026-11-30T00:00:00Z"])
        .run()
        .expect(0);
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(policy.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let summary = ran.read("out/summary.json");
    assert!(summary.contains(&digest), "{summary}");
    assert!(ran.dir.join("out/waived.csv").exists());
    let tested = Test::new("bom-files-test")
        .file("t.yaml", test_file)
        .args(["test", "t.yaml"])
        .run();
    assert!(
        tested.stdout().contains("1 passed, 0 failed"),
        "{}{}",
        tested.stdout(),
        tested.stderr()
    );
}

/// A value that is not the whole number expected is told with the range a whole number must
/// be in, in a policy and in a test file, not with the Rust type serde wanted (`expected u32`).
#[test]
fn a_wrong_number_is_told_with_its_range_not_a_rust_type() {
    let policy = default_policy().replacen("max: 5,", "max: -1,", 1);
    assert!(policy.contains("max: -1,"));
    let ran = Test::new("number-range")
        .file("p.yaml", &policy)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    let err = ran.stderr();
    assert!(
        err.contains("quota.max: `-1` is not a whole number from 0 to 4294967295"),
        "{err}"
    );
    let test_file = "as_of: 2026-11-30T00:00:00Z\ncases:\n  - name: held\n    instance: null\n    codes_held: -1\n    expect: { outcome: denied, reasons: [instance-exists] }\n";
    let tested = Test::new("number-range-test")
        .file("t.yaml", test_file)
        .args(["test", "t.yaml"])
        .run()
        .expect(2);
    let test_err = tested.stderr();
    assert!(
        test_err.contains("codes_held: `-1` is not a whole number from 0 to 4294967295"),
        "{test_err}"
    );
    for err in [err, test_err] {
        for rust in ["u32", "u64", "usize", "invalid type"] {
            assert!(!err.contains(rust), "{rust} in:\n{err}");
        }
    }
}

/// A policy, a waivers file and a test file that start with two byte-order marks are refused
/// (exit 2) as such, at 1:1: serde took the second for part of the first key, and its message
/// was about a missing field.
#[test]
fn a_file_with_two_byte_order_marks_is_refused_as_such() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let twice = |text: &str| format!("\u{feff}\u{feff}{text}");
    let waivers = std::fs::read_to_string(root.join("fixtures/waivers/example.yaml")).unwrap();
    let test_file = "as_of: 2026-11-30T00:00:00Z\ncases:\n  - name: no instance\n    instance: null\n    expect: { outcome: denied, reasons: [instance-exists] }\n";
    let demo = root.join("fixtures/demo");
    let said = ": the file starts with two byte-order marks (U+FEFF)";
    let policy = Test::new("bom2-policy")
        .file("p.yaml", &twice(&default_policy()))
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        policy.stderr().contains(&format!("p.yaml:1:1{said}")),
        "{}",
        policy.stderr()
    );
    let waived = Test::new("bom2-waivers")
        .file("w.yaml", &twice(&waivers))
        .args([
            "run",
            "--input",
            demo.to_str().unwrap(),
            "--waivers",
            "w.yaml",
        ])
        .args([
            "--out",
            "out",
            "--dry-run",
            "--as-of",
            "2026-11-30T00:00:00Z",
        ])
        .run()
        .expect(2);
    assert!(
        waived.stderr().contains(&format!("w.yaml:1:1{said}")),
        "{}",
        waived.stderr()
    );
    let tested = Test::new("bom2-test")
        .file("t.yaml", &twice(test_file))
        .args(["test", "t.yaml"])
        .run()
        .expect(2);
    assert!(
        tested.stderr().contains(&format!("t.yaml:1:1{said}")),
        "{}",
        tested.stderr()
    );
}

/// Nesting is bounded where the YAML reader bounds it (128 levels), and a deeper policy is told
/// so at its place, where the reader would say only "recursion limit exceeded".
#[test]
fn a_policy_nested_past_128_levels_is_told_so() {
    // With 124 `not`s the document's collections nest 128 deep, the reader's bound; 125 go past.
    let policy = |nots: usize| {
        format!(
            "name: x\ncode: {{ prefix: \"\", random_symbols: 19, group: 4 }}\nrules:\n  - id: a\n    kind: check\n    require: {}{{ exists: instance.instance_id }}{}\n    message: m\n    remedy: r\n",
            "{ not: ".repeat(nots),
            " }".repeat(nots)
        )
    };
    Test::new("nested-128")
        .file("p.yaml", &policy(124))
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(0);
    let deeper = Test::new("nested-129")
        .file("p.yaml", &policy(125))
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        deeper
            .stderr()
            .contains("p.yaml:6:889: collections are nested here deeper than 128 levels"),
        "{}",
        deeper.stderr()
    );
}

/// A policy serde reads but the locator cannot read exactly is refused (exit 2) at its place,
/// rather than compiled with its numbers as YAML read them and its problems at 1:1: a tab after
/// a colon, and an anchor name given twice (which serde_yaml resolves to another node); so are
/// a test file and a waivers file with an anchor given twice.
#[test]
fn a_document_that_cannot_be_read_exactly_is_refused() {
    let tab = default_policy().replacen("name: icp-service-code", "name:\ticp-service-code", 1);
    let line = 1 + tab.lines().position(|l| l.starts_with("name:")).unwrap();
    let ran = Test::new("tab-after-colon")
        .file("p.yaml", &tab)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr().contains(&format!("p.yaml:{line}:"))
            && ran.stderr().contains("(a tab after a colon, or"),
        "{}",
        ran.stderr()
    );
    let anchors = "as_of: 2026-11-30T00:00:00Z\ncases:\n  - name: a\n    note: &a \"first\"\n    instance: null\n    request: { account_id: &a \"2\" }\n    expect: { outcome: denied, reasons: [instance-exists] }\n";
    let ran = Test::new("anchor-twice-test")
        .file("t.yaml", &anchors.replace("&a \"first\"", "&b \"first\""))
        .args(["test", "t.yaml"])
        .run();
    assert!(
        ran.stdout().contains("1 passed"),
        "{}{}",
        ran.stdout(),
        ran.stderr()
    );
    let ran = Test::new("anchor-twice-test-refused")
        .file("u.yaml", anchors)
        .args(["test", "u.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("u.yaml:6:28: the anchor `&a` is given again (first at 4:11)"),
        "{}",
        ran.stderr()
    );
    // Aliases that stand for too many values are refused before anything is expanded.
    let list = vec!["x"; 2000].join(", ");
    let aliases = vec!["*s"; 600].join(", ");
    let wide = format!(
        "{}extra: &s [{list}]\nmore: [{aliases}]\n",
        default_policy()
    );
    let ran = Test::new("aliases-too-many")
        .file("p.yaml", &wide)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("make the document stand for more than 1000000 values"),
        "{}",
        ran.stderr()
    );
    let policy = default_policy().replacen("sets:\n", "sets:\n  one: &a [x]\n  two: &a [y]\n", 1);
    let ran = Test::new("anchor-twice-policy")
        .file("p.yaml", &policy)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr().contains("the anchor `&a` is given again"),
        "{}",
        ran.stderr()
    );
}

/// Each broken policy fails with exit 2 and `file:line:column: message` naming the fault.
#[test]
fn check_policy_lists_every_problem_with_its_place() {
    let good = default_policy();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "syntax",
            "rules: [\n  - id: x\n".to_string(),
            vec!["p.yaml:"],
        ),
        (
            "unknown-key",
            good.replace("when_fails: not_required", "when_fail: not_required"),
            vec!["unknown field `when_fail`"],
        ),
        (
            "unknown-column",
            good.replace("instance.region_id, in", "instance.regoin_id, in"),
            vec!["p.yaml:59:", "unknown column `instance.regoin_id`"],
        ),
        (
            "unknown-operator",
            good.replace("eq: PrePaid", "equals: PrePaid"),
            vec!["unknown field `equals`"],
        ),
        (
            "type-mismatch",
            good.replace("gt: { field: as_of }", "gt: 5"),
            vec!["type mismatch", "`instance.expired_time` is a time"],
        ),
        (
            "duplicate-id-and-placeholder",
            good.replace("id: public-ip", "id: internet-bandwidth")
                .replace("{quota.max}\"", "{quota.maximum}\""),
            vec![
                "duplicate rule id `internet-bandwidth`",
                "unknown placeholder `{quota.maximum}`",
            ],
        ),
        (
            // A rule id is a cell of the reports: one starting with `-` would be a formula.
            "rule-id-starting-with-a-hyphen",
            good.replace("id: public-ip", "id: -2-1"),
            vec!["rule id `-2-1` must be lower-case letters, digits and `-`, starting with a letter or a digit"],
        ),
        (
            // Placed at the repeat (line 61), not at its rule (line 55) as serde places it.
            "repeated-key",
            good.replace(
                "    message: \"Region",
                "    message: \"first\"\n    message: \"Region",
            ),
            vec!["p.yaml:61:5: `rules[2].message` is given twice (first at 60:5)"],
        ),
        (
            // A whole number, past the range: the message gives the range.
            "months-out-of-range",
            good.replace("plus_months: 3 }", "plus_months: 99999 }"),
            vec!["`plus_months` is a whole number of months from -12000 to 12000"],
        ),
        (
            // Quoted, it is text: named as the key it is, not as an unknown one.
            "months-as-text",
            good.replace("plus_months: 3 }", "plus_months: \"3\" }"),
            vec!["`plus_months` is a whole number of months from -12000 to 12000"],
        ),
        (
            // The most negative number: its absolute value does not fit, and it is refused.
            "months-most-negative",
            good.replace("plus_months: 3 }", "plus_months: -9223372036854775808 }"),
            vec!["`plus_months` is a whole number of months from -12000 to 12000"],
        ),
        (
            "field-not-text",
            good.replace(
                "{ field: as_of, plus_months: 3 }",
                "{ field: 3, plus_months: 3 }",
            ),
            vec!["`field` names a field, such as `as_of` or `instance.expired_time`"],
        ),
        (
            // Header cells are matched ignoring `_`: `_` would name every empty header cell.
            "column-of-no-name",
            good.replacen(
                "\nrules:",
                "\ncolumns:\n  - { field: instance._, type: string }\nrules:",
                1,
            ),
            vec!["`instance._`: a declared column's name needs a letter or a digit"],
        ),
        (
            // Signs only: a column no header cell an export writes would hold.
            "column-of-signs",
            good.replacen(
                "\nrules:",
                "\ncolumns:\n  - { field: \"instance.!\", type: string }\nrules:",
                1,
            ),
            vec!["`instance.!`: a declared column's name needs a letter or a digit"],
        ),
        (
            // One extra column declared twice with two types: named as the earlier declaration,
            // not as a built-in column.
            "declared-twice",
            good.replacen(
                "\nrules:",
                "\ncolumns:\n  - { field: instance.tier, type: string }\n  - { field: instance.Tier, type: integer }\nrules:",
                1,
            ),
            vec!["`instance.Tier` is declared above as a string column"],
        ),
        (
            "too-few-bits",
            good.replace("random_symbols: 19", "random_symbols: 17"),
            vec!["at least 90 random bits"],
        ),
    ];
    for (name, text, needles) in cases {
        let ran = Test::new(&format!("check-{name}"))
            .file("p.yaml", &text)
            .args(["check-policy", "p.yaml"])
            .run()
            .expect(2);
        let err = ran.stderr();
        for n in needles {
            assert!(err.contains(n), "{name}: `{n}` not in:\n{err}");
        }
        for line in err.lines() {
            let rest = line
                .strip_prefix("icp-audit: p.yaml:")
                .unwrap_or_else(|| panic!("{name}: {line}"));
            let mut parts = rest.splitn(3, ':');
            let line_no: usize = parts.next().unwrap().parse().unwrap();
            let col: usize = parts.next().unwrap().parse().unwrap();
            assert!(line_no >= 1 && col >= 1, "{name}: {line}");
        }
    }
}

#[test]
fn check_policy_reports_several_problems_at_once() {
    let text = default_policy()
        .replace("instance.region_id, in", "instance.nope, in")
        .replace("eq: PrePaid", "eq: 5")
        .replace(
            "{instance.internet_max_bandwidth_out}",
            "{instance.bandwidth}",
        );
    let ran = Test::new("check-many")
        .file("p.yaml", &text)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    // Three problems: the unknown column, a charge type that no cell can hold (`5`: YAML
    // numbers are read as text for strings, and the charge type's words are known), and the
    // unknown placeholder.
    assert_eq!(ran.stderr().lines().count(), 3, "{}", ran.stderr());
    assert!(
        ran.stderr()
            .contains("`instance.charge_type` can never hold this value: unknown charge type `5`"),
        "{}",
        ran.stderr()
    );
}

const INSTANCES: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip,eip_address,tier\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4,,gold\n\
i-2,100,us-west-1,PrePaid,2028-01-01,5,1.2.3.5,,bronze\n\
i-3,100,cn-beijing,PrePaid,2028-01-01,0,,,gold\n";

fn requests() -> String {
    let mut s = String::from("request_id,account_id,instance_id,requested_at\n");
    for i in 0..5 {
        s.push_str(&format!("a{i},100,i-1,2026-11-29T10:0{i}Z\n"));
    }
    s.push_str("b1,100,i-2,2026-11-29\nc1,100,i-3,2026-11-29\n");
    s
}

fn outcomes(name: &str, policy: &str) -> Vec<(String, String)> {
    let ran = Test::new(name)
        .file("instances.csv", INSTANCES)
        .file("requests.csv", &requests())
        .file("p.yaml", policy)
        .args(RUN)
        .args(["--policy", "p.yaml", "--dry-run"])
        .run()
        .expect(0);
    csv_rows(&ran.read("out/decisions.csv"))[1..]
        .iter()
        .map(|r| (r[3].clone(), r[5].clone()))
        .collect()
}

#[test]
fn editing_the_yaml_changes_decisions_without_recompiling() {
    let good = default_policy();
    let base = outcomes("data-base", &good);
    assert_eq!(base[0].0, "eligible");
    assert_eq!(base[4].0, "eligible");
    assert_eq!(base[5], ("not_required".into(), "mainland-region".into()));
    assert_eq!(
        base[6],
        ("denied".into(), "internet-bandwidth;public-ip".into())
    );

    // Quota 5 → 3: the fourth and fifth requests for i-1 are refused.
    let q3 = outcomes("data-quota", &good.replace("max: 5", "max: 3"));
    assert_eq!(q3[2].0, "eligible");
    assert_eq!(q3[3], ("denied".into(), "max-codes-per-instance".into()));
    assert_eq!(q3[4], ("denied".into(), "max-codes-per-instance".into()));

    // A region added to the set: the us-west-1 instance now needs a code.
    let region = outcomes(
        "data-region",
        &good.replace("    - cn-qingdao\n", "    - cn-qingdao\n    - us-west-1\n"),
    );
    assert_eq!(region[5].0, "eligible");

    // The public-ip check removed: only the bandwidth check refuses i-3.
    let start = good.find("  - id: public-ip").unwrap();
    let end = good.find("  - id: max-codes-per-instance").unwrap();
    let removed = format!("{}{}", &good[..start], &good[end..]);
    let fewer = outcomes("data-removed", &removed);
    assert_eq!(fewer[6], ("denied".into(), "internet-bandwidth".into()));

    // A new check on an extra inventory column.
    let extra = good.replace("rules:\n", "columns:\n  - { field: instance.tier, type: string }\n\nrules:\n")
        .replace(
            "  - id: max-codes-per-instance",
            "  - id: gold-tier\n    kind: check\n    require: { field: instance.tier, eq: gold }\n    message: \"tier is {instance.tier}\"\n    remedy: \"upgrade\"\n\n  - id: max-codes-per-instance",
        );
    let tiered = outcomes("data-extra", &extra);
    assert_eq!(tiered[0].0, "eligible");
    let region_and_tier = outcomes(
        "data-extra-region",
        &extra.replace("    - cn-qingdao\n", "    - cn-qingdao\n    - us-west-1\n"),
    );
    assert_eq!(region_and_tier[5], ("denied".into(), "gold-tier".into()));
}

/// serde stops at the first unknown key; the loader lists every one, each with its place.
#[test]
fn check_policy_lists_every_unknown_key() {
    let text = default_policy()
        .replace("when_fails: not_required", "when_fail: not_required")
        .replace("eq: PrePaid", "equals: PrePaid")
        .replace(
            "name: icp-service-code\n",
            "name: icp-service-code\nowner: me\n",
        );
    let ran = Test::new("check-unknown-keys")
        .file("p.yaml", &text)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    let err = ran.stderr();
    assert_eq!(err.lines().count(), 3, "{err}");
    for key in ["`owner`", "`when_fail`", "`equals`"] {
        assert!(
            err.contains(&format!("unknown field {key}")),
            "{key}: {err}"
        );
    }
    assert!(
        err.lines().all(|l| l.starts_with("icp-audit: p.yaml:")),
        "{err}"
    );
    // Each placed at the key itself, also where its value starts on the next line (a folded
    // `description:`, a block `sets:`), as the one unknown key of a policy is.
    let text = default_policy()
        .replace("\ndescription:", "\ndescrption:")
        .replace("\nsets:", "\nsetz:");
    let line_of = |key: &str| 1 + text.lines().position(|l| l.starts_with(key)).unwrap();
    let (described, sets) = (line_of("descrption:"), line_of("setz:"));
    assert_eq!(
        text.lines().nth(sets - 1),
        Some("setz:"),
        "its value is below it"
    );
    let ran = Test::new("check-unknown-keys-placed")
        .file("p.yaml", &text)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    let err = ran.stderr();
    for (line, key) in [(described, "descrption"), (sets, "setz")] {
        let want = format!("icp-audit: p.yaml:{line}:1: unknown field `{key}`");
        assert!(err.contains(&want), "{want} in:\n{err}");
    }
    // Every wrong rule kind and outcome is listed with them, and a value of the wrong type
    // too, each at its value, in the order of the file.
    let text = default_policy()
        .replace("kind: gate", "kind: gaet")
        .replace("when_fails: not_required", "when_fails: not_requird")
        .replace("\nsets:", "\nsetz:")
        .replace("random_symbols: 19", "random_symbols: many");
    let ran = Test::new("check-unknown-words")
        .file("p.yaml", &text)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    let err = ran.stderr();
    let gates = text.matches("kind: gaet").count();
    assert!(gates >= 2, "the default policy has several gates");
    let said: Vec<&str> = err
        .lines()
        .map(|l| l.splitn(4, ':').nth(3).unwrap().trim())
        .collect();
    let wrong_kind = said
        .iter()
        .filter(|l| l.contains("unknown variant `gaet`"))
        .count();
    assert_eq!(wrong_kind, gates, "{err}");
    for problem in [
        "unknown variant `not_requird`",
        "unknown field `setz`",
        "`many` is not a whole number",
    ] {
        assert!(
            said.iter().any(|l| l.contains(problem)),
            "{problem} in:\n{err}"
        );
    }
    assert_eq!(said.len(), gates + 3, "{err}");
    let places: Vec<(usize, usize)> = err
        .lines()
        .map(|l| {
            let mut at = l.split(':').skip(2).map(|n| n.parse::<usize>().unwrap());
            (at.next().unwrap(), at.next().unwrap())
        })
        .collect();
    assert!(places.is_sorted(), "{err}");
    // One problem is said once, though serde places it at its anchor (or tag) and the listing
    // at its word.
    for marked in ["kind: &k gaet", "kind: !!str gaet"] {
        let text = default_policy().replacen("kind: gate", marked, 1);
        let ran = Test::new("check-anchored-word")
            .file("p.yaml", &text)
            .args(["check-policy", "p.yaml"])
            .run()
            .expect(2);
        assert_eq!(
            ran.stderr().lines().count(),
            1,
            "{marked}: {}",
            ran.stderr()
        );
    }
    let first_gate = 1 + text.lines().position(|l| l.trim() == "kind: gaet").unwrap();
    let column = 1 + text
        .lines()
        .nth(first_gate - 1)
        .unwrap()
        .find("gaet")
        .unwrap();
    assert!(
        places.contains(&(first_gate, column)),
        "at the value: {err}"
    );
}

/// A check whose condition reads a value the row does not have refuses, and its message says
/// which value; a check that is plainly false says nothing of the kind. Both for a rule decided
/// once per inventory row and for one that also reads the request, each the only unknown one of
/// its request.
#[test]
fn an_unknown_condition_names_the_missing_value_in_its_message() {
    let extra = "  - id: created-before-as-of
    description: test
    kind: check
    require: { field: instance.creation_time, lt: { field: as_of } }
    message: \"Instance created {instance.creation_time}\"
    remedy: \"Wait.\"

  - id: eip-named-after-account
    description: test
    kind: check
    require: { field: instance.eip_address, eq: { field: request.account_id } }
    message: \"EIP {instance.eip_address}\"
    remedy: \"Rename.\"

  - id: max-codes-per-instance";
    let policy = default_policy().replace("  - id: max-codes-per-instance", extra);
    let ran = Test::new("policy-unknown-values")
        .file("p.yaml", &policy)
        .file(
            "instances.csv",
            "instance_id,account_id,region_id,charge_type,creation_time,expired_time,internet_max_bandwidth_out,public_ip,eip_address\n\
             i-no-creation,100,cn-beijing,PrePaid,,2028-01-01T00:00Z,5,1.2.3.4,10.0.0.200\n\
             i-no-eip,100,cn-beijing,PrePaid,2025-01-01T00:00Z,2028-01-01T00:00Z,5,1.2.3.5,\n\
             i-both-false,100,cn-beijing,PrePaid,2026-12-31T00:00Z,2028-01-01T00:00Z,5,1.2.3.6,10.0.0.300\n",
        )
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\n\
             r1,100,i-no-creation,2026-11-29T00:00Z\n\
             r2,100,i-no-eip,2026-11-29T00:00Z\n\
             r3,100,i-both-false,2026-11-29T00:00Z\n",
        )
        .args(["run", "--input", ".", "--out", "out", "--policy", "p.yaml"])
        .args(["--as-of", "2026-11-30T00:00:00Z", "--dry-run"])
        .run()
        .expect(0);
    let denials = csv_rows(&ran.read("out/denials.csv"));
    let message = |request: &str, rule: &str| -> String {
        let row = denials.iter().find(|r| r[0] == request && r[4] == rule);
        row.unwrap_or_else(|| panic!("{request} {rule}: {denials:?}"))[5].clone()
    };
    let unknown = |field: &str| format!(" (cannot be checked: `{field}` has no value)");
    assert_eq!(
        message("r1", "created-before-as-of"),
        format!(
            "Instance created (none){}",
            unknown("instance.creation_time")
        )
    );
    assert_eq!(message("r1", "eip-named-after-account"), "EIP 10.0.0.200");
    assert_eq!(
        message("r2", "eip-named-after-account"),
        format!("EIP (none){}", unknown("instance.eip_address"))
    );
    assert!(
        denials
            .iter()
            .all(|r| !(r[0] == "r2" && r[4] == "created-before-as-of"))
    );
    assert_eq!(
        message("r3", "created-before-as-of"),
        "Instance created 2026-12-31T00:00:00Z"
    );
    assert_eq!(message("r3", "eip-named-after-account"), "EIP 10.0.0.300");
}

/// A message template's own words may need quoting, or may start like a formula: with plain
/// input files (no quote anywhere, the case the writer copies without checking), the message
/// is still quoted and neutralised as the words require, and reads back as rendered.
#[test]
fn messages_whose_words_need_quotes_are_quoted_with_plain_inputs() {
    let policy = default_policy()
        .replace(
            "message: \"Instance is billed {instance.charge_type}; only Subscription instances qualify\"",
            "message: 'Billed \"{instance.charge_type}\", not Subscription'",
        )
        .replace(
            "message: \"Instance has {instance.internet_max_bandwidth_out} Mbit/s outbound bandwidth and no EIP\"",
            "message: \"+{instance.internet_max_bandwidth_out} Mbit/s\"",
        );
    assert!(policy.contains("Billed") && policy.contains("+{instance"));
    let ran = Test::new("message-words-quoted")
        .file(
            "instances.csv",
            "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
             i-1,100,cn-hangzhou,PostPaid,2027-09-30T16:00Z,0,47.96.61.1\n",
        )
        .file("requests.csv", "request_id,account_id,instance_id,requested_at\nr-1,100,i-1,2026-11-29\n")
        .file("p.yaml", &policy)
        .args(RUN)
        .args(["--policy", "p.yaml", "--dry-run"])
        .run()
        .expect(0);
    let denials = ran.read("out/denials.csv");
    assert!(
        denials.contains(",\"Billed \"\"PostPaid\"\", not Subscription\","),
        "{denials}"
    );
    let messages: Vec<(String, String)> = csv_rows(&denials)[1..]
        .iter()
        .map(|r| (r[4].clone(), r[5].clone()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "subscription-billing".into(),
                "Billed \"PostPaid\", not Subscription".into()
            ),
            ("internet-bandwidth".into(), "'+0 Mbit/s".into()),
        ]
    );
}

/// A policy whose only rule is broken gets that rule's problem, not also "no rule"; a policy
/// with no rule gets that one.
#[test]
fn a_broken_only_rule_is_not_also_a_missing_rule() {
    let good = default_policy();
    let head = &good[..=good.find("\nrules:").unwrap()];
    let one_rule = format!(
        "{head}rules:\n  - id: instance-exists\n    description: d\n    kind: gate\n    \
         when_fails: denied\n    require: {{ exists: instance.instance_id }}\n    \
         message: \"m {{instance.bogus}}\"\n    remedy: r\n"
    );
    let ran = Test::new("only-rule-broken")
        .file("p.yaml", &one_rule)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    let said = ran.stderr();
    assert!(said.contains("bogus"), "{said}");
    assert!(!said.contains("at least one rule"), "{said}");
    let ran = Test::new("no-rule")
        .file("p.yaml", &format!("{head}rules: []\n"))
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr().contains("a policy needs at least one rule"),
        "{}",
        ran.stderr()
    );
}

/// A policy's words for the charge type, the status and the region are compared in the form
/// the inventory keeps them in (`PayAsYouGo` is `PostPaid`, `stopped` is `Stopped`,
/// `CN-HongKong` is `cn-hongkong`), so `ne` and `not_in` cannot let every instance through
/// because of a spelling; a word no cell can hold is a load error. A `contains` on a list
/// column of the policy's own refuses on an empty cell (unknown), where `operation_locks`'s
/// empty cell is an empty list (SPEC §2).
#[test]
fn policy_words_are_compared_as_the_inventory_keeps_them() {
    let instances = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip,status,flags\n\
i-1,100,CN-HongKong,PayAsYouGo,2028-01-01,5,1.2.3.4,stopped,\n\
i-2,100,cn-hangzhou,Subscription,2028-01-01,5,1.2.3.5,Running,vip\n";
    let requests = "request_id,account_id,instance_id,requested_at\nr1,100,i-1,2026-11-29\nr2,100,i-2,2026-11-29\n";
    let rule = |id: &str, require: &str| {
        format!(
            "  - id: {id}\n    kind: check\n    require: {require}\n    message: \"{id}\"\n    remedy: \"fix\"\n"
        )
    };
    let policy = format!(
        "name: words\ncolumns:\n  - {{ field: instance.flags, type: list }}\ncode:\n  random_symbols: 19\n  group: 4\nrules:\n{}{}{}{}{}",
        rule("prepaid", "{ field: instance.charge_type, ne: payasyougo }"),
        rule(
            "not-postpaid",
            "{ field: instance.charge_type, not_in: [postpaid, PayAsYouGo] }"
        ),
        rule(
            "not-hk",
            "{ field: instance.region_id, not_in: [CN-HongKong] }"
        ),
        rule("running", "{ field: instance.status, ne: stopped }"),
        rule(
            "not-sanctioned",
            "{ not: { field: instance.flags, contains: sanctioned } }"
        ),
    ) + &rule(
        "not-stopping",
        "{ not: { field: instance.status, matches: \"stop*\" } }",
    ) + &rule(
        "not-payg",
        "{ not: { field: instance.charge_type, matches: PayAsYouGo } }",
    );
    let ran = Test::new("policy-words")
        .file("instances.csv", instances)
        .file("requests.csv", requests)
        .file("p.yaml", &policy)
        .args(RUN)
        .args(["--policy", "p.yaml", "--dry-run"])
        .run()
        .expect(0);
    let rows = csv_rows(&ran.read("out/decisions.csv"));
    assert_eq!(
        (rows[1][3].as_str(), rows[1][5].as_str()),
        (
            "denied",
            "prepaid;not-postpaid;not-hk;running;not-sanctioned;not-stopping;not-payg"
        ),
        "{rows:?}"
    );
    assert_eq!((rows[2][3].as_str(), rows[2][5].as_str()), ("eligible", ""));
    // A word the column never holds is refused at load, with its place.
    let never = policy.replace("stop*", "halt*");
    assert_ne!(never, policy);
    let refused = Test::new("policy-words-never")
        .file("p.yaml", &never)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        refused
            .stderr()
            .contains("`instance.status` can never hold a value that `halt*` matches"),
        "{}",
        refused.stderr()
    );
    let broken = policy.replace("ne: stopped", "ne: Halted");
    let refused = Test::new("policy-words-broken")
        .file("p.yaml", &broken)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        refused.stderr().contains(
            "`instance.status` can never hold this value: unknown instance status `Halted`"
        ),
        "{}",
        refused.stderr()
    );
}

/// A YAML number compared with a string field is read as text as it is written: `0111` and
/// `1.50` in a block-list block accounts `0111` and `1.50`, not `111` and `1.5`.
#[test]
fn yaml_numbers_for_string_fields_are_read_as_written() {
    let instances = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
i-1,0111,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
i-2,1.50,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.5\n\
i-3,111,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.6\n";
    let requests = "request_id,account_id,instance_id,requested_at\nr1,0111,i-1,2026-11-29\nr2,1.50,i-2,2026-11-29\nr3,111,i-3,2026-11-29\n";
    let policy = "name: numbers\ncode:\n  random_symbols: 19\n  group: 4\nrules:\n  - id: not-blocked\n    kind: check\n    require: { field: instance.account_id, not_in: [0111, 1.50] }\n    message: \"blocked\"\n    remedy: \"none\"\n";
    let ran = Test::new("yaml-numbers")
        .file("instances.csv", instances)
        .file("requests.csv", requests)
        .file("p.yaml", policy)
        .args(RUN)
        .args(["--policy", "p.yaml", "--dry-run"])
        .run()
        .expect(0);
    let rows = csv_rows(&ran.read("out/decisions.csv"));
    let outcomes: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    assert_eq!(outcomes, ["denied", "denied", "eligible"], "{rows:?}");
}

/// A policy's time literal is kept to the microsecond, as every input time is (and as times
/// are written): half a microsecond past an expiry is the expiry itself.
#[test]
fn policy_time_literals_are_kept_to_the_microsecond() {
    let extra = default_policy().replace(
        "  - id: max-codes-per-instance",
        "  - id: until-2028\n    kind: check\n    require: { field: instance.expired_time, ge: \"2028-01-01T00:00:00.0000005Z\" }\n    message: \"expires {instance.expired_time}\"\n    remedy: \"renew\"\n\n  - id: max-codes-per-instance",
    );
    assert_ne!(extra, default_policy());
    let got = outcomes("policy-time-micros", &extra);
    assert_eq!(got[0].0, "eligible", "{got:?}");
    // A whole microsecond past it is past it: the rule is in force.
    let later = extra.replace("00.0000005Z", "00.000001Z");
    let got = outcomes("policy-time-micros-later", &later);
    assert_eq!(got[0], ("denied".into(), "until-2028".into()), "{got:?}");
}

/// A policy without the `instance-exists` gate may let through requests for instances the
/// inventory lacks: the quota still holds for them, by their instance id, counting the
/// ledger's codes for that id (before, such requests were left out of the quota, and each got
/// a code).
#[test]
fn the_quota_holds_for_instances_the_inventory_lacks() {
    let policy = "name: no-gate
code: { prefix: \"\", random_symbols: 19, group: 4 }
rules:
  - id: has-id
    description: test
    kind: check
    require: { exists: request.request_id }
    message: \"no id\"
    remedy: \"add one\"
  - id: one-code
    description: test
    kind: quota
    quota: { per: instance, max: 1, statuses: [issued, in_use, spent] }
    message: \"holds {quota.used}\"
    remedy: \"none\"
";
    let ran = Test::new("policy-quota-unlisted")
        .file("p.yaml", policy)
        .file(
            "instances.csv",
            "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out\n\
             i-1,100,cn-beijing,PrePaid,2028-01-01T00:00Z,5\n\
             i-up,100,cn-beijing,PrePaid,2028-01-01T00:00Z,5\n",
        )
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\n\
             r1,100,i-ghost,2026-11-29T01:00Z\n\
             r2,100,i-ghost,2026-11-29T02:00Z\n\
             r3,100,I-GHOST,2026-11-29T03:00Z\n\
             r4,100,i-gone,2026-11-29T01:00Z\n\
             r5,100,i-1,2026-11-29T01:00Z\n\
             r6,100,I-UP,2026-11-29T01:00Z\n",
        )
        .file(
            "ledger.csv",
            "code,instance_id,account_id,request_id,issued_at,status,domain\n\
             OLD-1,i-gone,100,,2025-01-01T00:00:00Z,spent,d\n\
             OLD-2,i-up,100,,2025-01-01T00:00:00Z,spent,d\n",
        )
        .args(["run", "--input", ".", "--out", "out", "--policy", "p.yaml"])
        .args(["--as-of", "2026-11-30T00:00:00Z"])
        .run()
        .expect(0);
    assert_eq!(
        crate::harness::outcomes(&ran),
        crate::harness::pairs([
            ("issued", ""),
            ("denied", "one-code"),
            ("denied", "one-code"),
            ("denied", "one-code"),
            ("issued", ""),
            // `I-UP` names no inventory row exactly, but `i-up` once case is ignored: its code
            // in the ledger counts.
            ("denied", "one-code"),
        ])
    );
    // The same as a dry run with the ledger read from a pipe, which cannot be read twice: the
    // scan counts the ledger's codes for ids the inventory lacks itself.
    let mut dry = std::process::Command::new(crate::harness::BIN)
        .args([
            "run",
            "--instances",
            "instances.csv",
            "--requests",
            "requests.csv",
        ])
        .args([
            "--ledger",
            "/dev/stdin",
            "--out",
            "out-dry",
            "--policy",
            "p.yaml",
        ])
        .args(["--as-of", "2026-11-30T00:00:00Z", "--dry-run"])
        .current_dir(&ran.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ledger = std::fs::read(ran.dir.join("ledger.csv")).unwrap();
    // The ledger as it was before the run: its header and two rows.
    let before: Vec<u8> = ledger
        .split_inclusive(|b| *b == b'\n')
        .take(3)
        .flatten()
        .copied()
        .collect();
    use std::io::Write;
    dry.stdin.take().unwrap().write_all(&before).unwrap();
    let dry = dry.wait_with_output().unwrap();
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    let rows = csv_rows(&std::fs::read_to_string(ran.dir.join("out-dry/decisions.csv")).unwrap());
    let got: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[3].as_str(), r[5].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("eligible", ""),
            ("denied", "one-code"),
            ("denied", "one-code"),
            ("denied", "one-code"),
            ("eligible", ""),
            ("denied", "one-code"),
        ]
    );
}

/// A policy names a column by its `DescribeInstances` spelling as a header cell may: declaring
/// `instance.PublicIpAddress` names the built-in `public_ip`, which an inventory headed
/// `public_ip` has, and a rule reading it reads that column.
#[test]
fn a_policy_may_name_a_column_by_its_api_spelling() {
    let policy = default_policy().replacen(
        "\nrules:",
        "\ncolumns:\n  - { field: instance.PublicIpAddress, type: string }\nrules:",
        1,
    );
    let policy = policy.replace(
        "exists: instance.public_ip",
        "exists: instance.PublicIpAddress",
    );
    assert!(
        policy.contains("exists: instance.PublicIpAddress"),
        "{policy}"
    );
    Test::new("policy-api-spelling")
        .file("p.yaml", &policy)
        .args(["check-policy", "p.yaml"])
        .run()
        .expect(0);
    let ran = Test::new("policy-api-spelling-run")
        .file("p.yaml", &policy)
        .file(
            "instances.csv",
            &format!(
                "{INSTANCES_HEADER}\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n\
i-2,100,cn-hangzhou,PrePaid,2028-01-01,5,\n"
            ),
        )
        .file(
            "requests.csv",
            &format!("{REQUESTS_HEADER}\nr1,100,i-1,2026-11-29\nr2,100,i-2,2026-11-29\n"),
        )
        .args(RUN)
        .args(["--policy", "p.yaml"])
        .run()
        .expect(0);
    let rows = csv_rows(&ran.read("out/decisions.csv"));
    assert_eq!(rows[1][3], "issued", "{rows:?}");
    assert_eq!(
        (rows[2][3].as_str(), rows[2][5].as_str()),
        ("denied", "public-ip"),
        "{rows:?}"
    );
    // Declared, the built-in column is one the policy needs: an inventory without it (which SPEC
    // allows when nothing declares it) is refused, as for any declared column.
    let ran = Test::new("policy-api-spelling-absent")
        .file("p.yaml", &policy)
        .file(
            "instances.csv",
            "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5\n",
        )
        .file(
            "requests.csv",
            &format!("{REQUESTS_HEADER}\nr1,100,i-1,2026-11-29\n"),
        )
        .args(RUN)
        .args(["--policy", "p.yaml"])
        .run()
        .expect(2);
    assert!(
        ran.stderr()
            .contains("instances.csv:1: missing column `public_ip`, which the policy declares"),
        "{}",
        ran.stderr()
    );
}
