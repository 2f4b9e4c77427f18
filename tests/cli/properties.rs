//! Properties over random small workloads (seeded, so a failure is reproducible): every request
//! row gets exactly one decision; `--jobs` changes nothing; shuffling the requests changes no
//! request's decision; a second run on the first run's ledger issues nothing new.

use crate::harness::{RUN, Test, copy_dir, csv_rows};
use std::collections::BTreeMap;

const REGIONS: [&str; 5] = [
    "cn-hangzhou",
    "cn-beijing",
    "cn-hongkong",
    "us-west-1",
    "cn-shanghai",
];
const OFFSETS: [&str; 4] = ["Z", "+08:00", "-05:00", ".5Z"];

struct Workload {
    instances: String,
    requests: Vec<String>,
    ledger: String,
}

fn workload(seed: u64, unique_ids: bool) -> Workload {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = rng.usize(3..12);
    let mut instances = String::from(
        "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip,eip_address,operation_locks\n",
    );
    for i in 0..n {
        // Now and then a second row for the same id, or a damaged row.
        let id = if rng.u8(..20) == 0 { 0 } else { i };
        let charge =
            ["PrePaid", "PostPaid", "Subscription", "bogus"][rng.usize(..4).min(rng.usize(..4))];
        let month = rng.u8(1..=12);
        let year = [2026, 2027, 2028][rng.usize(..3)];
        instances.push_str(&format!(
            "i-{id},{},{},{charge},{year}-{month:02}-28T16:00Z,{},{},{},{}\n",
            100 + rng.u8(..2) as u32,
            REGIONS[rng.usize(..REGIONS.len())],
            rng.u8(..3),
            if rng.bool() { "1.2.3.4" } else { "" },
            if rng.u8(..4) == 0 { "5.6.7.8" } else { "" },
            ["", "", "financial", "security"][rng.usize(..4)],
        ));
    }
    let mut ledger =
        String::from("code,instance_id,account_id,request_id,issued_at,status,domain\n");
    for k in 0..rng.usize(..8) {
        let status = ["issued", "in_use", "spent"][rng.usize(..3)];
        ledger.push_str(&format!(
            "LEGACY-{seed}-{k},i-{},100,{},2025-01-01T00:00:00Z,{status},d.example\n",
            rng.usize(..n),
            if rng.bool() {
                format!("r{}", rng.usize(..40))
            } else {
                String::new()
            }
        ));
    }
    let mut requests = Vec::new();
    for r in 0..rng.usize(5..40) {
        let id = if unique_ids {
            format!("q{r}")
        } else {
            format!("r{}", rng.usize(..40))
        };
        requests.push(format!(
            "{id},{},i-{},2026-11-29T{:02}:{:02}:00{}",
            100 + rng.u8(..2) as u32,
            rng.usize(..n + 1),
            rng.u8(8..10),
            rng.u8(..3) * 20,
            OFFSETS[rng.usize(..OFFSETS.len())]
        ));
    }
    Workload {
        instances,
        requests,
        ledger,
    }
}

fn requests_csv(rows: &[String]) -> String {
    let mut s = String::from("request_id,account_id,instance_id,requested_at\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn run(name: &str, w: &Workload, rows: &[String], extra: &[&str]) -> crate::harness::Ran {
    Test::new(name)
        .file("instances.csv", &w.instances)
        .file("requests.csv", &requests_csv(rows))
        .file("ledger.csv", &w.ledger)
        .args(RUN)
        .args(["--quiet"])
        .args(extra)
        .run()
        .expect(0)
}

#[test]
fn every_request_row_gets_exactly_one_decision_in_input_order() {
    for seed in 0..25 {
        let w = workload(seed, false);
        let ran = run("one-each", &w, &w.requests, &[]);
        let d = csv_rows(&ran.read("out/decisions.csv"));
        assert_eq!(d.len() - 1, w.requests.len(), "seed {seed}");
        for (row, req) in d[1..].iter().zip(&w.requests) {
            assert_eq!(&row[0], req.split(',').next().unwrap(), "seed {seed}");
        }
    }
}

#[test]
fn jobs_change_nothing() {
    for seed in 0..15 {
        let w = workload(seed, false);
        let outputs: Vec<(String, String)> = ["1", "2", "4"]
            .iter()
            .map(|j| {
                let ran = run("jobs", &w, &w.requests, &["--dry-run", "--jobs", j]);
                (ran.read("out/decisions.csv"), ran.read("out/denials.csv"))
            })
            .collect();
        assert!(outputs.windows(2).all(|p| p[0] == p[1]), "seed {seed}");
    }
}

/// request_id → (outcome, reasons), codes left out (new codes are random).
fn by_id(decisions: &str) -> BTreeMap<String, (String, String)> {
    csv_rows(decisions)[1..]
        .iter()
        .map(|r| (r[0].clone(), (r[3].clone(), r[5].clone())))
        .collect()
}

#[test]
fn shuffling_the_requests_changes_no_decision() {
    for seed in 0..25 {
        let w = workload(seed, true);
        let first = by_id(&run("shuffle-a", &w, &w.requests, &[]).read("out/decisions.csv"));
        let mut shuffled = w.requests.clone();
        fastrand::Rng::with_seed(seed + 1000).shuffle(&mut shuffled);
        let second = by_id(&run("shuffle-b", &w, &shuffled, &[]).read("out/decisions.csv"));
        assert_eq!(first, second, "seed {seed}");
    }
}

#[test]
fn a_second_run_on_its_own_output_issues_nothing_new() {
    for seed in 0..25 {
        let w = workload(seed, false);
        let ran = run("rerun-a", &w, &w.requests, &[]);
        let first = csv_rows(&ran.read("out/decisions.csv"));
        let ledger = ran.read("ledger.csv");
        let again = Test::new("rerun-b");
        copy_dir(&ran.dir, &again.dir);
        let again = again
            .args([
                "run",
                "--input",
                ".",
                "--out",
                "out2",
                "--as-of",
                "2026-11-30",
                "--quiet",
            ])
            .run()
            .expect(0);
        assert_eq!(
            again.read("ledger.csv"),
            ledger,
            "seed {seed}: the ledger grew"
        );
        assert_eq!(
            csv_rows(&again.read("out2/issued.csv")).len(),
            1,
            "seed {seed}"
        );
        let second = csv_rows(&again.read("out2/decisions.csv"));
        for (a, b) in first[1..].iter().zip(&second[1..]) {
            if a[3] == "issued" {
                assert_eq!(
                    (b[3].as_str(), &b[4]),
                    ("already_issued", &a[4]),
                    "seed {seed}"
                );
            } else {
                assert_ne!(b[3], "issued", "seed {seed}");
            }
        }
    }
}

/// The same generated inputs written as other exporters write them, with CRLF line ends or
/// with every field quoted (the header too), are decided alike: the same decisions and denials,
/// byte for byte, with files long enough to cross the reader's blocks.
#[test]
fn crlf_and_quoted_forms_of_the_inputs_are_decided_alike() {
    let t = Test::new("input-forms")
        .args(["generate", "--out", "lf", "--seed", "4"])
        .args(["--instances", "70000", "--requests", "70000"])
        .run()
        .expect(0);
    /// How a form writes one line of a file.
    type Form = fn(&str) -> String;
    let forms: [(&str, Form); 2] = [
        ("crlf", |line| format!("{line}\r\n")),
        ("quoted", |line| {
            format!("\"{}\"\n", line.replace(',', "\",\""))
        }),
    ];
    for (form, write) in forms {
        std::fs::create_dir_all(t.dir.join(form)).unwrap();
        for file in ["instances.csv", "requests.csv", "ledger.csv"] {
            let text = t.read(&format!("lf/{file}"));
            assert!(
                text.len() > 8 << 20 || file == "requests.csv",
                "{file}: {}",
                text.len()
            );
            let written: String = text.lines().map(write).collect();
            std::fs::write(t.dir.join(form).join(file), written).unwrap();
        }
    }
    let decide = |form: &str| {
        Test::new(&format!("input-forms-{form}"))
            .args(["run", "--input", t.dir.join(form).to_str().unwrap()])
            .args([
                "--out",
                "out",
                "--dry-run",
                "--as-of",
                "2026-11-27T00:00:00Z",
            ])
            .run()
            .expect(0)
    };
    let lf = decide("lf");
    for form in ["crlf", "quoted"] {
        let other = decide(form);
        for file in ["out/decisions.csv", "out/denials.csv"] {
            assert!(
                lf.read(file) == other.read(file),
                "{file} differs between the LF and the {form} inputs"
            );
        }
    }
    assert!(lf.read("out/denials.csv").lines().count() > 10_000);
}
