//! `icp-audit verify-code`.

use crate::harness::{RUN, Test, csv_rows};

const INSTANCES: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n";

fn fresh_code(name: &str) -> String {
    let ran = Test::new(name)
        .file("instances.csv", INSTANCES)
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\nr1,100,i-1,2026-11-29\n",
        )
        .args(RUN)
        .args(["--quiet"])
        .run()
        .expect(0);
    csv_rows(&ran.read("out/issued.csv"))[1][3].clone()
}

#[test]
fn issued_codes_verify_in_any_spelling_and_damaged_ones_do_not() {
    let code = fresh_code("verify");
    let sloppy = code.to_lowercase().replace('-', "");
    Test::new("verify-ok")
        .args(["verify-code", &code, &sloppy])
        .run()
        .expect(0);
    // One substituted symbol: the check symbol catches it.
    let mut damaged: Vec<char> = code.chars().collect();
    damaged[0] = if damaged[0] == 'A' { 'B' } else { 'A' };
    let damaged: String = damaged.into_iter().collect();
    let ran = Test::new("verify-bad")
        .args(["verify-code", &code, &damaged])
        .run()
        .expect(1);
    assert!(ran.stdout().contains("code 1: well-formed"));
    assert!(ran.stdout().contains("code 2: not well-formed"));
    assert!(!ran.stdout().contains(&damaged) && !ran.stderr().contains(&damaged));
}

#[test]
fn codes_are_distinct_and_canonical() {
    let a = fresh_code("distinct-a");
    let b = fresh_code("distinct-b");
    assert_ne!(a, b);
    assert_eq!(a.len(), 24);
    assert!(
        a.chars()
            .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
    );
}

/// `verify-code` says what is wrong with a code in one sentence: "it has a check symbol that
/// does not match", naming the code by its place only (codes are secrets).
#[test]
fn verify_code_says_what_is_wrong_in_a_sentence() {
    let ran = Test::new("verify-sentence")
        .args([
            "verify-code",
            "7K3M-Q9TX-0B4R-WD2N-HC5D",
            "7K3M-Q9TX-0B4R-WD2N-HC5F",
        ])
        .run()
        .expect(1);
    assert_eq!(
        ran.stdout(),
        "code 1: well-formed\ncode 2: not well-formed: it has a check symbol that does not match\n"
    );
    assert!(!ran.stderr().contains("HC5F"));
}
